import type { RunCounts, SyncJobData } from '@dirsync/contracts';
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import type { Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import {
  type Db,
  FencedOutError,
  findApproval,
  getIntegration,
  type Integration,
  type KeyRing,
  type Run,
  withIntegrationSecret,
} from '@dirsync/db';
import { parseSyncJob, type RedisClient, releaseWaitingSlot } from '@dirsync/jobs';
import type { Cursor, Provider } from '@dirsync/providers';
import { classifyFailure } from './failure.ts';
import { acquireSyncSlots, directoryHostOf, resolveSyncLimits, type SlotsOutcome, slotRetryDelayMs, type SyncLimitOptions } from './limits.ts';
import { DEFAULT_LOCK_TIMING, type HeldLock, integrationLockKey, type LockTiming, tryAcquireLock } from './lock.ts';
import { type ModePlan, planMode, type RunLimits, runSync, type SyncOutcome, type SyncReport } from './pipeline/index.ts';
import { RunRecorder } from './run-recorder.ts';
import { failSpan, startSpan, type TraceParent } from './ops/tracing.ts';

/** Whose integration a provider is built for: the Entra factory checks the account's own consent. */
export interface ProviderOwner {
  readonly accountId: string;
  readonly integrationId: string;
}

/** Builds the provider of an integration from its kind, validated settings and decrypted secret. */
export type ProviderFactory = (
  kind: string,
  settings: Record<string, unknown>,
  secret: string | undefined,
  owner?: ProviderOwner,
) => Provider | Promise<Provider>;

/** Dependencies of {@link createSyncProcessor}. */
export interface SyncProcessorOptions {
  readonly db: Db;
  /** Connection used for the integration locks. */
  readonly redis: RedisClient;
  /** BullMQ key prefix; the locks live under it. */
  readonly prefix: string;
  readonly keyRing: KeyRing;
  readonly logger: Logger;
  readonly workerId: string;
  readonly createProvider: ProviderFactory;
  readonly lockTiming?: LockTiming | undefined;
  /** How long a job waits before trying again when its integration is locked (default 5 s). */
  readonly lockRetryDelayMs?: number | undefined;
  /** Pipeline batch size (default: the pipeline's). */
  readonly batchSize?: number | undefined;
  /** What one run may cost (default: the pipeline's `defaultRunLimits`). */
  readonly runLimits?: Partial<RunLimits> | undefined;
  /**
   * Syncs at once per account, per account for full syncs, and per directory server, across
   * every worker sharing the Redis (defaults: `DEFAULT_SYNC_LIMITS`).
   */
  readonly syncLimits?: SyncLimitOptions | undefined;
  /** Traces each run attempt (see `createTracing`); undefined: no tracing, at no cost. */
  readonly tracer?: Tracer | undefined;
}

/** What a completed sync job returns (stored by BullMQ as the job's return value). */
export interface SyncJobResult extends Readonly<RunCounts> {
  readonly runId: string;
  readonly integrationId: string;
  readonly status: SyncOutcome;
  readonly mode: SyncReport['mode'];
  readonly reason: string;
  readonly issueCount: number;
}

/** The job's result: the run as stored, whose write counts cover every attempt of the run. */
function summary(payload: SyncJobData, report: SyncReport, run: Run): SyncJobResult {
  return {
    runId: payload.runId,
    integrationId: payload.integrationId,
    status: report.status,
    mode: report.mode,
    reason: report.reason,
    fetched: run.fetched,
    created: run.created,
    updated: run.updated,
    unchanged: run.unchanged,
    deleted: run.deleted,
    restored: run.restored,
    failed: run.failed,
    membershipsAdded: run.membershipsAdded,
    membershipsRemoved: run.membershipsRemoved,
    wouldDelete: run.wouldDelete,
    issueCount: report.issueCount,
  };
}

/**
 * The BullMQ processor of sync jobs: parse the payload, take the integration's lock (or hand the
 * job back as delayed), record the run, run the pipeline with the decrypted secret's provider,
 * store the report and the cursor. Non-retryable failures (bad credentials or settings, a
 * payload or secret that cannot be used) become `UnrecoverableError`; others are rethrown for
 * BullMQ's retry with backoff. Every attempt's outcome is written to the run report.
 */
export function createSyncProcessor(options: SyncProcessorOptions) {
  const { db, logger } = options;
  const timing = options.lockTiming ?? DEFAULT_LOCK_TIMING;
  const retryDelayMs = options.lockRetryDelayMs ?? 5_000;
  const limits = resolveSyncLimits(options.syncLimits);

  return async function processSyncJob(job: Job, token?: string): Promise<SyncJobResult> {
    let payload: SyncJobData;
    try {
      payload = parseSyncJob(job.data);
    } catch (error) {
      const verdict = classifyFailure(error);
      logger.error({ jobId: job.id, error: verdict.message }, 'sync job refused');
      throw new UnrecoverableError(verdict.message);
    }
    const log = logger.child({ jobId: job.id, integrationId: payload.integrationId, runId: payload.runId });

    const lock = await tryAcquireLock(options.redis, integrationLockKey(options.prefix, payload.integrationId), timing);
    if (!lock) {
      // Another worker syncs this integration: come back later without spending an attempt.
      // The job stays in the delayed set, so it keeps absorbing duplicate requests meanwhile.
      log.debug('integration busy, job delayed');
      await job.moveToDelayed(Date.now() + retryDelayMs, token);
      throw new DelayedError();
    }
    try {
      const integration = await getIntegration(db, payload.integrationId);
      if (!integration) throw new UnrecoverableError(`integration ${payload.integrationId} not found`);
      // A delta without a cursor reads the whole directory: it counts as a full sync here too.
      const full = planMode(payload.mode, integration.cursor as Cursor | null).mode === 'full';
      const host = directoryHostOf(integration.settings);
      const outcome: SlotsOutcome = integration.enabled
        ? await acquireSyncSlots(options.redis, options.prefix, { accountId: integration.accountId, host, full }, limits)
        : // A disabled integration's run only records its refusal: it takes no slot.
          { ok: true, slots: { lost: new AbortController().signal, release: async () => undefined } };
      if (!outcome.ok) {
        // Its account or directory server is at its limit: hand the job back without spending
        // an attempt or a worker slot; the jitter spreads the syncs turned away together.
        log.debug({ blockedBy: outcome.blockedBy, full, host }, 'sync limit reached, job delayed');
        await job.moveToDelayed(Date.now() + slotRetryDelayMs(limits.retryDelayMs), token);
        throw new DelayedError();
      }
      // A lost lease only lets the count run over its limit for a while (Redis unreachable for a
      // whole lease): not worth stopping a sync for, unlike a lost integration lock.
      outcome.slots.lost.addEventListener('abort', () => log.warn('a sync-limit lease ran out before it was renewed; the limit may be exceeded until this sync ends'), { once: true });
      try {
        await releaseWaitingSlot(job);
        return await runLocked(options, job, payload, integration, lock, log);
      } finally {
        await outcome.slots.release();
      }
    } finally {
      await lock.release().catch((error: unknown) => {
        log.warn({ error: classifyFailure(error).message }, 'could not release the integration lock; it expires by itself');
      });
    }
  };
}

async function runLocked(
  options: SyncProcessorOptions,
  job: Job,
  payload: SyncJobData,
  integration: Integration,
  lock: HeldLock,
  log: Logger,
): Promise<SyncJobResult> {
  const { db } = options;

  const attempt = job.attemptsMade + 1;
  const maxAttempts = job.opts.attempts ?? 1;
  const recorder = await RunRecorder.begin(db, {
    runId: payload.runId,
    integrationId: integration.id,
    jobId: job.id,
    payload,
    fence: `${attempt}:${lock.token}`,
    attempt,
    maxAttempts,
    workerId: options.workerId,
    previousError: attempt > 1 && job.failedReason ? job.failedReason : undefined,
  }).catch((error: unknown) => {
    // The run ended already (another attempt finished it): nothing is left to do for this job.
    if (error instanceof FencedOutError) throw new UnrecoverableError(error.message);
    throw error;
  });

  const started = performance.now();
  let plan: ModePlan | undefined;
  // One trace per attempt: ids only, never settings, names or directory data.
  const traced: TraceParent | undefined =
    options.tracer === undefined
      ? undefined
      : {
          tracer: options.tracer,
          span: startSpan(options.tracer, 'dirsync.run', {
            'dirsync.run.id': payload.runId,
            'dirsync.integration.id': integration.id,
            'dirsync.integration.kind': integration.kind,
            'dirsync.account.id': integration.accountId,
            'dirsync.run.mode_requested': payload.mode,
            'dirsync.run.dry_run': payload.dryRun,
            'dirsync.run.attempt': attempt,
            'dirsync.worker.id': options.workerId,
          }),
        };
  try {
    if (!integration.enabled) throw new UnrecoverableError('integration is disabled');
    // Stored as JSON by the provider that made it; only that provider interprets it.
    const cursor = (integration.cursor ?? null) as Cursor | null;
    const report = await withIntegrationSecret(db, options.keyRing, integration.id, async (secret) => {
      const provider = await options.createProvider(integration.kind, integration.settings, secret, { accountId: integration.accountId, integrationId: integration.id });
      try {
        return await runSync({
          db,
          provider,
          integration: {
            id: integration.id,
            cursor,
            deleteThresholdCount: integration.deleteThresholdCount,
            deleteThresholdPercent: integration.deleteThresholdPercent,
          },
          run: { id: payload.runId, modeRequested: payload.mode, dryRun: payload.dryRun },
          signal: lock.lost,
          onProgress: (progress) => job.updateProgress({ processed: progress.processed }),
          onPlan: (decided) => {
            plan = decided;
          },
          // Looked up for the mode the pipeline decides, before any deletion is weighed.
          approvalFor: async (mode) => {
            const approvalRun = await findApproval(db, integration.id, { mode });
            return approvalRun ? { maxDeletions: approvalRun.wouldDelete } : undefined;
          },
          batchSize: options.batchSize,
          fence: recorder.fence,
          limits: options.runLimits,
          trace: traced,
        });
      } finally {
        await provider.close().catch(() => undefined);
      }
    });
    const run = await recorder.complete(report, performance.now() - started);
    const result = summary(payload, report, run);
    log.info(result, 'sync finished');
    traced?.span.setAttributes({
      'dirsync.run.status': result.status,
      'dirsync.run.mode': result.mode,
      'dirsync.objects.fetched': result.fetched,
      'dirsync.objects.created': result.created,
      'dirsync.objects.updated': result.updated,
      'dirsync.objects.deleted': result.deleted,
      'dirsync.objects.failed': result.failed,
    });
    return result;
  } catch (error) {
    if (error instanceof FencedOutError && lock.lost.aborted === false) {
      // Our own run may still be ours: only the integration moved on (it cannot while we hold
      // the lock, unless the lock expired unnoticed). Treat it like a lost lock.
      log.warn({ error: error.message }, 'sync attempt fenced out');
    }
    const verdict = error instanceof UnrecoverableError ? { retry: false, message: error.message } : classifyFailure(error);
    const willRetry = verdict.retry && attempt < maxAttempts;
    if (traced) {
      traced.span.setAttributes({ 'dirsync.run.status': willRetry ? 'retrying' : 'failed', ...(plan === undefined ? {} : { 'dirsync.run.mode': plan.mode }) });
      // The message the run report stores: classified, without secrets.
      failSpan(traced.span, verdict.message, error instanceof Error ? error.name : 'Error');
    }
    try {
      await recorder.fail({ message: verdict.message, willRetry, plan, durationMs: performance.now() - started });
    } catch (recordError) {
      if (recordError instanceof FencedOutError) {
        // A newer attempt owns the run: this one stops here, without touching it or the job's
        // outcome (the newer attempt reports it).
        log.warn({ error: recordError.message }, 'stale sync attempt stopped');
        throw new UnrecoverableError(`stale attempt ${attempt} stopped: ${recordError.message}`);
      }
      // The database may be what failed; the reconciler fixes the run from the job's outcome.
      log.error({ error: classifyFailure(recordError).message }, 'could not record the failed attempt');
    }
    log.warn({ error: verdict.message, retry: willRetry, attempt, maxAttempts }, 'sync attempt failed');
    if (!verdict.retry) throw error instanceof UnrecoverableError ? error : new UnrecoverableError(verdict.message);
    throw error;
  } finally {
    traced?.span.end();
  }
}
