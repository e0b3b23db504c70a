import type { SyncJobData } from '@dirsync/contracts';
import {
  expireConsentRequests,
  pruneConsoleSignIns,
  pruneHistory,
  withReconcileLock,
  type Db,
  type HistoryRetention,
  type PrunedConsoleSignIns,
  type PrunedHistory,
  type ReconcileSession,
  type UnfinishedRun,
} from '@dirsync/db';
import { createSyncJobInspector, runJobId, type RedisConnection, type SyncJobInspector } from '@dirsync/jobs';
import type { Logger } from 'pino';

/** Default time between passes. */
export const DEFAULT_RECONCILE_INTERVAL_MS = 60_000;
/** Default silence after which a running run whose job is gone counts as lost. */
export const DEFAULT_RUN_STALL_LIMIT_MS = 10 * 60_000;
/** Default age before a queued run without a job counts as lost (its producer may be mid-way). */
export const DEFAULT_QUEUED_GRACE_MS = 60_000;

/** Options of {@link createReconciler}. */
export interface ReconcilerOptions {
  readonly db: Db;
  /** Redis of the queues; the reconciler opens and closes its own connection. */
  readonly connection: RedisConnection;
  /** BullMQ key prefix; must match the workers'. */
  readonly prefix?: string | undefined;
  readonly logger: Logger;
  /** Time between passes (default {@link DEFAULT_RECONCILE_INTERVAL_MS}). */
  readonly intervalMs?: number | undefined;
  /**
   * A `running`/`retrying` run whose job is gone fails once it has not reported (heartbeat, start)
   * for this long (default {@link DEFAULT_RUN_STALL_LIMIT_MS}). Keep it well above the longest
   * gap between two write batches of a sync.
   */
  readonly stallLimitMs?: number | undefined;
  /** A `queued` run is looked at once it is this old (default {@link DEFAULT_QUEUED_GRACE_MS}). */
  readonly queuedGraceMs?: number | undefined;
  /** Runs looked at per pass (default 1000); the rest wait for the next pass. */
  readonly batchSize?: number | undefined;
  /**
   * Old runs and audit events each pass deletes, in bounded batches (see `pruneHistory`), after
   * the runs are reconciled and only by the replica that reconciled. Omitted: no run or audit
   * event is pruned (expired console sign-ins are deleted every pass whatever this says: nothing
   * of them is worth keeping).
   */
  readonly retention?: HistoryRetention | undefined;
}

/** What one pass did. */
export interface ReconcileResult {
  /** Another replica was reconciling: this pass did nothing. */
  readonly skipped: boolean;
  readonly examined: number;
  readonly failed: { readonly runId: string; readonly error: string }[];
  readonly requeued: string[];
  /** Runs whose job could not be read or re-added (Redis trouble); the next pass tries again. */
  readonly errors: { readonly runId: string; readonly error: string }[];
  /** Admin-consent requests this pass ended because their link expired unanswered. */
  expiredConsentRequests?: number;
  /** Runs and audit events this pass deleted under the retention settings. */
  pruned?: PrunedHistory;
  /** Expired console sessions, used or expired sign-in links and unfinished sign-ins this pass deleted. */
  expiredConsoleSignIns?: PrunedConsoleSignIns;
}

/** Puts runs back in line with the queue; see {@link createReconciler}. */
export interface Reconciler {
  /** Passes every `intervalMs`, the first at once. */
  start(): void;
  /** Stops the passes, waits for a running one and closes the Redis connection. Idempotent. */
  stop(): Promise<void>;
  /** One pass now. Never rejects for one run's trouble. */
  reconcile(): Promise<ReconcileResult>;
}

const seconds = (ms: number) => Math.round(ms / 1000);

/**
 * Creates the run reconciler. Each pass, under a database lock only one replica gets, it reads
 * the runs that are not final and the state of their jobs:
 * - `running`/`retrying` whose job failed for good (e.g. BullMQ's "job stalled more than
 *   allowable limit" after a worker was killed twice, or a failure the worker could not write)
 *   → `failed` with the queue's reason;
 * - `running`/`retrying` whose job is gone, silent for `stallLimitMs` → `failed`;
 * - `queued` whose job is gone (Redis lost its data) → enqueued again once (`requeued_at`); gone
 *   again → `failed`.
 * A live job (waiting, delayed, active) is never second-guessed: the queue's own stalled check
 * handles dead workers. Failing a run moves its fence, so an attempt that resumes later writes
 * nothing; the integration follows while that attempt held it.
 */
