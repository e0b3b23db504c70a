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
}

/** Splits `items` into slices of at most `size`, so no single statement grows without bound. */
export function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let start = 0; start < items.length; start += size) yield items.slice(start, start + size);
}
