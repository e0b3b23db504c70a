import type { Tracer } from '@opentelemetry/api';
import type { Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { Db, KeyRing } from '@dirsync/db';
import { closeRedis, createQueueWorker, DEFAULT_QUEUE_PREFIX, openRedis, type QueueCheck, type RedisConnection } from '@dirsync/jobs';
import { DestinationPolicy } from '@dirsync/providers';
import { createControlWorker, type ControlWorker } from './control/index.ts';
import { createEntraAwareProviderFactory, withConsentStatus } from './entra/index.ts';
import { classifyFailure } from './failure.ts';
import type { SyncLimitOptions } from './limits.ts';
import type { LockTiming } from './lock.ts';
import type { WorkerMetrics } from './ops/metrics.ts';
import type { RunLimits } from './pipeline/index.ts';
import { createSyncProcessor, type ProviderFactory, type SyncJobResult } from './processor.ts';
import { createRotationWorker, type RotationJobResult } from './rotation/index.ts';
import { createWebhookWorker, type WebhookDeliverySettings, type WebhookWorker } from './webhooks/index.ts';

/** Options of {@link createWorker}. */
export interface CreateWorkerOptions {
  readonly db: Db;
  /** Redis URL (standalone); `connection` wins when given. */
  readonly redisUrl?: string | undefined;
  /** The installation's Redis settings (cluster mode, sync shards); default `redisUrl`. */
  readonly connection?: RedisConnection | undefined;
  /**
   * Sync shards this process consumes (`DIRSYNC_WORKER_SHARDS`, see `parseShardSelection`);
   * default every shard.
   */
  readonly shards?: readonly number[] | undefined;
  /** BullMQ key prefix; must match the producers' (default: BullMQ's own). */
  readonly prefix?: string | undefined;
  /**
   * Syncs this process runs at once (of different integrations); with several shards it is
   * divided among them, rounded up.
   */
  readonly concurrency: number;
  readonly keyRing: KeyRing;
  readonly logger: Logger;
  /** Recorded on every run this worker executes. */
  readonly workerId: string;
  /**
   * Builds providers; by default the providers registry, with Entra ID integrations given their
   * connector's current certificate (see `createEntraAwareProviderFactory`).
   */
  readonly createProvider?: ProviderFactory | undefined;
  /**
   * BullMQ stalled-job check period (default 30 s): how soon a killed worker's job is taken over.
   * Give every worker of a queue the same value: the check is shared through a Redis key that
   * lives this long, so one worker's longer period delays everyone's check.
   */
  readonly stalledInterval?: number | undefined;
  /** BullMQ job lock duration (default 30 s). */
  readonly jobLockDurationMs?: number | undefined;
  /** Integration lock TTL and renewal period (default 30 s / 10 s). */
  readonly integrationLock?: LockTiming | undefined;
  /** Delay before a job whose integration is locked tries again (default 5 s). */
  readonly lockRetryDelayMs?: number | undefined;
  /** Pipeline batch size. */
  readonly batchSize?: number | undefined;
  /** What one run may cost (default: the pipeline's `defaultRunLimits`). */
  readonly runLimits?: Partial<RunLimits> | undefined;
  /**
   * Syncs at once per account, per account for full syncs, and per directory server, across
   * every worker sharing the Redis (defaults: `DEFAULT_SYNC_LIMITS`; 0 is unlimited).
   */
  readonly syncLimits?: SyncLimitOptions | undefined;
  /** Runs connector credential rotations (the rotation queue) in this process too. Default true. */
  readonly runRotations?: boolean | undefined;
  /**
   * Control-queue jobs (Test Connection, new-secret checks) this process runs at once beside its
   * syncs; 0 runs no control worker. Default 4.
   */
  readonly controlConcurrency?: number | undefined;
  /**
   * How long a consent verification asks again for tokens that lack the permissions an
   * administrator just granted (default 120 s).
   */
  readonly consentPropagationWaitMs?: number | undefined;
  /** Records every finished sync job (see `createWorkerMetrics`). */
  readonly metrics?: WorkerMetrics | undefined;
  /** Traces every sync run (see `createTracing`); undefined: none. */
  readonly tracer?: Tracer | undefined;
  /**
   * Where this worker may connect when it reaches customers' systems (syncs, Test Connection,
   * credential rotation). Default: the strict policy (public addresses only); the platform's
   * allowed networks and own endpoints come from its configuration.
   */
  readonly destinations?: DestinationPolicy | undefined;
  /**
   * Webhook delivery in this process (the webhook queue and its sweep), reaching endpoints
   * through `destinations`; false runs none. Default: on, with the delivery defaults.
   */
  readonly webhooks?: (Omit<WebhookDeliverySettings, 'destinations'> & { readonly concurrency?: number | undefined; readonly sweepIntervalMs?: number | undefined }) | false | undefined;
}

/** A running worker. */
export interface DirsyncWorker {
  /** The BullMQ worker of the first consumed sync shard (for events in tests and tooling). */
  readonly worker: Worker<unknown, SyncJobResult>;
  /** One BullMQ worker per consumed sync shard. */
  readonly workers: readonly Worker<unknown, SyncJobResult>[];
  /** The rotation-queue worker, unless `runRotations` is false. */
  readonly rotation: Worker<unknown, RotationJobResult> | undefined;
  /** The control-queue worker, unless `controlConcurrency` is 0. */
  readonly control: ControlWorker | undefined;
  /** The webhook worker, unless `webhooks` is false. */
  readonly webhooks: WebhookWorker | undefined;
  /**
   * Whether this worker can take jobs now: its queue workers are not backing off after errors
   * and a queue command through its own connection succeeds. For readiness; never throws.
   */
  queueState(): Promise<QueueCheck>;
  /**
   * Stops taking jobs, waits for the running ones to finish, then closes the Redis connection.
   * Call it on SIGTERM. (After SIGKILL the job and integration locks expire, and BullMQ's
   * stalled-job check hands the job to another worker.)
   */
  close(): Promise<void>;
}

/** Starts a BullMQ worker on the sync queue. */
export function createWorker(options: CreateWorkerOptions): DirsyncWorker {
  const prefix = options.prefix ?? DEFAULT_QUEUE_PREFIX;
  const settings = options.connection ?? options.redisUrl;
  if (settings === undefined) throw new Error('createWorker needs connection or redisUrl');
  // One connection for the sync shards, the rotations and the integration locks (BullMQ
  // duplicates it for its blocking reads).
  const connection = openRedis(settings, 'blocking');
  const logger = options.logger.child({ workerId: options.workerId });
  const providerFactory =
    options.createProvider ?? createEntraAwareProviderFactory({ db: options.db, keyRing: options.keyRing, destinations: options.destinations });
  const processor = createSyncProcessor({
    db: options.db,
    // The locks and limits use single-key commands and scripts only, which a cluster client serves too.
    redis: connection,
    prefix,
    keyRing: options.keyRing,
    logger,
    workerId: options.workerId,
    createProvider: providerFactory,
    lockTiming: options.integrationLock,
    lockRetryDelayMs: options.lockRetryDelayMs,
    batchSize: options.batchSize,
    runLimits: options.runLimits,
    syncLimits: options.syncLimits,
    tracer: options.tracer,
  });
  const sync = createQueueWorker<SyncJobResult>({
    connection: settings,
    redis: connection,
    prefix,
    queue: 'sync',
    shards: options.shards,
    processor: withConsentStatus(processor, options.db, logger),
    concurrency: options.concurrency,
    name: options.workerId,
    logger,
    errorMessage: 'worker error',
    classify: classifyFailure,
    workerOptions: {
      ...(options.stalledInterval === undefined ? {} : { stalledInterval: options.stalledInterval }),
      ...(options.jobLockDurationMs === undefined ? {} : { lockDuration: options.jobLockDurationMs }),
    },
  });
  const worker = sync.workers[0] as Worker<unknown, SyncJobResult>;
  const rotation =
    options.runRotations === false
      ? undefined
      : createRotationWorker({ db: options.db, keyRing: options.keyRing, logger, connection, settings, prefix, name: options.workerId, destinations: options.destinations });
  for (const shardWorker of sync.workers) options.metrics?.attach(shardWorker);
  const control =
    options.controlConcurrency === 0
      ? undefined
      : createControlWorker({
          db: options.db,
          keyRing: options.keyRing,
          logger,
          createProvider: providerFactory,
          destinations: options.destinations,
          consentPropagationWaitMs: options.consentPropagationWaitMs,
          connection: settings,
          prefix,
          concurrency: options.controlConcurrency,
          name: options.workerId,
        });

  const webhooks =
    options.webhooks === false
      ? undefined
      : createWebhookWorker({
          ...options.webhooks,
          db: options.db,
          keyRing: options.keyRing,
          logger,
          connection: settings,
          prefix,
          name: options.workerId,
          destinations: options.destinations ?? DestinationPolicy.strict(),
        });

  let closing: Promise<void> | undefined;
  return {
    worker,
    workers: sync.workers,
    rotation,
    control,
    webhooks,
    async queueState() {
      const paused = control?.state();
      return paused !== undefined && !paused.ok ? paused : sync.check();
    },
    close() {
      closing ??= (async () => {
        await Promise.all([sync.close(), control?.close(), rotation?.close(), webhooks?.close()]);
        await closeRedis(connection);
      })();
      return closing;
    },
  };
}
