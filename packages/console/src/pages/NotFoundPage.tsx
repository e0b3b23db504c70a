import { Link } from 'react-router';
import { PageTitle } from '../components/PageTitle.tsx';

/** A console path that names no page. */
export function NotFoundPage() {
  return (
    <>
      <PageTitle title="Page not found">Page not found</PageTitle>
      <p>
        There is no such page. Go to <Link to="/">Directory Synchronization</Link>.
      </p>
    </>
  );
}
