import type { SyncMode, SyncTrigger } from '@dirsync/contracts';
import { coverScheduleSlots, createRun, getIntegrationSchedule, markRunUpgradedToFull, releaseClaimedSlots, type ClaimedSlots, type Db, type DueSlots } from '@dirsync/db';
import {
  DEFAULT_SCHEDULE_TIMEZONE,
  InvalidCronError,
  latestDueSlot,
  scheduledJobId,
  type EnqueueClient,
  type EnqueueSyncResult,
} from '@dirsync/jobs';

/** What {@link requestSync} needs: the database its run rows go to and the queue its jobs go to. */
export interface RequestSyncDeps {
  readonly db: Db;
  readonly enqueue: Pick<EnqueueClient, 'enqueueSync'>;
}

/** A sync asked for by any producer (scheduler tick, API, CLI, benchmark). */
export interface SyncRequestInput {
  readonly integrationId: string;
  /** The mode asked for; the worker's pipeline decides the mode it actually runs in. */
  readonly mode: SyncMode;
  readonly trigger: SyncTrigger;
  readonly dryRun?: boolean;
  readonly requestedBy: string;
  /** The schedule slot a scheduled sync stands for (makes its job id deterministic). */
  readonly scheduledFor?: Date;
}

/** Options of {@link requestSync}. */
export interface RequestSyncOptions {
  /**
   * Called instead of throwing when the job is queued but its run row could not be written. The
   * worker creates a missing run when it starts, so a producer that must not report failure for
   * a job that will run (the scheduler, whose slot is claimed) passes this; without it the error
   * is thrown as is.
   */
  readonly onRunNotRecorded?: (error: unknown, result: EnqueueSyncResult) => void;
  /** When the request is made, for the schedule slots it covers (default: the clock). */
  readonly now?: Date;
  /** IANA time zone the integration's crons are read in; must be the scheduler's (default UTC). */
  readonly timezone?: string;
  /**
   * Runs after the slots are covered and before the job is queued; when it throws, nothing is
   * queued and the slots go back. Enabling an integration here (its first sync) leaves no moment
   * at which the scheduler sees it enabled with its slots not yet covered.
   */
  readonly beforeEnqueue?: () => Promise<void>;
}

/**
 * The slots a sync of `mode` asked for at `now` stands in for: the latest delta slot at or before
 * `now`, and with a full the latest full slot too (a full sees every change a delta would).
 * A slot counts from its cron time, not its jittered due time: a sync asked for once a slot has
 * begun runs after it began. Null for a schedule that cannot be read (the scheduler skips it too).
 */
function slotsCoveredAt(schedule: { deltaCron: string; fullCron: string }, mode: SyncMode, now: Date, tz: string): DueSlots | null {
  try {
    return {
      full: mode === 'full' ? latestDueSlot(schedule.fullCron, now, tz) : null,
      delta: latestDueSlot(schedule.deltaCron, now, tz),
    };
  } catch (error) {
    if (error instanceof InvalidCronError) return null;
    throw error;
  }
}

// Without this, an integration synced by hand just after a slot began (a console's first sync of
// a new integration, "Sync All" between the nightly full slot and its jittered due time) would
// get the scheduler's own sync of that slot right after, finding nothing to change.
async function coverDueSlots(db: Db, integrationId: string, mode: SyncMode, now: Date, tz: string): Promise<ClaimedSlots | null> {
  const schedule = await getIntegrationSchedule(db, integrationId);
  if (schedule === undefined) return null;
  const slots = slotsCoveredAt(schedule, mode, now, tz);
  return slots === null ? null : coverScheduleSlots(db, integrationId, schedule, slots);
}

/**
 * The one way a sync is asked for: queues the job (deduplicated by the enqueue client: a waiting
 * sync of the integration absorbs the request, a full request turns a waiting delta into a full)
 * and records the queued run. The run row is written when this call added the job, or when the
 * job found is the one of the same schedule slot (an earlier attempt may have stopped before
 * writing it; writing is idempotent on the run id). A waiting delta upgraded to full has its row
 * say so. Callers check first that the integration may sync (exists, is enabled, is theirs).
 *
 * A request from outside the schedule (any trigger but `schedule`) that is not a dry run also
 * covers the schedule slots already begun: the job that runs (a full, or a delta) stands for the
 * latest delta slot at or before the request, and a full for the latest full slot too, so the
 * scheduler queues nothing for them (`coverScheduleSlots`). A later slot is not covered, and a
 * delta never covers a full slot (a new integration still gets its first full sync). The slots
 * are covered before the job is queued and handed back when it cannot be.
 */
export async function requestSync(deps: RequestSyncDeps, input: SyncRequestInput, options: RequestSyncOptions = {}): Promise<EnqueueSyncResult> {
  const now = options.now ?? new Date();
  const dryRun = input.dryRun ?? false;
  const scheduledFor = input.scheduledFor?.toISOString();
  const covers = input.trigger !== 'schedule' && !dryRun;
  const tz = options.timezone ?? DEFAULT_SCHEDULE_TIMEZONE;
  // Covered before the job is queued: covered after, a tick in between could claim the slot while
  // a worker already runs this job (running, it absorbs nothing) and queue a second sync of it.
  const covered = covers ? await coverDueSlots(deps.db, input.integrationId, input.mode, now, tz) : null;
  let result: EnqueueSyncResult;
  try {
    await options.beforeEnqueue?.();
    result = await deps.enqueue.enqueueSync({
      integrationId: input.integrationId,
      mode: input.mode,
      trigger: input.trigger,
      dryRun,
      requestedBy: input.requestedBy,
      ...(scheduledFor === undefined ? {} : { scheduledFor }),
    });
  } catch (error) {
    // Nothing was queued: the slots go back to the scheduler, which queues them on its next tick.
    // (Should Redis have added the job and only its answer been lost, the scheduler's sync of
    // the slot follows it: one sync too many rather than a slot no sync stands for.) Should the
    // release fail too, the caller still learns why the sync was not queued; the slots then stay
    // covered until the next ones begin.
    if (covered !== null) await releaseClaimedSlots(deps.db, input.integrationId, covered).catch(() => undefined);
    throw error;
  }
  const ownSlotJob =
    input.scheduledFor !== undefined && !dryRun && result.jobId === scheduledJobId(input.integrationId, input.mode, input.scheduledFor.getTime());
  try {
    if (!result.deduplicated || ownSlotJob) {
      await createRun(deps.db, {
        id: result.runId,
        integrationId: input.integrationId,
        jobId: result.jobId,
        modeRequested: result.mode,
        trigger: input.trigger,
        dryRun: result.dryRun,
        requestedBy: input.requestedBy,
      });
    } else if (result.upgraded) {
      await markRunUpgradedToFull(deps.db, result.runId);
    }
  } catch (error) {
    if (options.onRunNotRecorded === undefined) throw error;
    options.onRunNotRecorded(error, result);
  }
  // A delta request absorbed by a waiting full is covered by that full.
  if (covers && result.mode === 'full' && input.mode !== 'full') await coverDueSlots(deps.db, input.integrationId, 'full', now, tz);
  return result;
}
