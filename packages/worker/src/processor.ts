import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  createRun,
  type Db,
  findApproval,
  finishRun,
  getIntegration,
  type KeyRing,
  markIntegrationRun,
  setCursor,
  startRun,
  withIntegrationSecret,
} from '@dirsync/db';
import { parseSyncJob, releaseWaitingSlot, type SyncJobData } from '@dirsync/jobs';
import type { Cursor, Provider } from '@dirsync/providers';
import { classifyFailure } from './failure.ts';
import { DEFAULT_LOCK_TIMING, integrationLockKey, type LockTiming, tryAcquireLock } from './lock.ts';
import { planMode, runSync, type SyncOutcome, type SyncReport } from './pipeline/index.ts';

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
  readonly redis: Redis;
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
}

/** What a completed sync job returns (stored by BullMQ as the job's return value). */
export interface SyncJobResult {
  readonly runId: string;
  readonly integrationId: string;
  readonly status: SyncOutcome;
  readonly mode: SyncReport['mode'];
  readonly reason: string;
  readonly fetched: number;
  readonly created: number;
  readonly updated: number;
  readonly unchanged: number;
  readonly deleted: number;
  readonly restored: number;
  readonly failed: number;
  readonly membershipsAdded: number;
  readonly membershipsRemoved: number;
  readonly wouldDelete: number;
  readonly issueCount: number;
}

function summary(payload: SyncJobData, report: SyncReport): SyncJobResult {
  return {
    runId: payload.runId,
    integrationId: payload.integrationId,
    status: report.status,
    mode: report.mode,
    reason: report.reason,
    fetched: report.fetched,
    created: report.created,
    updated: report.updated,
    unchanged: report.unchanged,
    deleted: report.deleted,
    restored: report.restored,
    failed: report.failed,
    membershipsAdded: report.membershipsAdded,
    membershipsRemoved: report.membershipsRemoved,
    wouldDelete: report.wouldDelete,
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
      await releaseWaitingSlot(job);
      return await runLocked(options, job, payload, lock.lost, log);
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
  lockLost: AbortSignal,
  log: Logger,
): Promise<SyncJobResult> {
  const { db } = options;
  const integration = await getIntegration(db, payload.integrationId);
  if (!integration) throw new UnrecoverableError(`integration ${payload.integrationId} not found`);

  await createRun(db, {
    id: payload.runId,
    integrationId: payload.integrationId,
    ...(job.id === undefined ? {} : { jobId: job.id }),
    modeRequested: payload.mode,
    trigger: payload.trigger,
    dryRun: payload.dryRun,
    ...(payload.requestedBy === undefined ? {} : { requestedBy: payload.requestedBy }),
  });
  // Stored as JSON by the provider that made it; only that provider interprets it.
  const cursor = (integration.cursor ?? null) as Cursor | null;
  const plan = planMode(payload.mode, cursor);
  await startRun(db, payload.runId, { mode: plan.mode, reason: plan.reason, workerId: options.workerId });
  if (!payload.dryRun) await markIntegrationRun(db, integration.id, { status: 'running', lastRunId: payload.runId });

  const started = performance.now();
  let mode = plan.mode;
  let reason = plan.reason;
  try {
    if (!integration.enabled) throw new UnrecoverableError('integration is disabled');
    const approvalRun = await findApproval(db, integration.id, { mode: plan.mode });
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
          signal: lockLost,
          onProgress: (progress) => job.updateProgress({ processed: progress.processed }),
          approval: approvalRun ? { maxDeletions: approvalRun.wouldDelete } : undefined,
          batchSize: options.batchSize,
        });
      } finally {
        await provider.close().catch(() => undefined);
      }
    });
    mode = report.mode;
    reason = report.reason;

    if (report.status === 'succeeded' && report.cursor !== undefined) {
      await setCursor(db, integration.id, report.cursor as Record<string, unknown>);
    }
    await finishRun(db, payload.runId, {
      status: report.status,
      fetched: report.fetched,
      created: report.created,
      updated: report.updated,
      unchanged: report.unchanged,
      deleted: report.deleted,
      restored: report.restored,
      failed: report.failed,
      membershipsAdded: report.membershipsAdded,
      membershipsRemoved: report.membershipsRemoved,
      wouldDelete: report.wouldDelete,
      issues: report.issues,
      issueCount: report.issueCount,
      error: null,
      mode: report.mode,
      reason: report.reason,
      durationMs: performance.now() - started,
    });
    if (!payload.dryRun) {
      await markIntegrationRun(db, integration.id, {
        status: report.status,
        lastRunId: payload.runId,
        success: report.status === 'succeeded',
      });
    }
    log.info(summary(payload, report), 'sync finished');
    return summary(payload, report);
  } catch (error) {
    const verdict = error instanceof UnrecoverableError ? { retry: false, message: error.message } : classifyFailure(error);
    const attemptsLeft = (job.opts.attempts ?? 1) - (job.attemptsMade + 1);
    const willRetry = verdict.retry && attemptsLeft > 0;
    const message = willRetry ? `${verdict.message} (will retry)` : verdict.message;
    await recordFailure(options, payload, { mode, reason, message, durationMs: performance.now() - started }, log);
    log.warn({ error: verdict.message, retry: willRetry }, 'sync failed');
    if (!verdict.retry) throw error instanceof UnrecoverableError ? error : new UnrecoverableError(verdict.message);
    throw error;
  }
}

async function recordFailure(
  options: SyncProcessorOptions,
  payload: SyncJobData,
  failure: { mode: SyncReport['mode']; reason: string; message: string; durationMs: number },
  log: Logger,
): Promise<void> {
  try {
    await finishRun(options.db, payload.runId, {
      status: 'failed',
      error: failure.message,
      mode: failure.mode,
      reason: failure.reason,
      durationMs: failure.durationMs,
    });
    if (!payload.dryRun) {
      await markIntegrationRun(options.db, payload.integrationId, { status: 'failed', lastRunId: payload.runId });
    }
  } catch (error) {
    // The database may be what failed; the job's own failure is what matters to BullMQ.
    log.error({ error: classifyFailure(error).message }, 'could not record the failed run');
  }
}
