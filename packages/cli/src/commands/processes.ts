import type { Command } from 'commander';
import type { ReconcilerOptions } from '@dirsync/scheduler';
import { serveOpsPort } from '../ops-server.ts';
import type { Context } from '../context.ts';
import { startHttpServer } from './api.ts';
import { otlpEndpointOf, otlpHeadersOf, redisSettingsOf, workerShardsOf } from '../config.ts';
import { schedulerPackage, workerPackage } from '../packages.ts';

type WithContext = (run: (ctx: Context) => Promise<void>) => Promise<void>;

/** How long a stopping worker waits while its queue refuses every command before it exits anyway. */
const unusableQueueExitMs = 15_000;

/**
 * Resolves with `unusable` once `state` has reported not ok continuously for `ms` (checked
 * every second); never resolves while the queue works.
 */
function queueUnusableFor(state: () => Promise<{ readonly ok: boolean }>, ms: number): Promise<'unusable'> {
  return new Promise((resolve) => {
    let failingSince: number | undefined;
    const timer = setInterval(() => {
      void state().then((check) => {
        const now = Date.now();
        failingSince = check.ok ? undefined : (failingSince ?? now);
        if (failingSince !== undefined && now - failingSince >= ms) {
          clearInterval(timer);
          resolve('unusable');
        }
      });
    }, 1_000);
    timer.unref();
  });
}

/** Resolves on the first SIGTERM or SIGINT: the signal to finish in-flight work and exit. */
function shutdownSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

