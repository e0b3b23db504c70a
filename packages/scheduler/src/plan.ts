import type { SyncMode } from '@dirsync/contracts';
import type { DueSlots } from '@dirsync/db';
import { cronIntervalMs, latestDueSlot, nextSlotAfter } from '@dirsync/jobs';

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

// The jitter lives with the cron helpers, so the API shows the same due times the scheduler uses.
export { DEFAULT_JITTER_MAX_MS, jitterFraction, jitterOffsetMs } from '@dirsync/jobs';

/**
 * Which slots of an integration are due at `now`: for each mode, the latest slot whose due time
 * (slot + `offsetMs`, its jitter) is at or before `now`, when it is newer than the one already
 * claimed. Only the latest slot counts, so after downtime an integration gets one catch-up job
 * per mode, not one per missed slot. Never claimed counts as older than any slot, so a new
 * integration is due for a full sync at once (it has no cursor yet), whatever the hour of its
 * full cron. The slot itself (job id, `scheduledFor`) stays the cron's time. Throws `InvalidCronError`.
 */
export function dueSlots(state: ScheduleState, now: Date, tz?: string, offsetMs = 0): DueSlots {
  const isNewer = (slot: Date, claimed: Date | null) => claimed === null || claimed.getTime() < slot.getTime();
  const shifted = new Date(now.getTime() - offsetMs);
  const full = latestDueSlot(state.fullCron, shifted, tz);
  const delta = latestDueSlot(state.deltaCron, shifted, tz);
  return {
    full: isNewer(full, state.fullScheduledFor) ? full : null,
    delta: isNewer(delta, state.deltaScheduledFor) ? delta : null,
  };
}

/**
 * When an integration next needs looking at: the earliest due time (slot + `offsetMs`) of either
 * mode's next slot, strictly after `now`. Until then {@link dueSlots} finds nothing new for it,
 * so a tick need not read it. Throws `InvalidCronError`.
 */
export function nextDueAt(crons: Pick<ScheduleState, 'deltaCron' | 'fullCron'>, now: Date, tz?: string, offsetMs = 0): Date {
  const shifted = new Date(now.getTime() - offsetMs);
  const next = Math.min(nextSlotAfter(crons.fullCron, shifted, tz).getTime(), nextSlotAfter(crons.deltaCron, shifted, tz).getTime());
  return new Date(next + offsetMs);
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
