import { randomUUID } from 'node:crypto';
import { type JobsOptions, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { SYNC_BACKOFF_TYPE } from './backoff.ts';
import type { RedisConnection } from './enqueue.ts';
import { InvalidJobPayloadError } from './payloads.ts';
import { DEFAULT_QUEUE_PREFIX, ROTATION_QUEUE } from './queues.ts';

/** Name of the job that rolls a connector's certificate (on {@link ROTATION_QUEUE}). */
export const ROTATE_CONNECTOR_JOB = 'rotate-connector-credential';

const requestedBy = z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');

/** Data of a `rotate-connector-credential` job. Never holds a secret. */
export const rotateConnectorJobSchema = z.strictObject({
  connectorId: z.uuid(),
  trigger: z.enum(['schedule', 'manual']),
  /** The daily slot this rotation stands for (scheduled rotations): a second job for it does nothing. */
  scheduledFor: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time' }).optional(),
  requestedBy: requestedBy.optional(),
});

/** Data of a `rotate-connector-credential` job. */
export type RotateConnectorJobData = z.infer<typeof rotateConnectorJobSchema>;

/** Validates the data of a rotation job. Throws {@link InvalidJobPayloadError}. */
export function parseRotateConnectorJob(data: unknown): RotateConnectorJobData {
  const result = rotateConnectorJobSchema.safeParse(data);
  if (!result.success) throw new InvalidJobPayloadError('rotate-connector-credential job', result.error);
  return result.data;
}

/**
 * Options of rotation jobs: a failed rotation is retried (the old key keeps working meanwhile),
 * with the same exponential backoff as syncs, over about an hour and a half.
 */
export const defaultRotationJobOptions = {
  attempts: 8,
  backoff: { type: SYNC_BACKOFF_TYPE, delay: 30_000 },
  removeOnComplete: { age: 30 * 24 * 3600, count: 1000 },
  removeOnFail: { age: 90 * 24 * 3600, count: 1000 },
} as const satisfies JobsOptions;

/** Job id of a scheduled rotation: every scheduler replica computes the same one for a slot. */
export function rotationJobId(connectorId: string, slotEpochMs: number): string {
  return `rotate.${connectorId}.${slotEpochMs}`;
}

/** Outcome of {@link RotationEnqueueClient.enqueueRotation}. */
export interface EnqueueRotationResult {
  readonly jobId: string;
  /** The job of this slot already existed (another replica, or a replay). */
  readonly deduplicated: boolean;
}

/** Client that asks workers to rotate a connector's certificate. */
export interface RotationEnqueueClient {
  enqueueRotation(request: z.input<typeof rotateConnectorJobSchema>): Promise<EnqueueRotationResult>;
  /** The queue (for tests and tooling that wait on jobs). */
  readonly queue: Queue;
  close(): Promise<void>;
}

/** Creates a {@link RotationEnqueueClient} with its own Redis connection. */
export function createRotationEnqueueClient(options: { connection: RedisConnection; prefix?: string; onError?: (error: Error) => void }): RotationEnqueueClient {
  const redis = typeof options.connection === 'string' ? new Redis(options.connection) : new Redis(options.connection);
  const queue = new Queue(ROTATION_QUEUE, { connection: redis, prefix: options.prefix ?? DEFAULT_QUEUE_PREFIX });
  const onError = options.onError ?? (() => {});
  redis.on('error', onError);
  queue.on('error', onError);
  return {
    queue,
    async enqueueRotation(request) {
      const data = parseRotateConnectorJob(request);
      const jobId =
        data.scheduledFor === undefined ? `rotate.${data.connectorId}.manual.${randomUUID()}` : rotationJobId(data.connectorId, Date.parse(data.scheduledFor));
      const job = await queue.add(ROTATE_CONNECTOR_JOB, data, { ...defaultRotationJobOptions, jobId });
      const stored = job.id === undefined ? undefined : await queue.getJob(job.id);
      // BullMQ keeps the first job of an id: a different payload means the slot was enqueued before.
      const deduplicated = stored !== undefined && stored.timestamp !== job.timestamp;
      return { jobId: job.id ?? jobId, deduplicated };
    },
    async close() {
      await queue.close();
      if (redis.status === 'end') return;
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
