import type { RunStatus } from '@dirsync/contracts';
import { type Db, getRun, type Run } from '@dirsync/db';
import { waitFor } from '@dirsync/testkit';

/** Waits (30 s at most) for the run to reach one of `statuses`; returns it as it then stood. */
export function runReaches(db: Db, runId: string, statuses: RunStatus[]): Promise<Run> {
  return waitFor(
    async () => {
      const run = await getRun(db, runId);
      return run && statuses.includes(run.status) ? run : undefined;
    },
    { timeoutMs: 30_000, what: `run ${runId} to reach ${statuses.join('/')}` },
  );
}
