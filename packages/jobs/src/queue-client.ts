import type { SyncJobData } from '@dirsync/contracts';
import { type Job, type JobsOptions, Queue } from 'bullmq';
import type { z } from 'zod';
import { JOB_TABLE, syncJobPriority, type JobKindName, type QueueRole } from './job-table.ts';
import { queueLayoutOf, type QueueLayout } from './layout.ts';
import { syncShardOf } from './shards.ts';
import { InvalidJobPayloadError } from './payloads.ts';
import { DEFAULT_QUEUE_PREFIX } from './queues.ts';
import { closeRedis, openRedis, type RedisClient, type RedisConnection, type RedisPurpose } from './redis.ts';

/** Options of {@link createQueueClient}. */
export interface QueueClientOptions {
  readonly connection: RedisConnection;
  /** BullMQ key prefix; must match the workers'. Defaults to {@link DEFAULT_QUEUE_PREFIX}. */
  readonly prefix?: string | undefined;
  /** What the connection is for (see {@link RedisPurpose}). Default `client`. */
  readonly purpose?: RedisPurpose | undefined;
  /** Connection and queue errors; without a handler they are dropped rather than printed. */
  readonly onError?: ((error: Error) => void) | undefined;
}

/** The data a job kind's schema accepts. */
export type JobInput<Kind extends JobKindName> = z.input<(typeof JOB_TABLE)[Kind]['schema']>;

/**
 * One connection and the BullMQ queues of an installation: every producer and every tool that
 * reads queues goes through one of these (model: BullMQ's QueueBase, one base for every queue
 * client).
 */
export interface QueueClient {
  /** The connection (standalone or cluster) the queues share. */
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly layout: QueueLayout;
  /** The queue of `name` (opened once, on first use). */
  queue(name: string): Queue;
  /** The queue of a role; for `sync`, the shard of `integrationId` (required then). */
  queueOf(role: QueueRole, integrationId?: string): Queue;
  /** Every sync shard's queue. */
  syncQueues(): Queue[];
  /** Every queue of the installation (sync shards, control, rotation). */
  allQueues(): Queue[];
  /**
   * Validates `data` against the kind's schema and adds the job on its queue (a sync on its
   * integration's shard, with the priority of its trigger and mode) with the kind's default
   * options, `options` winning. Throws {@link InvalidJobPayloadError} for bad data.
   */
  add<Kind extends JobKindName>(kind: Kind, data: JobInput<Kind>, options?: JobsOptions): Promise<Job>;
  /** Closes the queues and the connection. */
  close(): Promise<void>;
}

/** Creates a {@link QueueClient} with a connection of its own. */
export function createQueueClient(options: QueueClientOptions): QueueClient {
  const prefix = options.prefix ?? DEFAULT_QUEUE_PREFIX;
  const onError = options.onError ?? (() => {});
  const redis = openRedis(options.connection, options.purpose ?? 'client', { onError });
  const layout = queueLayoutOf(options.connection);
  const queues = new Map<string, Queue>();

  function queue(name: string): Queue {
    let opened = queues.get(name);
    if (opened === undefined) {
      opened = new Queue(name, { connection: redis, prefix });
      opened.on('error', onError);
      queues.set(name, opened);
    }
    return opened;
  }

  function queueOf(role: QueueRole, integrationId?: string): Queue {
    if (role === 'control') return queue(layout.control);
    if (role === 'rotation') return queue(layout.rotation);
    if (role === 'webhook') return queue(layout.webhook);
    if (integrationId === undefined) throw new Error('a sync queue is chosen by integration: integrationId is required');
    return queue(layout.sync[syncShardOf(integrationId, layout.sync.length)] as string);
  }

  return {
    redis,
    prefix,
    layout,
    queue,
    queueOf,
    syncQueues: () => layout.sync.map(queue),
    allQueues: () => layout.all.map(queue),
    async add(kind, data, addOptions = {}) {
      const entry = JOB_TABLE[kind];
      const parsed = entry.schema.safeParse(data);
      if (!parsed.success) throw new InvalidJobPayloadError(`${entry.name} job`, parsed.error);
      const payload = parsed.data as Record<string, unknown>;
      let target: Queue;
      let priority: JobsOptions = {};
      if (entry.queue === 'sync') {
        const sync = payload as SyncJobData;
        target = queueOf('sync', sync.integrationId);
        priority = { priority: syncJobPriority(sync.trigger, sync.mode) };
      } else target = queueOf(entry.queue);
      return target.add(entry.name, payload, { ...entry.options, ...priority, ...addOptions });
    },
    async close() {
      await Promise.all([...queues.values()].map((opened) => opened.close().catch(() => undefined)));
      await closeRedis(redis);
    },
  };
}
