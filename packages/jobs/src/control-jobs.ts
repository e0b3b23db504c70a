import { z } from 'zod';
import { InvalidJobPayloadError } from './payloads.ts';
import { JOB_NAMES } from './queues.ts';

/** Job names on {@link CONTROL_QUEUE}. */
export const CONTROL_JOB_NAMES = {
  /** Test Connection with the stored secret. */
  testConnection: JOB_NAMES.testConnection,
  /** Test Connection with a new secret waiting in `integration_secret_candidates`. */
  checkSecret: 'check-secret',
  /** Obtain a token for the tenant of an answered admin-consent request and record what it carries. */
  verifyConsent: 'verify-consent',
} as const;

/**
 * Data of a `check-secret` job: the candidate is named by id only, the secret itself stays
 * encrypted in Postgres (job data is readable by anyone with Redis access).
 */
export const checkSecretJobSchema = z.strictObject({
  integrationId: z.uuid(),
  requestId: z.uuid(),
  candidateId: z.uuid(),
  requestedBy: z.string().trim().min(1).max(200).optional(),
});

/** Data of a `check-secret` job. */
export type CheckSecretJobData = z.infer<typeof checkSecretJobSchema>;

/** Validates the data of a `check-secret` job. Throws {@link InvalidJobPayloadError}. */
export function parseCheckSecretJob(data: unknown): CheckSecretJobData {
  const result = checkSecretJobSchema.safeParse(data);
  if (!result.success) throw new InvalidJobPayloadError('check-secret job', result.error);
  return result.data;
}

/**
 * Data of a `verify-consent` job: the consent request is named by its nonce, which the redirect
 * has already used up (it can no longer answer a consent page).
 */
export const verifyConsentJobSchema = z.strictObject({
  requestId: z.uuid(),
  nonce: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
});

/** Data of a `verify-consent` job. */
export type VerifyConsentJobData = z.infer<typeof verifyConsentJobSchema>;

/** Validates the data of a `verify-consent` job. Throws {@link InvalidJobPayloadError}. */
export function parseVerifyConsentJob(data: unknown): VerifyConsentJobData {
  const result = verifyConsentJobSchema.safeParse(data);
  if (!result.success) throw new InvalidJobPayloadError('verify-consent job', result.error);
  return result.data;
}

/** What a `verify-consent` job returns: the outcome it recorded (the worker writes it itself). */
export const consentVerificationResultSchema = z.object({
  outcome: z.enum(['granted', 'denied', 'not_granted', 'confirmation_required', 'failed']),
  detail: z.string().nullable(),
});

/** Result of a `verify-consent` job. */
export type ConsentVerificationResult = z.infer<typeof consentVerificationResultSchema>;

/** One line of a Test Connection checklist, as a control job returns it. */
export const connectionCheckSchema = z.object({
  name: z.string(),
  ok: z.boolean(),
  detail: z.string(),
  warning: z.boolean().optional(),
});

/** What a Test Connection control job returns. */
export const connectionReportSchema = z.object({
  ok: z.boolean(),
  checks: z.array(connectionCheckSchema),
});

/** Result of a Test Connection control job. */
export type ConnectionReportResult = z.infer<typeof connectionReportSchema>;

/** Options every control job is added with: one attempt (the caller waits), short retention. */
export const controlJobOptions = {
  attempts: 1,
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 24 * 3600, count: 1000 },
} as const;

/** Id of the control job answering request `requestId`. */
export function controlJobId(requestId: string): string {
  return `control.${requestId}`;
}
