import type { JobsOptions } from 'bullmq';
import { z } from 'zod';
import { SYNC_BACKOFF_TYPE } from './backoff.ts';
import { InvalidJobPayloadError } from './payloads.ts';

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
