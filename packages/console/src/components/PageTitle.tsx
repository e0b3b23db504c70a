import { useEffect, useRef, type ReactNode } from 'react';

let firstHeading = true;

/**
 * The page's h1. It names the document and, after a navigation (not on the first load), takes
 * the focus so keyboard and screen-reader users start at the new page's top.
 */
export function PageTitle({ children, title }: { children: ReactNode; title: string }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · dirsync`;
  }, [title]);
  useEffect(() => {
    if (firstHeading) {
      firstHeading = false;
      return;
    }
    ref.current?.focus();
  }, []);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}
