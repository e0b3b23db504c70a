import { webhookEventSchema } from '@dirsync/contracts';
import { Webhook } from 'standardwebhooks';
import type { WebhookEvent } from './types.ts';

/** Headers of a delivery as a server framework gives them (a `Headers` or a plain object). */
export type WebhookHeaders = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/** A delivery that is not signed with the endpoint's secret, too old or too new, or not an event. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}

function header(headers: WebhookHeaders, name: string): string {
  if (headers instanceof Headers) return headers.get(name) ?? '';
  const value = headers[name] ?? headers[name.toLowerCase()];
  return (Array.isArray(value) ? value[0] : (value as string | undefined)) ?? '';
}

/**
 * Verifies a delivery signed per Standard Webhooks with the endpoint's secret (`whsec_…`) and
 * returns its event. `rawBody` must be the bytes as received (a re-serialised body does not
 * verify). A signature that does not match, a timestamp more than five minutes away or a body
 * that is not an event throws {@link WebhookVerificationError}. Deliveries are retried under the
 * same `webhook-id`: a receiver that must act once keeps the ids it has handled.
 */
export function verifyWebhook(secret: string, headers: WebhookHeaders, rawBody: string | Uint8Array): WebhookEvent {
  let parsed: unknown;
  try {
    parsed = new Webhook(secret).verify(rawBody, {
      'webhook-id': header(headers, 'webhook-id'),
      'webhook-timestamp': header(headers, 'webhook-timestamp'),
      'webhook-signature': header(headers, 'webhook-signature'),
    });
  } catch (error) {
    throw new WebhookVerificationError(error instanceof Error ? error.message : 'the delivery does not verify');
  }
  const event = webhookEventSchema.safeParse(parsed);
  if (!event.success) throw new WebhookVerificationError('the signed body is not a dirsync event');
  return event.data;
}