export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { db, logger } = options;
  const intervalMs = options.intervalMs ?? DEFAULT_RECONCILE_INTERVAL_MS;
  const stallLimitMs = options.stallLimitMs ?? DEFAULT_RUN_STALL_LIMIT_MS;
  const queuedGraceMs = options.queuedGraceMs ?? DEFAULT_QUEUED_GRACE_MS;
  const batchSize = options.batchSize ?? 1000;
  for (const [name, value] of Object.entries({ intervalMs, stallLimitMs, queuedGraceMs, batchSize })) {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a non-negative number`);
  }
  let inspector: SyncJobInspector | undefined;
  const jobs = () =>
    (inspector ??= createSyncJobInspector({
      connection: options.connection,
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
      onError: (error) => logger.warn({ err: error }, 'reconciler: redis connection error'),
    }));
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;

  async function reconcileRun(session: ReconcileSession, run: UnfinishedRun, result: ReconcileResult): Promise<void> {
    const jobId = run.jobId ?? runJobId(run.id);
    const job = await jobs().stateOf(jobId, run.id);
    if (job.state === 'live') return;
    const fail = async (error: string) => {
      if (await session.failLostRun(run, error)) {
        result.failed.push({ runId: run.id, error });
        logger.warn({ runId: run.id, integrationId: run.integrationId, jobId, error }, 'reconciler: run failed');
      }
    };
    if (job.state === 'failed') {
      await fail(`the queue failed the job ${jobId}: ${job.reason}`);
      return;
    }
    if (run.status !== 'queued') {
      if (run.idleMs < stallLimitMs) return;
      const what = job.state === 'completed' ? 'completed without ending the run' : 'is gone';
      await fail(`its queue job ${jobId} ${what} and no attempt has reported for ${seconds(run.idleMs)} s`);
      return;
    }
    if (run.idleMs < queuedGraceMs) return;
    if (run.requeuedAt !== null) {
      await fail(`its queue job ${jobId} was lost again after the run was re-enqueued (Redis lost its data?)`);
      return;
    }
    if (job.state === 'completed') {
      await fail(`its queue job ${jobId} completed without starting the run`);
      return;
    }
    if (!(await session.markRunRequeued(run.id))) return;
    const data: SyncJobData = {
      integrationId: run.integrationId,
      runId: run.id,
      mode: run.modeRequested,
      trigger: run.trigger as SyncJobData['trigger'],
      dryRun: run.dryRun,
      ...(run.requestedBy === null ? {} : { requestedBy: run.requestedBy }),
    };
    // A failure here rolls the mark back with the pass's transaction, so the next pass retries.
    await jobs().requeue(jobId, data);
    result.requeued.push(run.id);
    logger.warn({ runId: run.id, integrationId: run.integrationId, jobId }, 'reconciler: queued run had lost its job; enqueued again');
  }

  async function reconcile(): Promise<ReconcileResult> {
    const outcome = await withReconcileLock(db, async (session) => {
      const runs = await session.listUnfinishedRuns(batchSize);
      const result: ReconcileResult = { skipped: false, examined: runs.length, failed: [], requeued: [], errors: [] };
      for (const run of runs) {
        try {
          await reconcileRun(session, run, result);
        } catch (error) {
          // A statement error aborts the transaction: the pass ends and the next one starts over.
          if (error instanceof Error && 'query' in error) throw error;
          const message = error instanceof Error ? error.message : String(error);
          result.errors.push({ runId: run.id, error: message });
          logger.error({ runId: run.id, err: error }, 'reconciler: could not reconcile run');
        }
      }
      return result;
    });
    if (!outcome.acquired) return { skipped: true, examined: 0, failed: [], requeued: [], errors: [] };
    // A consent link nobody answered must not leave its request pending for ever (the tenant's
    // administrator may never come back); one replica's pass is enough.
    outcome.value.expiredConsentRequests = await expireConsentRequests(db);
    // Otherwise they went only when someone signed in: a quiet console kept its expired sessions,
    // links and abandoned sign-ins (token hashes) for ever.
    try {
      const expired = await pruneConsoleSignIns(db, { maxBatches: options.retention?.maxBatches });
      outcome.value.expiredConsoleSignIns = expired;
      if (expired.sessions + expired.links + expired.oidcLogins > 0) logger.info(expired, 'reconciler: deleted expired console sign-ins');
    } catch (error) {
      logger.error({ err: error }, 'reconciler: deleting expired console sign-ins failed');
    }
    // After the runs are put right, so a run this pass failed is final before retention looks at it.
    if (options.retention !== undefined) {
      try {
        outcome.value.pruned = await pruneHistory(db, options.retention);
        const { runs, auditEvents, changes, webhooks = 0, more } = outcome.value.pruned;
        if (runs > 0 || auditEvents > 0 || changes > 0 || webhooks > 0) logger.info({ runs, auditEvents, changes, webhooks, more }, 'reconciler: pruned old runs and audit events');
      } catch (error) {
        // The batches already deleted stay deleted; the next pass goes on. The runs this pass put
        // right must still be reported.
        logger.error({ err: error }, 'reconciler: pruning old runs and audit events failed');
      }
    }
    return outcome.value;
  }

  function schedule(delay: number): void {
    if (stopped) return;
    timer = setTimeout(() => {
      const pass = reconcile()
        .catch((error: unknown) => logger.error({ err: error }, 'reconciler pass failed'))
        .finally(() => {
          running = undefined;
          schedule(intervalMs);
        });
      running = pass;
    }, delay);
  }

  return {
    reconcile,
    start() {
      if (stopped) throw new Error('a stopped reconciler cannot be started again');
      if (timer !== undefined || running !== undefined) return;
      logger.info({ intervalMs, stallLimitMs }, 'reconciler started');
      schedule(0);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await running;
      await inspector?.close();
    },
  };
}
