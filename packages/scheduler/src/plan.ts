import type { DueSlots } from '@dirsync/db';
import type { SyncMode } from '@dirsync/jobs';
import { latestDueSlot } from './cron.ts';

/** The schedule columns of one integration. */
export interface ScheduleState {
  readonly deltaCron: string;
  readonly fullCron: string;
  /** Latest delta slot already claimed (null: never). */
  readonly deltaScheduledFor: Date | null;
  /** Latest full slot already claimed (null: never). */
  readonly fullScheduledFor: Date | null;
}

export type { DueSlots };

/**
 * Which slots of an integration are due at `now`: for each mode, the latest slot at or before
 * `now` when it is newer than the one already claimed. Only the latest slot counts, so after
 * downtime an integration gets one catch-up job per mode, not one per missed slot. Never
 * claimed counts as older than any slot, so a new integration is due for a full sync at once
 * (it has no cursor yet), whatever the hour of its full cron. Throws `InvalidCronError`.
 */
export function dueSlots(state: ScheduleState, now: Date, tz?: string): DueSlots {
  const isNewer = (slot: Date, claimed: Date | null) => claimed === null || claimed.getTime() < slot.getTime();
  const full = latestDueSlot(state.fullCron, now, tz);
  const delta = latestDueSlot(state.deltaCron, now, tz);
  return {
    full: isNewer(full, state.fullScheduledFor) ? full : null,
    delta: isNewer(delta, state.deltaScheduledFor) ? delta : null,
  };
}

/** The one job to enqueue for the slots claimed in a tick. */
export interface PlannedSync {
  readonly mode: SyncMode;
  readonly slot: Date;
  /** A delta slot was claimed in the same tick and is covered by this full sync. */
  readonly supersedesDelta: boolean;
}

/**
 * A full sync supersedes a delta falling due in the same tick (it sees every change the delta
 * would): only the full is enqueued, the delta slot is still counted as done.
 */
export function planSync(claimed: DueSlots): PlannedSync | null {
  if (claimed.full !== null) return { mode: 'full', slot: claimed.full, supersedesDelta: claimed.delta !== null };
  if (claimed.delta !== null) return { mode: 'delta', slot: claimed.delta, supersedesDelta: false };
  return null;
}
