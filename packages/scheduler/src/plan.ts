import { createHash } from 'node:crypto';
import type { DueSlots } from '@dirsync/db';
import { cronIntervalMs, latestDueSlot, nextSlotAfter, type SyncMode } from '@dirsync/jobs';

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

/** Longest jitter offset by default: one hour (fulls of an hourly delta spread over that hour). */
export const DEFAULT_JITTER_MAX_MS = 3_600_000;

/**
 * Where in [0, 1) the integration's id hashes to: the first 48 bits of its SHA-256. The same id
 * always lands on the same point, on every replica and after every restart.
 */
export function jitterFraction(integrationId: string): number {
  const digest = createHash('sha256').update(integrationId).digest();
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/**
 * The stable jitter of an integration: how long after each of its cron slots the slot falls due.
 * One offset serves both modes, so a full and a delta slot of the same minute still fall due
 * together and the full supersedes the delta. It lies within the shorter of the two cron
 * intervals (never reaching the next slot) and below `maxMs`, in whole seconds:
 * `floor(jitterFraction(id) × min(delta interval, full interval, maxMs))`. With the default
 * crons (deltas every 5 minutes) 10,000 integrations spread evenly over the 5 minutes after
 * each slot instead of falling due in the same second. `maxMs` 0 turns jitter off.
 * Throws `InvalidCronError`.
 */
export function jitterOffsetMs(integrationId: string, crons: Pick<ScheduleState, 'deltaCron' | 'fullCron'>, maxMs: number = DEFAULT_JITTER_MAX_MS): number {
  if (maxMs <= 0) return 0;
  const span = Math.min(cronIntervalMs(crons.deltaCron), cronIntervalMs(crons.fullCron), maxMs);
  return Math.floor((jitterFraction(integrationId) * span) / 1000) * 1000;
}

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
