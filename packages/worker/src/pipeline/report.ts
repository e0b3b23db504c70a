import type { RunIssue } from '@dirsync/db';
import type { Cursor } from '@dirsync/providers';
import { emptyRunCounts, type RunCounts, type SyncMode } from '@dirsync/contracts';

/** How a pipeline run ended (a failed run throws instead). */
export type SyncOutcome = 'succeeded' | 'blocked' | 'dry_run';

/** Object and edge counts of a run (fetched: source entries received; deleted: soft-deleted, in a dry run: would have been). */
export type SyncCounts = RunCounts;

/** What {@link runSync} returns: the run report, ready for the runs repository. */
export interface SyncReport extends SyncCounts {
  readonly mode: SyncMode;
  /** Why it ran in this mode. */
  readonly reason: string;
  readonly status: SyncOutcome;
  /** The deletions were over the integration's limit (blocked, or allowed by an approval). */
  readonly thresholdExceeded: boolean;
  /** The run deleted only because an approval allowed it; the approval is now used up. */
  readonly approvalUsed: boolean;
  /** The first issues (capped); `issueCount` is the total. */
  readonly issues: readonly RunIssue[];
  readonly issueCount: number;
  /**
   * Cursor to store for the next delta. Undefined: keep the stored one (blocked and dry runs,
   * or a source that gave none).
   */
  readonly cursor: Cursor | undefined;
}

/** Collects issues up to a cap and counts the rest, so a broken directory cannot bloat a report. */
export class IssueLog {
  readonly #max: number;
  readonly #issues: RunIssue[] = [];
  #count = 0;

  constructor(max: number) {
    this.#max = max;
  }

  add(issue: RunIssue): void {
    this.#count += 1;
    if (this.#issues.length < this.#max) this.#issues.push(issue);
  }

  get issues(): readonly RunIssue[] {
    return this.#issues;
  }

  get count(): number {
    return this.#count;
  }
}

/** Counts all at zero. */
export function zeroCounts(): SyncCounts {
  return emptyRunCounts();
}
