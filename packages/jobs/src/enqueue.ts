import { type SyncJobData, syncJobSchema, type SyncMode, type SyncRequest } from '@dirsync/contracts';
import { randomUUID } from 'node:crypto';
import { Job } from 'bullmq';
import { syncJobPriority } from './job-table.ts';
import { runJobId, scheduledJobId, syncDeduplicationId } from './job-options.ts';
import { parseSyncRequest } from './payloads.ts';
import { createQueueClient } from './queue-client.ts';
import type { RedisConnection } from './redis.ts';
import { awaitReady, requireReady } from './unavailable.ts';
import { inspectWaitingJob, type WaitingJobState } from './waiting-slot.ts';

/** Options of {@link createEnqueueClient}. */
export interface EnqueueClientOptions {
  readonly connection: RedisConnection;
  /** BullMQ key prefix; must match the workers'. Defaults to {@link DEFAULT_QUEUE_PREFIX}. */
  readonly prefix?: string;
  /**
   * Called with connection errors (Redis down, reconnecting). They also reject the calls they
   * affect; without a handler they are dropped rather than printed.
   */
  readonly onError?: (error: Error) => void;
  /**
   * Fail at once with `QueueUnavailableError` while Redis is not connected, instead of waiting
   * for a reconnect (what a server answering requests wants). Default false.
   */
  readonly failFast?: boolean;
  /**
   * Wait at most this long for the connection before a request, then fail with
   * `QueueUnavailableError` (what a command line wants: BullMQ itself waits for a connection
   * that is never made for ever). Default: as long as it takes.
   */
  readonly readyTimeoutMs?: number | undefined;
}

/** Outcome of {@link EnqueueClient.enqueueSync}. */
export interface EnqueueSyncResult {
  /** BullMQ job id of the job that will run the request. */
  readonly jobId: string;
  /** Run id carried by that job (the `sync_runs.id` to create or to read). */
  readonly runId: string;
  /** Mode that job will run in. */
  readonly mode: SyncMode;
  readonly dryRun: boolean;
  /**
   * True when no job was added because one already stood for this request: a waiting sync of
   * the same integration (and same dry-run flag), or the job of the same schedule slot. The ids
   * are then the existing job's, and the caller must not create a run row of its own.
   */
  readonly deduplicated: boolean;
  /** True when this full request turned a waiting delta into a full sync (same job and run). */
  readonly upgraded: boolean;
}

/** Client other services use to ask for syncs. */
export interface EnqueueClient {
  /**
   * Validates the request and queues a sync, unless one is already waiting for the integration:
   * then the waiting job is returned (a full request upgrades a waiting delta to full; a delta
   * request is satisfied by a waiting full). Safe against any number of concurrent callers in
   * any number of processes. Throws `InvalidJobPayloadError` for a bad request.
   */
  enqueueSync(request: SyncRequest): Promise<EnqueueSyncResult>;
  /** Closes the client's Redis connection. */
  close(): Promise<void>;
}

// How often the add/inspect cycle is repeated when the job found waiting starts (or finishes)
// under our feet. Each repetition needs a worker to take a job in that very instant, so a few
// are plenty.
const maxRounds = 5;

/**
 * Creates an {@link EnqueueClient} with its own Redis connection.
 *
 * How deduplication stays atomic: the job is added with a BullMQ deduplication id per
 * integration and dry-run flag, and BullMQ's add script checks and sets that key in the same
 * step as it stores the job, so of any number of concurrent requests one adds a job and the
 * others get its id back. A small script of our own then checks, in one step with any change,
 * that the job found is still waiting: upgrading a waiting delta to full is a compare-and-set on
 * its data that a worker cannot interleave with, and a key left pointing at a job that already
 * started is dropped so the request adds a fresh job.
 */
