import type { ObjectSql } from '@dirsync/db';
import type { IssueLog, SyncCounts } from './report.ts';

/** What the stages of one run share: where to write, which run it is, and what it has counted. */
export interface SyncContext {
  /** The pool, or the transaction a dry run rolls back. */
  readonly sql: ObjectSql;
  readonly integrationId: string;
  readonly runId: string;
  readonly counts: SyncCounts;
  readonly issues: IssueLog;
  /**
   * Statements a stage may run at once on separate connections (1 inside a dry run's single
   * transaction). PostgreSQL runs each statement on one core; splitting a batch's disjoint rows
   * across connections uses more.
   */
  readonly parallelism: number;
  /**
   * Whether the integration had any stored object when the run started. When it had none (a
   * first sync), no stored object can hold the DN of an object the run creates, so the run need
   * not look for one.
   */
  readonly storedAtStart: boolean;
}

/** Splits `items` into slices of at most `size`, so no single statement grows without bound. */
export function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let start = 0; start < items.length; start += size) yield items.slice(start, start + size);
}

/** Below this many items a batch is not worth splitting across connections. */
const minPartSize = 500;

/**
 * Runs `fn` over `items` split into at most `ctx.parallelism` disjoint parts at once. Callers pass
 * only items that touch disjoint rows, so the parts cannot wait on each other's locks.
 */
export async function inParallel<T, R>(
  ctx: Pick<SyncContext, 'parallelism'>,
  items: readonly T[],
  fn: (part: T[]) => Promise<R>,
): Promise<R[]> {
  const parts = Math.min(ctx.parallelism, Math.floor(items.length / minPartSize));
  if (parts <= 1) return [await fn([...items])];
  return Promise.all([...chunks(items, Math.ceil(items.length / parts))].map(fn));
}
