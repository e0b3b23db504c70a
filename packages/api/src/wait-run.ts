import { setTimeout as delay } from 'node:timers/promises';
import { finalRunStatuses as finalStatuses } from '@dirsync/contracts';
import { getAccountRun, type Db, type RunRow } from '@dirsync/db';

/** Statuses a run ends in, as a set; `queued`, `running` and `retrying` are not final. */
export const finalRunStatuses: ReadonlySet<RunRow['status']> = new Set(finalStatuses);

// The run row is the source of truth and every worker writes it, so reading it is the one wait
// that works whichever worker runs the job; a quarter second keeps the answer prompt and the
// load on PostgreSQL one small indexed read per waiting request.
const pollMs = 250;

/**
 * Reads the account's run until it reaches a final status, `waitMs` passes, or `gone()` says the
 * caller stopped listening. Resolves to the run as last read (undefined if it is not the
 * account's or does not exist).
 */
export async function waitForFinalRun(
  db: Db,
  accountId: string,
  runId: string,
  waitMs: number,
  gone: () => boolean = () => false,
): Promise<RunRow | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const run = await getAccountRun(db, accountId, runId);
    const left = deadline - Date.now();
    if (run === undefined || finalRunStatuses.has(run.status) || left <= 0 || gone()) return run;
    await delay(Math.min(pollMs, left));
  }
}