export function createEnqueueClient(options: EnqueueClientOptions): EnqueueClient {
  const client = createQueueClient({
    connection: options.connection,
    prefix: options.prefix,
    purpose: options.failFast === true ? 'request' : 'client',
    onError: options.onError,
  });
  const { redis } = client;

  function storedJob(data: string): SyncJobData {
    const parsed = syncJobSchema.safeParse(JSON.parse(data));
    if (!parsed.success) throw new Error('a job on the sync queue holds data that is not a sync payload');
    return parsed.data;
  }

  function existing(jobId: string, job: SyncJobData, upgraded = false): EnqueueSyncResult {
    return { jobId, runId: job.runId, mode: job.mode, dryRun: job.dryRun, deduplicated: true, upgraded };
  }

  async function enqueueSync(request: SyncRequest): Promise<EnqueueSyncResult> {
    const parsed = parseSyncRequest(request);
    if (options.failFast === true) requireReady(redis);
    else if (options.readyTimeoutMs !== undefined) await awaitReady(redis, options.readyTimeoutMs);
    const runId = parsed.runId ?? randomUUID();
    const data: SyncJobData = {
      integrationId: parsed.integrationId,
      runId,
      mode: parsed.mode,
      trigger: parsed.trigger,
      dryRun: parsed.dryRun,
      ...(parsed.requestedBy === undefined ? {} : { requestedBy: parsed.requestedBy }),
      ...(parsed.scheduledFor === undefined ? {} : { scheduledFor: parsed.scheduledFor }),
    };
    const jobId =
      parsed.scheduledFor !== undefined && !parsed.dryRun
        ? scheduledJobId(parsed.integrationId, parsed.mode, Date.parse(parsed.scheduledFor))
        : runJobId(runId);
    const deduplicationId = syncDeduplicationId(parsed.integrationId, parsed.dryRun);
    const added: EnqueueSyncResult = {
      jobId,
      runId,
      mode: parsed.mode,
      dryRun: parsed.dryRun,
      deduplicated: false,
      upgraded: false,
    };

    // The integration's shard: every producer picks the same one, so the deduplication key
    // below is the only one for the integration.
    const queue = client.queueOf('sync', parsed.integrationId);
    const priority = syncJobPriority(parsed.trigger, parsed.mode);
    for (let round = 0; round < maxRounds; round++) {
      const job = await client.add('sync', data, { jobId, deduplication: { id: deduplicationId } });
      const foundId = job.id;
      if (foundId === undefined) throw new Error(`${queue.name}: adding a job returned no id`);
      let state: WaitingJobState = await inspectWaitingJob(redis, queue, deduplicationId, foundId);

      if (foundId === jobId) {
        // Either this call stored the job, or the same schedule slot was enqueued before (the id
        // is deterministic and BullMQ keeps the first). The run id tells which.
        if (state.state === 'missing') return added;
        const stored = storedJob(state.data);
        return stored.runId === runId ? added : existing(foundId, stored);
      }

      // Another job of this integration holds the deduplication key.
      for (let swap = 0; swap < maxRounds; swap++) {
        if (state.state === 'missing' || state.state === 'not_waiting') break;
        const stored = storedJob(state.data);
        // A waiting job that now stands for a more urgent request moves up with it.
        await raisePriority(queue, foundId, priority);
        if (parsed.mode !== 'full' || stored.mode === 'full') return existing(foundId, stored);
        const replacementData = JSON.stringify({ ...stored, mode: 'full' } satisfies SyncJobData);
        state = await inspectWaitingJob(redis, queue, deduplicationId, foundId, {
          expectedData: state.data,
          replacementData,
        });
        if (state.state === 'replaced') return existing(foundId, storedJob(state.data), true);
      }
      // The job started or vanished meanwhile and its key was dropped: add ours next round.
    }
    throw new Error(
      `could not enqueue a sync for integration ${parsed.integrationId}: the job found waiting kept starting; try again`,
    );
  }

  return {
    enqueueSync,
    close: () => client.close(),
  };
}

/**
 * Gives waiting job `jobId` the priority `priority` when that is more urgent than its own. A job
 * that started meanwhile keeps its place (BullMQ refuses the change; nothing to do then).
 */
async function raisePriority(queue: Parameters<typeof Job.fromId>[0], jobId: string, priority: number): Promise<void> {
  const job = await Job.fromId(queue, jobId);
  if (job === undefined) return;
  // 0 is a job of an older version without priority: BullMQ already runs those first.
  const current = job.priority;
  if (current === 0 || current <= priority) return;
  await job.changePriority({ priority }).catch(() => undefined);
}

/** The part of a BullMQ job {@link releaseWaitingSlot} needs. */
export interface ReleasableJob {
  removeDeduplicationKey(): Promise<boolean>;
}

/**
 * Lets new requests for the job's integration queue a new job instead of being merged into this
 * one. The worker calls it first thing in its sync processor, for every attempt, before any long
 * work: `await releaseWaitingSlot(job)`. It only removes the key while it still names this job,
 * so it is idempotent and safe on retries. Correctness does not hang on it (the enqueue client
 * also notices a key pointing at a started job), but releasing promptly saves that detour.
 * Resolves to true when a key was removed.
 */
export async function releaseWaitingSlot(job: ReleasableJob): Promise<boolean> {
  return job.removeDeduplicationKey();
}
