import { rotateConnectorJobSchema } from '@dirsync/contracts';
import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { z } from 'zod';
import { createQueueClient } from './queue-client.ts';
import type { RedisConnection } from './redis.ts';
import { parseRotateConnectorJob, rotationJobId } from './rotation-jobs.ts';
import { awaitReady } from './unavailable.ts';

export * from './rotation-jobs.ts';
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
export function createRotationEnqueueClient(options: {
  connection: RedisConnection;
  prefix?: string | undefined;
  onError?: ((error: Error) => void) | undefined;
  /** Wait at most this long for Redis before a request, then fail with `QueueUnavailableError`; default: as long as it takes. */
  readyTimeoutMs?: number | undefined;
}): RotationEnqueueClient {
  const client = createQueueClient({ connection: options.connection, prefix: options.prefix, onError: options.onError });
  const queue = client.queueOf('rotation');
  return {
    queue,
    async enqueueRotation(request) {
      const data = parseRotateConnectorJob(request);
      if (options.readyTimeoutMs !== undefined) await awaitReady(client.redis, options.readyTimeoutMs);
      const jobId =
        data.scheduledFor === undefined ? `rotate.${data.connectorId}.manual.${randomUUID()}` : rotationJobId(data.connectorId, Date.parse(data.scheduledFor));
      const job = await client.add('rotateConnector', data, { jobId });
      const stored = job.id === undefined ? undefined : await queue.getJob(job.id);
      // BullMQ keeps the first job of an id: a different payload means the slot was enqueued before.
      const deduplicated = stored !== undefined && stored.timestamp !== job.timestamp;
      return { jobId: job.id ?? jobId, deduplicated };
    },
    close: () => client.close(),
  };
}
