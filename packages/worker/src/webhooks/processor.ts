import { randomUUID } from 'node:crypto';
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import { headWebhookDelivery, leaseWebhookEndpoint, recordWebhookAttempt, releaseWebhookEndpoint, type Db, type KeyRing } from '@dirsync/db';
import { computeBackoffDelay, parseDeliverWebhooksJob, type BackoffPolicy, type WebhookEnqueueClient } from '@dirsync/jobs';
import type { DestinationPolicy } from '@dirsync/providers';
import { classifyFailure } from '../failure.ts';
import { postWebhook } from './deliver.ts';

/** Default failed attempts in a row that disable an endpoint (`DIRSYNC_WEBHOOK_DISABLE_AFTER_FAILURES`). */
export const DEFAULT_WEBHOOK_DISABLE_AFTER = 20;
/** Default attempts of one delivery before it is given up (the next one is tried then). */
export const DEFAULT_WEBHOOK_MAX_ATTEMPTS = 8;
/** Default retry delays: 10 s, 20 s, 40 s, … capped at an hour (before jitter). */
export const DEFAULT_WEBHOOK_BACKOFF: BackoffPolicy = { baseMs: 10_000, maxMs: 3_600_000 };

/** Settings of webhook delivery. */
export interface WebhookDeliverySettings {
  /** Where endpoints may be reached: the same policy as the directory connections. */
  readonly destinations: DestinationPolicy;
  /** Endpoints may be `http:` (test installations, private networks). Default false. */
  readonly allowHttp?: boolean | undefined;
  readonly disableAfterFailures?: number | undefined;
  readonly maxAttempts?: number | undefined;
  readonly backoff?: BackoffPolicy | undefined;
  /** Timeout of one POST (default 10 s). */
  readonly timeoutMs?: number | undefined;
  /** Answer bytes read at most (default 64 KiB). */
  readonly maxResponseBytes?: number | undefined;
  /** How long a drain waits for another drain of the same endpoint to end (default 1 s). */
  readonly busyDelayMs?: number | undefined;
}

/** Dependencies of {@link createWebhookProcessor}. */
export interface WebhookProcessorOptions extends WebhookDeliverySettings {
  readonly db: Db;
  readonly keyRing: KeyRing;
  readonly logger: Logger;
  /** Drain requests (scheduled retries, the endpoints notified of a disabled one). */
  readonly enqueue: WebhookEnqueueClient;
}

/** What a drain job returns (stored by BullMQ): counts only, never a URL or secret. */
export interface WebhookJobResult {
  readonly endpointId: string;
  readonly delivered: number;
  readonly failed: number;
  /** `refused`: the destination policy (or the URL's scheme) refused the endpoint, now disabled. */
  readonly outcome: 'drained' | 'waiting' | 'disabled' | 'busy' | 'gone' | 'refused';
}

/**
 * The processor of `deliver-webhooks` jobs: drains one endpoint's pending deliveries, oldest
 * first, one at a time.
 *
 * Ordering: a drain first takes the endpoint's lease in PostgreSQL (`leaseWebhookEndpoint`);
 * only the holder attempts deliveries, and it only ever attempts the oldest pending one. A
 * delivery that fails stays the oldest pending one until it succeeds or is given up, so a newer
 * delivery of the same endpoint is never sent before it, whatever the number of workers or
 * jobs. A drain that finds the lease taken moves itself back to the queue for a moment rather
 * than ending: the holder may have looked for work before this job's delivery was committed.
 * A failed delivery gets its next attempt time (exponential backoff with jitter) and a delayed
 * drain job for that time; the drain then ends, holding nothing meanwhile.
 *
 * A URL refused before anything was sent (the destination policy, the scheme) is not retried:
 * no attempt could go elsewhere until the endpoint's URL or the installation's settings change,
 * so the endpoint is disabled at once with the refusal as its reason, and its deliveries wait
 * for it to be enabled again.
 */
export function createWebhookProcessor(options: WebhookProcessorOptions) {
  const disableAfter = options.disableAfterFailures ?? DEFAULT_WEBHOOK_DISABLE_AFTER;
  const maxAttempts = options.maxAttempts ?? DEFAULT_WEBHOOK_MAX_ATTEMPTS;
  const backoff = options.backoff ?? DEFAULT_WEBHOOK_BACKOFF;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const leaseMs = 2 * timeoutMs + 10_000;
  return async function processWebhookJob(job: Job, bullToken?: string): Promise<WebhookJobResult> {
    let data;
    try {
      data = parseDeliverWebhooksJob(job.data);
    } catch (error) {
      throw new UnrecoverableError(classifyFailure(error).message);
    }
    const { endpointId } = data;
    const log = options.logger.child({ jobId: job.id, webhookEndpointId: endpointId });
    const token = randomUUID();
    let delivered = 0;
    let failed = 0;
    let endpoint = await leaseWebhookEndpoint(options.db, options.keyRing, endpointId, token, leaseMs);
    if (endpoint === undefined) {
      if (bullToken !== undefined) {
        await job.moveToDelayed(Date.now() + (options.busyDelayMs ?? 1_000), bullToken);
        throw new DelayedError();
      }
      return { endpointId, delivered, failed, outcome: 'busy' };
    }
    try {
      for (;;) {
        if (!endpoint.enabled) return { endpointId, delivered, failed, outcome: 'disabled' };
        const head = await headWebhookDelivery(options.db, endpointId);
        if (head === undefined) return { endpointId, delivered, failed, outcome: 'drained' };
        if (head.dueInMs > 0) {
          await options.enqueue.drain([endpointId], { delayMs: head.dueInMs, key: `retry.${head.id}.${head.attempts}` });
          return { endpointId, delivered, failed, outcome: 'waiting' };
        }
        const attempt = await postWebhook({
          url: endpoint.url,
          secret: endpoint.secret,
          messageId: head.messageId,
          body: head.body,
          policy: options.destinations,
          allowHttp: options.allowHttp ?? false,
          timeoutMs,
          maxResponseBytes: options.maxResponseBytes ?? 64 * 1024,
        });
        const attempts = head.attempts + 1;
        const retryInMs = attempt.ok || attempt.refused || attempts >= maxAttempts ? null : computeBackoffDelay(attempts, backoff);
        const result = await recordWebhookAttempt(options.db, {
          endpointId,
          deliveryId: head.id,
          token,
          ok: attempt.ok,
          statusCode: attempt.statusCode,
          error: attempt.error,
          retryInMs,
          gone: attempt.gone,
          refused: attempt.refused,
          disableAfter,
        });
        if (!result.recorded) return { endpointId, delivered, failed, outcome: 'busy' };
        if (attempt.ok) delivered++;
        else {
          failed++;
          log.warn({ deliveryId: head.id, attempt: attempts, statusCode: attempt.statusCode, error: attempt.error, failureStreak: result.failureStreak }, 'webhook delivery failed');
        }
        if (result.notify.length > 0) await options.enqueue.drain(result.notify);
        if (result.disabled) {
          log.warn({ failureStreak: result.failureStreak, gone: attempt.gone, refused: attempt.refused }, 'webhook endpoint disabled');
          return { endpointId, delivered, failed, outcome: attempt.gone ? 'gone' : attempt.refused ? 'refused' : 'disabled' };
        }
        const renewed = await leaseWebhookEndpoint(options.db, options.keyRing, endpointId, token, leaseMs);
        if (renewed === undefined) return { endpointId, delivered, failed, outcome: 'busy' };
        endpoint = renewed;
      }
    } finally {
      await releaseWebhookEndpoint(options.db, endpointId, token);
    }
  };
}
