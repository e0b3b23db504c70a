import { DelayedError, type Job, RateLimitError, UnrecoverableError, WaitingChildrenError, WaitingError, Worker, type WorkerOptions } from 'bullmq';
import { syncBackoffStrategy } from './backoff.ts';
import { checkQueueCommand, createRepeatedErrorLog, guardWorker, type ErrorLogger, type QueueCheck } from './health.ts';
import type { QueueRole } from './job-table.ts';
import { queueLayoutOf } from './layout.ts';
import { InvalidJobPayloadError } from './payloads.ts';
import { DEFAULT_QUEUE_PREFIX } from './queues.ts';
import { closeRedis, openRedis, type RedisClient, type RedisConnection } from './redis.ts';

/** What a failed attempt means for the job. */
export interface RetryVerdict {
  /** Trying again may help (busy or unreachable server, lost lock, database hiccup). */
  readonly retry: boolean;
  /** One line for the job's failed reason; must never carry a secret. */
  readonly message: string;
}

/**
 * The failure-to-retry mapping used when a worker names none: an invalid payload is never
 * retried, an error carrying a boolean `retryable` (the providers' and the database layer's
 * typed errors, the control client's) is retried as it says, anything else is taken for
 * transient. Workers pass the richer `classifyFailure` of the worker package, which follows
 * the same rule.
 */
export function defaultRetryVerdict(error: unknown): RetryVerdict {
  const message = error instanceof Error ? error.message || error.name : 'unknown error';
  if (error instanceof InvalidJobPayloadError) return { retry: false, message };
  const retryable = typeof error === 'object' && error !== null ? (error as { retryable?: unknown }).retryable : undefined;
  return { retry: typeof retryable === 'boolean' ? retryable : true, message };
}

// BullMQ's own control-flow errors: the processor asked for a delay, a wait or a final failure.
function isBullControl(error: unknown): boolean {
  return (
    error instanceof UnrecoverableError ||
    error instanceof DelayedError ||
    error instanceof WaitingError ||
    error instanceof WaitingChildrenError ||
    error instanceof RateLimitError
  );
}

/** A processor of jobs (BullMQ's, with the lock token). */
export type QueueProcessor<Result> = (job: Job, token?: string) => Promise<Result>;

/**
 * Wraps a processor with the one failure-to-retry mapping: an error the verdict says not to retry
 * becomes BullMQ's `UnrecoverableError` (the job fails at once, no attempt wasted); others are
 * rethrown for a retry after the backoff of the job's options (see `syncBackoffStrategy`).
 */
export function withRetryMapping<Result>(processor: QueueProcessor<Result>, classify: (error: unknown) => RetryVerdict = defaultRetryVerdict): QueueProcessor<Result> {
  return async (job, token) => {
    try {
      return await processor(job, token);
    } catch (error) {
      if (isBullControl(error)) throw error;
      const verdict = classify(error);
      if (!verdict.retry) throw new UnrecoverableError(verdict.message);
      throw error;
    }
  };
}

/** Options of {@link createQueueWorker}. */
export interface QueueWorkerOptions<Result> {
  /** Where the queues are: the installation's settings (they also decide the queue names). */
  readonly connection: RedisConnection;
  /**
   * A connection of the process to share, opened from the same settings with purpose
   * `blocking` (left open on close). Default: one of the worker's own, closed with it.
   */
  readonly redis?: RedisClient | undefined;
  readonly prefix?: string | undefined;
  /** Which queue: for `sync` every shard, or those in `shards`. */
  readonly queue: QueueRole;
  /** Sync shards to consume (default every one); ignored for other queues. */
  readonly shards?: readonly number[] | undefined;
  readonly processor: QueueProcessor<Result>;
  /**
   * Jobs run at once by this process over all the queues it consumes. With several sync shards
   * it is divided among them (rounded up), so a process never runs much more than this.
   */
  readonly concurrency: number;
  /** Worker name shown in BullMQ. */
  readonly name?: string | undefined;
  readonly logger: ErrorLogger;
  /** Log message of the workers' errors (`worker error`, `control worker error`). */
  readonly errorMessage: string;
  /** The failure-to-retry mapping (default {@link defaultRetryVerdict}). */
  readonly classify?: ((error: unknown) => RetryVerdict) | undefined;
  /** Further BullMQ worker options (stalled interval, lock duration). */
  readonly workerOptions?: Pick<WorkerOptions, 'stalledInterval' | 'lockDuration' | 'maxStalledCount' | 'autorun'> | undefined;
}

/** Workers on one queue role, possibly over several shards. */
export interface QueueWorker<Result> {
  /** One BullMQ worker per consumed queue (shard order). */
  readonly workers: readonly Worker<unknown, Result>[];
  /** The names of the queues consumed. */
  readonly queueNames: readonly string[];
  /** The connection they share. */
  readonly redis: RedisClient;
  /** Not ok while any of the workers backs off after errors. */
  state(): QueueCheck;
  /** `state()`, then a queue command through the shared connection. Never throws. */
  check(): Promise<QueueCheck>;
  /** Stops taking jobs, lets running ones finish, closes the connection if it opened it. */
  close(): Promise<void>;
}

/**
 * Starts BullMQ workers on one queue role: the custom backoff registered, the processor wrapped
 * by {@link withRetryMapping}, and each worker guarded against failing queue commands (see
 * `guardWorker`). Every worker and its processing of failures is built here.
 */
export function createQueueWorker<Result>(options: QueueWorkerOptions<Result>): QueueWorker<Result> {
  const prefix = options.prefix ?? DEFAULT_QUEUE_PREFIX;
  const owned = options.redis === undefined;
  const redis = options.redis ?? openRedis(options.connection, 'blocking');
  const layout = queueLayoutOf(options.connection);
  const names =
    options.queue === 'sync'
      ? (options.shards ?? layout.sync.map((_, index) => index)).map((shard) => {
          const name = layout.sync[shard];
          if (name === undefined) throw new RangeError(`sync shard ${shard} does not exist (shards: ${layout.sync.length})`);
          return name;
        })
      : [options.queue === 'control' ? layout.control : options.queue === 'webhook' ? layout.webhook : layout.rotation];
  const perQueue = Math.max(1, Math.ceil(Math.max(1, options.concurrency) / names.length));
  const processor = withRetryMapping(options.processor, options.classify);
  const log = createRepeatedErrorLog({ logger: options.logger });
  const workers = names.map(
    (name) =>
      new Worker<unknown, Result>(name, processor, {
        connection: redis,
        prefix,
        concurrency: perQueue,
        settings: { backoffStrategy: syncBackoffStrategy },
        ...(options.name === undefined ? {} : { name: options.name }),
        ...options.workerOptions,
      }),
  );
  const guards = workers.map((worker) => guardWorker(worker, { log, message: options.errorMessage }));
  const state = (): QueueCheck => guards.map((guard) => guard.state()).find((check) => !check.ok) ?? { ok: true };
  let closing: Promise<void> | undefined;
  return {
    workers,
    queueNames: names,
    redis,
    state,
    async check() {
      const paused = state();
      if (!paused.ok) return paused;
      const first = workers[0];
      return first === undefined ? { ok: true } : checkQueueCommand(redis, `${prefix}:${first.name}:meta`);
    },
    close() {
      closing ??= (async () => {
        for (const guard of guards) guard.close();
        await Promise.all(workers.map((worker) => worker.close()));
        if (owned) await closeRedis(redis);
      })();
      return closing;
    },
  };
}
