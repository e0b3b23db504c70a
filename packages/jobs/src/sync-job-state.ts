import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { defaultSyncJobOptions } from './job-options.ts';
import type { RedisConnection } from './enqueue.ts';
import { syncJobSchema, type SyncJobData } from './payloads.ts';
import { DEFAULT_QUEUE_PREFIX, JOB_NAMES, SYNC_QUEUE } from './queues.ts';

/** Where a sync job stands in the queue, as the reconciler needs it. */
export type SyncJobState =
  /** No such job (removed, or Redis lost its data), or a job that carries another run. */
  | { readonly state: 'missing' }
  /** Waiting, delayed for a retry, or held by a worker: someone will still act on the run. */
  | { readonly state: 'live'; readonly detail: string }
  /** Failed for good (no attempt left, stalled too often, unrecoverable). */
  | { readonly state: 'failed'; readonly reason: string }
  | { readonly state: 'completed' };

/** Options of {@link createSyncJobInspector}. */
export interface SyncJobInspectorOptions {
  readonly connection: RedisConnection;
  /** BullMQ key prefix; must match the workers'. Defaults to {@link DEFAULT_QUEUE_PREFIX}. */
  readonly prefix?: string;
  readonly onError?: (error: Error) => void;
}

/** Reads sync jobs' states and puts a lost one back (see the scheduler's reconciler). */
export interface SyncJobInspector {
  /** The state of job `jobId`, counted as `missing` unless it carries run `runId`. */
  stateOf(jobId: string, runId: string): Promise<SyncJobState>;
  /**
   * Adds the job again under the same id with the run's data. An id BullMQ still holds is kept
   * as it is, so replicas re-adding the same job add it once.
   */
  requeue(jobId: string, data: SyncJobData): Promise<void>;
  close(): Promise<void>;
}

/** Creates a {@link SyncJobInspector} with its own Redis connection. */
export function createSyncJobInspector(options: SyncJobInspectorOptions): SyncJobInspector {
  // Commands fail rather than queue up while Redis is away: a pass is retried by the next one.
  const extra = { maxRetriesPerRequest: 1 };
  const redis =
    typeof options.connection === 'string' ? new Redis(options.connection, extra) : new Redis({ ...options.connection, ...extra });
  const queue = new Queue(SYNC_QUEUE, { connection: redis, prefix: options.prefix ?? DEFAULT_QUEUE_PREFIX });
  const onError = options.onError ?? (() => {});
  redis.on('error', onError);
  queue.on('error', onError);

  return {
    async stateOf(jobId, runId) {
      const job = await queue.getJob(jobId);
      if (job === undefined || job === null) return { state: 'missing' };
      const data = syncJobSchema.safeParse(job.data);
      if (!data.success || data.data.runId !== runId) return { state: 'missing' };
      const state = await job.getState();
      if (state === 'failed') return { state: 'failed', reason: job.failedReason || 'the job failed' };
      if (state === 'completed') return { state: 'completed' };
      // 'unknown' is a job whose hash exists but that sits in no list: nothing will run it.
      if (state === 'unknown') return { state: 'missing' };
      return { state: 'live', detail: state };
    },
    async requeue(jobId, data) {
      await queue.add(JOB_NAMES.sync, syncJobSchema.parse(data), { ...defaultSyncJobOptions, jobId });
    },
    async close() {
      await queue.close();
      if (redis.status === 'end') return;
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
