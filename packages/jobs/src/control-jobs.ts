import { checkSecretJobSchema, type CheckSecretJobData, previewJobSchema, type PreviewJobData, verifyConsentJobSchema, type VerifyConsentJobData } from '@dirsync/contracts';
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
  /** Map a few entries read from the directory with the stored or an unsaved attribute mapping. */
  previewMapping: 'preview-mapping',
} as const;

/** Validates the data of a `check-secret` job. Throws {@link InvalidJobPayloadError}. */
export function parseCheckSecretJob(data: unknown): CheckSecretJobData {
  const result = checkSecretJobSchema.safeParse(data);
  if (!result.success) throw new InvalidJobPayloadError('check-secret job', result.error);
  return result.data;
}

/** Validates the data of a `verify-consent` job. Throws {@link InvalidJobPayloadError}. */
export function parseVerifyConsentJob(data: unknown): VerifyConsentJobData {
  const result = verifyConsentJobSchema.safeParse(data);
  if (!result.success) throw new InvalidJobPayloadError('verify-consent job', result.error);
  return result.data;
}

/** Validates the data of a `preview-mapping` job. Throws {@link InvalidJobPayloadError}. */
export function parsePreviewJob(data: unknown): PreviewJobData {
  const result = previewJobSchema.safeParse(data);
  if (!result.success) throw new InvalidJobPayloadError('preview-mapping job', result.error);
  return result.data;
}

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
