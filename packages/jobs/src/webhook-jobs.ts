import { randomUUID } from 'node:crypto';
import type { JobsOptions } from 'bullmq';
import { z } from 'zod';
import { SYNC_BACKOFF_TYPE } from './backoff.ts';
import { createQueueClient, type QueueClient } from './queue-client.ts';
import { InvalidJobPayloadError } from './payloads.ts';
import type { RedisConnection, RedisPurpose } from './redis.ts';

/** Name of the job that delivers an endpoint's pending webhook deliveries (on the webhook queue). */
export const DELIVER_WEBHOOKS_JOB = 'deliver-webhooks';

/** Data of a `deliver-webhooks` job: which endpoint to drain. Never holds its secret or URL. */
export const deliverWebhooksJobSchema = z.strictObject({ endpointId: z.uuid() });

/** Data of a `deliver-webhooks` job. */
export type DeliverWebhooksJobData = z.infer<typeof deliverWebhooksJobSchema>;

/** Validates the data of a `deliver-webhooks` job. Throws {@link InvalidJobPayloadError}. */
export function parseDeliverWebhooksJob(data: unknown): DeliverWebhooksJobData {
  const result = deliverWebhooksJobSchema.safeParse(data);
  if (!result.success) throw new InvalidJobPayloadError('deliver-webhooks job', result.error);
  return result.data;
}

/**
 * Options of drain jobs. A delivery's own retries are the drain's business (its next attempt is
 * stored with the delivery); the queue retries a drain only when it could not run at all (the
 * database unreachable), with the usual backoff.
 */
export const deliverWebhooksJobOptions = {
  attempts: 10,
  backoff: { type: SYNC_BACKOFF_TYPE, delay: 5_000 },
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 1000 },
} as const satisfies JobsOptions;

/** Producer of drain jobs (API, workers, sweeps). */
export interface WebhookEnqueueClient {
  /**
   * Asks a worker to drain each endpoint now, or after `delayMs`. With `key`, a second request
   * of the same key while the first waits is dropped (used for scheduled retries and sweeps).
   */
  drain(endpointIds: readonly string[], options?: { readonly delayMs?: number | undefined; readonly key?: string | undefined }): Promise<void>;
  readonly client: QueueClient;
  close(): Promise<void>;
}

/** Wraps a {@link QueueClient} (closed with it when `owned`). */
export function webhookEnqueueClientOf(client: QueueClient, owned: boolean): WebhookEnqueueClient {
  return {
    client,
    async drain(endpointIds, options = {}) {
      for (const endpointId of endpointIds) {
        const jobId = options.key === undefined ? `webhook.${endpointId}.${randomUUID()}` : `webhook.${endpointId}.${options.key}`;
        // A keyed job is removed when it ends, so the key can be used again for the next request.
        const keyed = options.key === undefined ? {} : { removeOnComplete: true, removeOnFail: true };
        await client.add('deliverWebhooks', { endpointId }, { jobId, ...keyed, ...(options.delayMs === undefined || options.delayMs <= 0 ? {} : { delay: Math.ceil(options.delayMs) }) });
      }
    },
    close: () => (owned ? client.close() : Promise.resolve()),
  };
}

/** Creates a {@link WebhookEnqueueClient} with its own Redis connection. */
export function createWebhookEnqueueClient(options: {
  connection: RedisConnection;
  prefix?: string | undefined;
  /** `request` for HTTP handlers: fail at once while Redis is away. Default `client`. */
  purpose?: RedisPurpose | undefined;
  onError?: ((error: Error) => void) | undefined;
}): WebhookEnqueueClient {
  return webhookEnqueueClientOf(createQueueClient({ connection: options.connection, prefix: options.prefix, purpose: options.purpose, onError: options.onError }), true);
}
