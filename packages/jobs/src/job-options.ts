import type { SyncMode } from '@dirsync/contracts';
import type { JobsOptions } from 'bullmq';
import { DEFAULT_BACKOFF_POLICY, SYNC_BACKOFF_TYPE } from './backoff.ts';

/**
 * Options every sync job is added with. Run reports live in Postgres, so Redis keeps finished
 * jobs only for a while, for debugging.
 */
export const defaultSyncJobOptions = {
  attempts: 5,
  backoff: { type: SYNC_BACKOFF_TYPE, delay: DEFAULT_BACKOFF_POLICY.baseMs },
  removeOnComplete: { age: 7 * 24 * 3600, count: 1000 },
  removeOnFail: { age: 30 * 24 * 3600, count: 5000 },
} as const satisfies JobsOptions;

// BullMQ (6.7) refuses custom job ids that are integers or that contain ':' (outside its own
// legacy repeat ids), so ids are built from '.'-separated parts: uuids, mode names and
// millisecond epochs never contain a '.'.

/**
 * Deterministic id of the job for one schedule slot: every scheduler replica computes the same
 * id, and BullMQ never adds a second job with an id it already holds.
 */
export function scheduledJobId(integrationId: string, mode: SyncMode, slotEpochMs: number): string {
  if (!Number.isSafeInteger(slotEpochMs) || slotEpochMs < 0) {
    throw new RangeError('slotEpochMs must be a non-negative integer number of milliseconds');
  }
  return `sched.${integrationId}.${mode}.${slotEpochMs}`;
}

/** Id of the job of an unscheduled run (manual, API, password update, recovery). */
export function runJobId(runId: string): string {
  return `run.${runId}`;
}

/**
 * Deduplication id shared by every waiting sync of one integration. Dry runs get their own, so
 * a simulation never stands in for a real run nor the reverse.
 */
export function syncDeduplicationId(integrationId: string, dryRun: boolean): string {
  return `sync.${integrationId}.${dryRun ? 'dry' : 'real'}`;
}
