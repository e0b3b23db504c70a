import { z } from 'zod';

/**
 * Signed webhooks (Standard Webhooks, https://www.standardwebhooks.com/): what an account's
 * endpoints receive and how they are managed through `/v1/webhooks`.
 */

/** Event types an endpoint can subscribe to (`webhook.test` is sent on request only). */
export const webhookEventTypes = [
  'run.finished',
  'run.failed',
  'run.blocked',
  'objects.changed',
  'consent.needed',
  'consent.revoked',
  'rotation.failed',
  'action.needed',
  'webhook.test',
] as const;
/** A webhook event type. */
export type WebhookEventType = (typeof webhookEventTypes)[number];
/** Zod schema of {@link WebhookEventType}. */
export const webhookEventTypeSchema = z.enum(webhookEventTypes);

/** What an endpoint subscribes to: listed types, or `['*']` for every type. */
export const webhookSubscriptionSchema = z.union([
  z.tuple([z.literal('*')]),
  z.array(webhookEventTypeSchema).min(1, 'name at least one event type, or ["*"]').max(webhookEventTypes.length),
]);
/** An endpoint's subscription. */
export type WebhookSubscription = z.infer<typeof webhookSubscriptionSchema>;

/** Longest endpoint URL accepted. */
export const WEBHOOK_URL_MAX_LENGTH = 2048;
/** Longest endpoint description accepted. */
export const WEBHOOK_DESCRIPTION_MAX_LENGTH = 500;

/** Header names of a signed delivery (Standard Webhooks). */
export const WEBHOOK_HEADERS = {
  id: 'webhook-id',
  timestamp: 'webhook-timestamp',
  signature: 'webhook-signature',
} as const;

/** Data of `objects.changed`: the change-feed cursor range one run wrote. */
export const objectsChangedDataSchema = z.object({
  integrationId: z.uuid(),
  runId: z.uuid(),
  /** Cursor just before the run's first change (read the feed with `after=cursorFrom`). */
  cursorFrom: z.string(),
  /** Cursor of the run's last change. */
  cursorTo: z.string(),
  count: z.number().int().nonnegative(),
});

/** Data of the run events (`run.finished`, `run.failed`, `run.blocked`). */
export const runEventDataSchema = z.object({
  integrationId: z.uuid(),
  runId: z.uuid(),
  status: z.string(),
  mode: z.string().nullable(),
  error: z.string().nullable(),
});

/** The body of every delivery. */
export const webhookEventSchema = z.object({
  type: webhookEventTypeSchema,
  /** RFC 3339 time the event happened. */
  timestamp: z.string(),
  data: z.record(z.string(), z.unknown()),
});
/** The body of a delivery. */
export type WebhookEvent = z.infer<typeof webhookEventSchema>;

/** A webhook endpoint as the API shows it (never its secret). */
export const webhookEndpointSchema = z.object({
  id: z.uuid(),
  url: z.string(),
  events: z.array(z.string()),
  description: z.string(),
  enabled: z.boolean(),
  disabledReason: z.string().nullable(),
  failureStreak: z.number().int().nonnegative(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
/** A webhook endpoint. */
export type WebhookEndpoint = z.infer<typeof webhookEndpointSchema>;

/** `POST /v1/webhooks` body. */
export const createWebhookSchema = z.strictObject({
  url: z.string().min(1).max(WEBHOOK_URL_MAX_LENGTH),
  events: webhookSubscriptionSchema,
  description: z.string().max(WEBHOOK_DESCRIPTION_MAX_LENGTH).optional(),
});

/** `PATCH /v1/webhooks/{id}` body; enabling resets the failure streak. */
export const updateWebhookSchema = z.strictObject({
  url: z.string().min(1).max(WEBHOOK_URL_MAX_LENGTH).optional(),
  events: webhookSubscriptionSchema.optional(),
  description: z.string().max(WEBHOOK_DESCRIPTION_MAX_LENGTH).optional(),
  enabled: z.boolean().optional(),
});

/** An endpoint with its signing secret: the answer of create and rotate-secret, once. */
export const webhookEndpointWithSecretSchema = webhookEndpointSchema.extend({
  secret: z.string().describe('whsec_…: shown once; store it to verify signatures'),
});

/** Delivery states: pending (waiting or retrying), succeeded, failed (gave up). */
export const webhookDeliveryStatuses = ['pending', 'succeeded', 'failed'] as const;

/** One delivery of one event to one endpoint. */
export const webhookDeliverySchema = z.object({
  id: z.uuid(),
  endpointId: z.uuid(),
  /** The `webhook-id` header: the same on every attempt and redelivery. */
  messageId: z.string(),
  eventType: z.string(),
  status: z.enum(webhookDeliveryStatuses),
  attempts: z.number().int().nonnegative(),
  lastStatusCode: z.number().int().nullable(),
  lastError: z.string().nullable(),
  nextAttemptAt: z.string().nullable(),
  deliveredAt: z.string().nullable(),
  createdAt: z.string(),
});
/** A delivery. */
export type WebhookDelivery = z.infer<typeof webhookDeliverySchema>;

/** What `POST /v1/webhooks/{id}/test` answers (202): the `webhook-id` of the test event's delivery. */
export const webhookTestAcceptedSchema = z.object({ messageId: z.string() });

/**
 * Why `text` is not an acceptable endpoint URL, or undefined when it is: an absolute `https:`
 * URL (`http:` only where the installation allows it), no user name or password in it, no
 * fragment, at most {@link WEBHOOK_URL_MAX_LENGTH} characters. Where it may connect is checked
 * again, against the destination policy, at every delivery.
 */
export function webhookUrlProblem(text: string, options: { readonly allowHttp: boolean }): string | undefined {
  if (text.length > WEBHOOK_URL_MAX_LENGTH) return `must be at most ${WEBHOOK_URL_MAX_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be an absolute URL';
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && options.allowHttp)) {
    return options.allowHttp ? 'must be an https: or http: URL' : 'must be an https: URL (this installation does not allow http:)';
  }
  if (url.username !== '' || url.password !== '') return 'must not carry a user name or password';
  if (url.hash !== '') return 'must not have a fragment';
  if (url.hostname === '') return 'must name a host';
  return undefined;
}
