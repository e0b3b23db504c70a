import type { ConnectionCheck, FieldProblem } from './types.ts';

/** An error answer of the API (RFC 9457 problem+json), or a failure to reach it at all. */
export class ApiError extends Error {
  /** HTTP status; 0 when the request never got an answer (network down). */
  readonly status: number;
  /** Last segment of the problem type (`connection-failed`, `tenant-consent-required`, …). */
  readonly code: string;
  /** The problem's `detail`: what went wrong, in words. */
  readonly detail: string;
  /** Per-field problems of a validation answer (400 or 422). */
  readonly errors: readonly FieldProblem[];
  /** Every member of the problem, extensions included (`checks` of a failed secret, …). */
  readonly problem: Readonly<Record<string, unknown>>;
  constructor(status: number, code: string, detail: string, errors: readonly FieldProblem[], problem: Record<string, unknown>) {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.errors = errors;
    this.problem = problem;
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function fieldProblemsOf(value: unknown): FieldProblem[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((entry) =>
    isRecord(entry) && typeof entry['message'] === 'string'
      ? [{ in: typeof entry['in'] === 'string' ? entry['in'] : 'body', path: typeof entry['path'] === 'string' ? entry['path'] : '', message: entry['message'] }]
      : [],
  );
}

/**
 * Turns an error answer into an {@link ApiError}. `body` is whatever the answer held (parsed
 * JSON, or undefined when it was not JSON): a proxy's HTML error page still yields a readable
 * message from the status.
 */
export function problemFromResponse(status: number, statusText: string, body: unknown): ApiError {
  if (!isRecord(body)) return new ApiError(status, 'http-error', `the server answered ${status}${statusText === '' ? '' : ` ${statusText}`}`, [], {});
  const type = typeof body['type'] === 'string' ? body['type'] : '';
  const code = type.slice(type.lastIndexOf('/') + 1) || 'http-error';
  const detail = typeof body['detail'] === 'string' ? body['detail'] : typeof body['title'] === 'string' ? body['title'] : `the server answered ${status}`;
  return new ApiError(status, code, detail, fieldProblemsOf(body['errors']), body);
}

/** Whether a field at `path` owns the problem at `problemPath` (`settings.users.baseDns` owns `settings.users.baseDns[0]`). */
export function ownsPath(path: string, problemPath: string): boolean {
  if (problemPath === path) return true;
  if (!problemPath.startsWith(path)) return false;
  const next = problemPath.charAt(path.length);
  return next === '.' || next === '[';
}

/**
 * Splits field problems between the form's fields: each field gets the messages of the paths it
 * owns (most specific field wins), and what no field owns is left for a summary above the form.
 */
export function assignFieldErrors(errors: readonly FieldProblem[], fieldPaths: readonly string[]): { byField: Map<string, string[]>; unassigned: string[] } {
  const byField = new Map<string, string[]>();
  const unassigned: string[] = [];
  // Longest path first, so `settings.users.baseDns` wins over `settings`.
  const ordered = [...fieldPaths].sort((a, b) => b.length - a.length);
  for (const error of errors) {
    const owner = ordered.find((path) => ownsPath(path, error.path));
    if (owner === undefined) {
      unassigned.push(error.path === '' ? error.message : `${error.path}: ${error.message}`);
      continue;
    }
    const list = byField.get(owner) ?? [];
    list.push(error.message);
    byField.set(owner, list);
  }
  return { byField, unassigned };
}

/** One line of a Test Connection checklist. */
export type CheckLine = ConnectionCheck;

/** The checklist a problem carries (`PUT …/secret` answers 422 with `checks`); empty when none. */
export function checksOf(problem: Readonly<Record<string, unknown>>): CheckLine[] {
  const checks = problem['checks'];
  if (!Array.isArray(checks)) return [];
  return checks.flatMap((c) =>
    isRecord(c) && typeof c['name'] === 'string' && typeof c['ok'] === 'boolean'
      ? [{ name: c['name'], ok: c['ok'], detail: typeof c['detail'] === 'string' ? c['detail'] : '', ...(c['warning'] === true ? { warning: true } : {}) }]
      : [],
  );
}

/** A message for any thrown value: the API's detail, or the error's message. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return error.detail;
  if (error instanceof Error) return error.message;
  return String(error);
}
