import type { Worker } from 'bullmq';
import type { Logger } from 'pino';
import { listDueWebhookEndpoints, type Db, type KeyRing } from '@dirsync/db';
import { createQueueClient, createQueueWorker, webhookEnqueueClientOf, type RedisConnection, type WebhookEnqueueClient } from '@dirsync/jobs';
import { classifyFailure } from '../failure.ts';
import { createWebhookProcessor, type WebhookDeliverySettings, type WebhookJobResult } from './processor.ts';

export { postWebhook, signedHeaders, type WebhookAttempt, type WebhookRequest } from './deliver.ts';
export {
  createWebhookProcessor,
  DEFAULT_WEBHOOK_BACKOFF,
  DEFAULT_WEBHOOK_DISABLE_AFTER,
  DEFAULT_WEBHOOK_MAX_ATTEMPTS,
  type WebhookDeliverySettings,
  type WebhookJobResult,
  type WebhookProcessorOptions,
} from './processor.ts';

/** Options of {@link createWebhookWorker}. */
export interface WebhookWorkerOptions extends WebhookDeliverySettings {
  readonly db: Db;
  readonly keyRing: KeyRing;
  readonly logger: Logger;
  readonly connection: RedisConnection;
  readonly prefix?: string | undefined;
  readonly name?: string | undefined;
  /** Endpoints drained at once by this process (default 8). */
  readonly concurrency?: number | undefined;
  /**
   * How often this process looks for deliveries due with no drain under way (new events, whose
   * producers only write them to PostgreSQL, and drains lost with a crash). Default 2 s; 0 never.
   */
  readonly sweepIntervalMs?: number | undefined;
}

/** A running webhook worker. */
export interface WebhookWorker {
  readonly worker: Worker<unknown, WebhookJobResult>;
  readonly enqueue: WebhookEnqueueClient;
  /** One sweep now (also what the timer runs); returns the endpoints handed to the queue. */
  sweep(): Promise<readonly string[]>;
  close(): Promise<void>;
}

/**
 * Starts the webhook queue's worker and its sweep. Events are written to PostgreSQL with the
 * facts they report (the outbox); the sweep hands every endpoint with a delivery due to the
 * queue, and the drain jobs deliver them, signed, in order per endpoint.
 */
export function createWebhookWorker(options: WebhookWorkerOptions): WebhookWorker {
  const enqueue = webhookEnqueueClientOf(createQueueClient({ connection: options.connection, prefix: options.prefix, onError: (error) => options.logger.warn({ error: error.message }, 'webhook queue error') }), true);
  const processor = createWebhookProcessor({ ...options, enqueue });
  const queue = createQueueWorker<WebhookJobResult>({
    connection: options.connection,
    prefix: options.prefix,
    queue: 'webhook',
    processor,
    concurrency: options.concurrency ?? 8,
    name: options.name,
    logger: options.logger,
    errorMessage: 'webhook worker error',
    classify: classifyFailure,
  });
  const worker = queue.workers[0] as Worker<unknown, WebhookJobResult>;
  const sweep = async (): Promise<readonly string[]> => {
    const due = await listDueWebhookEndpoints(options.db);
    // The key drops a sweep's request while the previous one for the endpoint still waits.
    if (due.length > 0) await enqueue.drain(due, { key: 'sweep' });
    return due;
  };
  let sweeping = false;
  const interval = options.sweepIntervalMs ?? 2_000;
  const timer =
    interval > 0
      ? setInterval(() => {
          if (sweeping) return;
          sweeping = true;
          sweep()
            .catch((error: unknown) => options.logger.warn({ error: classifyFailure(error).message }, 'webhook sweep failed'))
            .finally(() => {
              sweeping = false;
            });
        }, interval)
      : undefined;
  timer?.unref();
  let closing: Promise<void> | undefined;
  return {
    worker,
    enqueue,
    sweep,
    close() {
      closing ??= (async () => {
        if (timer) clearInterval(timer);
        await queue.close();
        await enqueue.close();
      })();
      return closing;
    },
  };
}