/** `dirsync worker` and `dirsync scheduler`: the long-running processes. */
export function registerProcessCommands(program: Command, withContext: WithContext): void {
  program
    .command('worker')
    .description('run a sync worker until SIGTERM (finishes its running jobs first)')
    .action(() =>
      withContext(async (ctx) => {
        ctx.setRole('dirsync-worker');
        const { createEntraAwareProviderFactory, createReadinessProbe, createTracing, createWorker, createWorkerMetrics } = await workerPackage();
        const logger = ctx.logger('worker');
        const metrics = createWorkerMetrics({ db: ctx.db() });
        // Traces only when an OTLP endpoint is configured; otherwise no tracer exists at all.
        const tracing = await createTracing({
          endpoint: otlpEndpointOf(ctx.config),
          headers: otlpHeadersOf(ctx.config),
          onExportFailure: ({ reason, failedExports }) => logger.warn({ reason, failedExports }, 'traces could not be exported to the OTLP endpoint'),
        });
        const worker = createWorker({
          db: ctx.db(),
          connection: redisSettingsOf(ctx.config),
          shards: workerShardsOf(ctx.config),
          prefix: ctx.config.DIRSYNC_QUEUE_PREFIX,
          concurrency: ctx.config.DIRSYNC_WORKER_CONCURRENCY,
          keyRing: ctx.keyRing(),
          logger,
          workerId: ctx.config.DIRSYNC_WORKER_ID,
          destinations: ctx.destinations(),
          webhooks: { allowHttp: ctx.config.DIRSYNC_WEBHOOK_ALLOW_HTTP, disableAfterFailures: ctx.config.DIRSYNC_WEBHOOK_DISABLE_AFTER_FAILURES },
          // The registry, plus connector certificates and the consent grace for Entra ID.
          createProvider: createEntraAwareProviderFactory({
            db: ctx.db(),
            keyRing: ctx.keyRing(),
            destinations: ctx.destinations(),
            consentRefusal: { graceMs: ctx.config.DIRSYNC_CONSENT_GRACE_MINUTES * 60_000, failuresToRevoke: ctx.config.DIRSYNC_CONSENT_FAILURES_TO_REVOKE },
          }),
          metrics,
          tracer: tracing.tracer,
          consentPropagationWaitMs: ctx.config.DIRSYNC_CONSENT_PROPAGATION_WAIT_SECONDS * 1000,
          runLimits: { maxObjects: ctx.config.DIRSYNC_MAX_OBJECTS_PER_RUN, maxDurationMs: ctx.config.DIRSYNC_MAX_RUN_MINUTES * 60_000 },
          syncLimits: {
            accountConcurrency: ctx.config.DIRSYNC_ACCOUNT_CONCURRENCY,
            accountFullConcurrency: ctx.config.DIRSYNC_ACCOUNT_FULL_CONCURRENCY,
            hostConcurrency: ctx.config.DIRSYNC_HOST_CONCURRENCY,
            retryDelayMs: ctx.config.DIRSYNC_LIMIT_RETRY_SECONDS * 1000,
          },
        });
        // /healthz, /readyz and /metrics for the orchestrator and Prometheus.
        let stopping = false;
        const ops = await serveOpsPort({
          port: ctx.config.DIRSYNC_METRICS_PORT,
          registry: metrics.registry,
          readiness: createReadinessProbe({ db: ctx.db(), queue: () => worker.queueState(), stopping: () => stopping }),
          logger,
        });
        logger.info({ concurrency: ctx.config.DIRSYNC_WORKER_CONCURRENCY }, 'worker started');
        const signal = await shutdownSignal();
        stopping = true;
        logger.info({ signal }, 'worker stopping: finishing running jobs');
        const outcome = await Promise.race([worker.close().then(() => 'closed' as const), queueUnusableFor(() => worker.queueState(), unusableQueueExitMs)]);
        await ops?.close();
        // Sends the spans still buffered; a collector that is down costs at most its timeout.
        await tracing.shutdown().catch((error: unknown) => logger.warn({ error: error instanceof Error ? error.message : String(error) }, 'could not send the last traces'));
        if (outcome === 'unusable') {
          // No running job can be finished through a queue that refuses every command, and
          // BullMQ's close waits for commands that keep failing: the job locks expire and the
          // stalled-job check hands the jobs to another worker.
          logger.error({ seconds: unusableQueueExitMs / 1000 }, 'worker stopped without a graceful close: queue commands kept failing');
          process.exit(1);
        }
        logger.info('worker stopped');
      }),
    );

  program
    .command('scheduler')
    .description('run the scheduler until SIGTERM (replicas are safe: each due sync is enqueued once)')
    .action(() =>
      withContext(async (ctx) => {
        ctx.setRole('dirsync-scheduler');
        const { createScheduler } = await schedulerPackage();
        const logger = ctx.logger('scheduler');
        // The scheduler hands these options on to its reconciler whole, retention included.
        const reconcile: Pick<ReconcilerOptions, 'intervalMs' | 'stallLimitMs' | 'retention'> = {
          intervalMs: ctx.config.DIRSYNC_RECONCILE_SECONDS * 1000,
          stallLimitMs: ctx.config.DIRSYNC_RUN_STALL_SECONDS * 1000,
          retention: {
            runs: { days: ctx.config.DIRSYNC_RUN_RETENTION_DAYS, keep: ctx.config.DIRSYNC_RUN_RETENTION_KEEP },
            audit: { days: ctx.config.DIRSYNC_AUDIT_RETENTION_DAYS },
            changes: { hours: ctx.config.DIRSYNC_CHANGE_RETENTION_HOURS },
            webhooks: { days: ctx.config.DIRSYNC_WEBHOOK_RETENTION_DAYS },
          },
        };
        const scheduler = createScheduler({
          db: ctx.db(),
          connection: redisSettingsOf(ctx.config),
          prefix: ctx.config.DIRSYNC_QUEUE_PREFIX,
          tickCron: ctx.config.DIRSYNC_SCHEDULER_TICK,
          jitterMaxMs: ctx.config.DIRSYNC_SCHEDULER_JITTER_MAX_SECONDS * 1000,
          batchSize: ctx.config.DIRSYNC_SCHEDULER_BATCH_SIZE,
          logger,
          reconcile,
        });
        scheduler.start();
        // The API and its probes on PORT (unless DIRSYNC_SCHEDULER_API=false: then PORT stays free), probes and metrics on DIRSYNC_METRICS_PORT.
        // Readiness includes the scheduler's own enqueues: failing ones make it not ready.
        const http = await startHttpServer(ctx, ctx.logger('api'), {
          serveApi: ctx.config.DIRSYNC_SCHEDULER_API,
          readinessChecks: { enqueue: () => scheduler.health() },
        }).catch(async (error: unknown) => {
          await scheduler.stop();
          throw error;
        });
        logger.info({ tick: ctx.config.DIRSYNC_SCHEDULER_TICK }, 'scheduler started');
        const signal = await shutdownSignal();
        logger.info({ signal }, 'scheduler stopping');
        await http.close();
        await scheduler.stop();
        logger.info('scheduler stopped');
      }),
    );
}
