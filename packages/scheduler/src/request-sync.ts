import { createRun, markRunUpgradedToFull, type Db } from '@dirsync/db';
import { scheduledJobId, type EnqueueClient, type EnqueueSyncResult, type SyncMode, type SyncTrigger } from '@dirsync/jobs';

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
}

/**
 * The one way a sync is asked for: queues the job (deduplicated by the enqueue client: a waiting
 * sync of the integration absorbs the request, a full request turns a waiting delta into a full)
 * and records the queued run. The run row is written when this call added the job, or when the
 * job found is the one of the same schedule slot (an earlier attempt may have stopped before
 * writing it; writing is idempotent on the run id). A waiting delta upgraded to full has its row
 * say so. Callers check first that the integration may sync (exists, is enabled, is theirs).
 */
export async function requestSync(deps: RequestSyncDeps, input: SyncRequestInput, options: RequestSyncOptions = {}): Promise<EnqueueSyncResult> {
  const dryRun = input.dryRun ?? false;
  const scheduledFor = input.scheduledFor?.toISOString();
  const result = await deps.enqueue.enqueueSync({
    integrationId: input.integrationId,
    mode: input.mode,
    trigger: input.trigger,
    dryRun,
    requestedBy: input.requestedBy,
    ...(scheduledFor === undefined ? {} : { scheduledFor }),
  });
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
  return result;
}
