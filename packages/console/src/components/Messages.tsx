import type { ReactNode } from 'react';
import type { CheckLine } from '../problem.ts';
import { ApiError, messageOf } from '../problem.ts';

/** An error in words, announced at once (role=alert). */
export function ErrorMessage({ error, children }: { error?: unknown; children?: ReactNode }) {
  if (error === undefined && children === undefined) return null;
  return (
    <div className="message message-error" role="alert">
      {children ?? messageOf(error)}
    </div>
  );
}

/**
 * A form's refusal in words, with the problems no field of the form shows (they would otherwise
 * be lost), announced at once.
 */
export function FormProblem({ message, unassigned }: { message: string; unassigned: readonly string[] }) {
  return (
    <div role="alert" className="message message-error">
      <p>{message}</p>
      {unassigned.length === 0 ? null : (
        <ul>
          {unassigned.map((line) => (
            <li key={line}>{line}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** A Test Connection checklist: every check with its outcome in words. */
export function Checklist({ checks, label }: { checks: readonly CheckLine[]; label: string }) {
  return (
    <ul className="checklist" aria-label={label}>
      {checks.map((check, i) => (
        <li key={`${check.name}-${i}`} className={check.ok ? (check.warning === true ? 'check-warning' : 'check-ok') : 'check-failed'}>
          <span className="check-mark" aria-hidden="true">
            {check.ok ? (check.warning === true ? '!' : '✓') : '✗'}
          </span>
          <span>
            <strong>{check.name}</strong>: {check.ok ? (check.warning === true ? 'ok, with a warning' : 'ok') : 'failed'}
            {check.detail === '' ? '' : ` — ${check.detail}`}
          </span>
        </li>
      ))}
    </ul>
  );
}

/** Shown while a page's data loads. */
export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  );
}

/** Title of a page whose subject could not be read: "… not found" for a 404, "… unavailable" otherwise. */
export function notFoundTitle(error: unknown, what: string): string {
  return error instanceof ApiError && error.status === 404 ? `${what} not found` : `${what} unavailable`;
}
