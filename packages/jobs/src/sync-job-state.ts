import { type SyncJobData, syncJobSchema } from '@dirsync/contracts';
import type { Job } from 'bullmq';
import { createQueueClient } from './queue-client.ts';
import type { RedisConnection } from './redis.ts';

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
  const client = createQueueClient({ connection: options.connection, prefix: options.prefix, purpose: 'inspector', onError: options.onError });

  // A job id alone does not name its shard: the shards are asked in turn (one key read each).
  async function findJob(jobId: string): Promise<Job | undefined> {
    for (const queue of client.syncQueues()) {
      const job = await queue.getJob(jobId);
      if (job !== undefined && job !== null) return job;
    }
    return undefined;
  }

  return {
    async stateOf(jobId, runId) {
      const job = await findJob(jobId);
      if (job === undefined) return { state: 'missing' };
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
      await client.add('sync', syncJobSchema.parse(data), { jobId });
    },
    close: () => client.close(),
  };
}
