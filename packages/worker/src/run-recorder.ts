import type { SyncJobData } from '@dirsync/contracts';
import {
  completeRunAttempt,
  createRun,
  type Db,
  failRunAttempt,
  type Run,
  startRunAttempt,
  claimIntegrationFence,
} from '@dirsync/db';
import type { ModePlan, SyncReport } from './pipeline/index.ts';

/** Who runs which attempt of which run (see {@link RunRecorder.begin}). */
export interface RunAttempt {
  readonly runId: string;
  readonly integrationId: string;
  readonly jobId: string | undefined;
  readonly payload: SyncJobData;
  /** Attempt number and the integration lock's token: unique to this attempt. */
  readonly fence: string;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly workerId: string;
  /** Why the queue retries: the previous attempt's error, which that attempt may not have written. */
  readonly previousError?: string | undefined;
}

/**
 * The one place a worker writes a run's state: it creates the run when its producer could not,
 * starts it for this attempt, and ends it from the pipeline's report or the attempt's error.
 * Every write is fenced by the attempt's token, so an attempt that lost its integration lock to a
 * newer one can change nothing (`FencedOutError`).
 */
export class RunRecorder {
  readonly #db: Db;
  readonly #attempt: RunAttempt;

  private constructor(db: Db, attempt: RunAttempt) {
    this.#db = db;
    this.#attempt = attempt;
  }

  /** The attempt's fencing token, for the pipeline's write steps. */
  get fence(): string {
    return this.#attempt.fence;
  }

  /**
   * Claims the integration's fence for this attempt (the caller holds its Redis lock), makes sure
   * the run exists (its producer normally created it as `queued`) and marks it `running`.
   */
  static async begin(db: Db, attempt: RunAttempt): Promise<RunRecorder> {
    const { payload } = attempt;
    if (!payload.dryRun) await claimIntegrationFence(db, attempt.integrationId, attempt.fence);
    await createRun(db, {
      id: attempt.runId,
      integrationId: attempt.integrationId,
      ...(attempt.jobId === undefined ? {} : { jobId: attempt.jobId }),
      modeRequested: payload.mode,
      trigger: payload.trigger,
      dryRun: payload.dryRun,
      ...(payload.requestedBy === undefined ? {} : { requestedBy: payload.requestedBy }),
    });
    await startRunAttempt(db, {
      runId: attempt.runId,
      integrationId: attempt.integrationId,
      fence: attempt.fence,
      attempt: attempt.attempt,
      maxAttempts: attempt.maxAttempts,
      workerId: attempt.workerId,
      dryRun: payload.dryRun,
      previousError: attempt.previousError,
    });
    return new RunRecorder(db, attempt);
  }

  /**
   * Ends the run with the pipeline's report (and the cursor of a successful run). A real run's
   * write counts were added batch by batch, across attempts; a dry run's are stored as reported.
   */
  async complete(report: SyncReport, durationMs: number): Promise<Run> {
    const { payload } = this.#attempt;
    return completeRunAttempt(this.#db, {
      runId: this.#attempt.runId,
      integrationId: this.#attempt.integrationId,
      fence: this.#attempt.fence,
      report: {
        status: report.status,
        mode: report.mode,
        reason: report.reason,
        fetched: report.fetched,
        unchanged: report.unchanged,
        failed: report.failed,
        wouldDelete: report.wouldDelete,
        issues: report.issues,
        issueCount: report.issueCount,
        durationMs,
        writes: payload.dryRun
          ? {
              created: report.created,
              updated: report.updated,
              restored: report.restored,
              deleted: report.deleted,
              membershipsAdded: report.membershipsAdded,
              membershipsRemoved: report.membershipsRemoved,
            }
          : undefined,
      },
      cursor: report.status === 'succeeded' && report.cursor !== undefined ? (report.cursor as Record<string, unknown>) : undefined,
      markIntegration: !payload.dryRun,
    });
  }

  /** Records a failed attempt: `retrying` when the queue tries again, else `failed`. */
  async fail(failure: { message: string; willRetry: boolean; plan: ModePlan | undefined; durationMs: number }): Promise<void> {
    await failRunAttempt(this.#db, {
      runId: this.#attempt.runId,
      integrationId: this.#attempt.integrationId,
      fence: this.#attempt.fence,
      error: failure.message,
      willRetry: failure.willRetry,
      mode: failure.plan?.mode,
      reason: failure.plan?.reason,
      durationMs: failure.durationMs,
      markIntegration: !this.#attempt.payload.dryRun,
    });
  }
}
