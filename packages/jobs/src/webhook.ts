import { randomUUID } from 'node:crypto';
import { createQueueClient, type QueueClient } from './queue-client.ts';
import type { RedisConnection, RedisPurpose } from './redis.ts';

export * from './webhook-jobs.ts';

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
