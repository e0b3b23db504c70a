import { z } from 'zod';
import { mappedSampleSchema } from './mapping.ts';
import { syncModes, syncTriggers } from './vocabulary.ts';

// Payloads of the queue's jobs and what control jobs answer. The queue mechanics (names, options,
// parsing with typed errors) live in @dirsync/jobs; the shapes live here so that producers,
// workers and the API agree on them.

const requestedBy = z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');
const isoInstant = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time' });

// Payload objects are strict: an unknown key is refused rather than carried along, so a secret
// can never ride in a job by accident (job data is readable by anyone with Redis access).

/** Data of a `sync` job on the sync queue. Never holds a secret. */
export const syncJobSchema = z.strictObject({
  integrationId: z.uuid(),
  runId: z.uuid(),
  mode: z.enum(syncModes),
  trigger: z.enum(syncTriggers),
  dryRun: z.boolean(),
  requestedBy: requestedBy.optional(),
  /** The schedule slot this job stands for (scheduled jobs only). */
  scheduledFor: isoInstant.optional(),
});

/** Data of a `sync` job. */
export type SyncJobData = z.infer<typeof syncJobSchema>;

/**
 * What a producer asks for. `runId` is generated when absent; `dryRun` defaults to false.
 * `scheduledFor` makes the job id deterministic (see `scheduledJobId` in @dirsync/jobs), so
 * replaying the same schedule slot never adds a second job.
 */
export const syncRequestSchema = z.strictObject({
  integrationId: z.uuid(),
  mode: z.enum(syncModes),
  trigger: z.enum(syncTriggers),
  dryRun: z.boolean().default(false),
  requestedBy: requestedBy.optional(),
  scheduledFor: isoInstant.optional(),
  runId: z.uuid().optional(),
});

/** Input accepted by `enqueueSync`. */
export type SyncRequest = z.input<typeof syncRequestSchema>;

/** Data of a `test-connection` job on the control queue. */
export const testConnectionJobSchema = z.strictObject({
  integrationId: z.uuid(),
  /** Correlates the answer with the waiting caller. */
  requestId: z.uuid(),
  requestedBy: requestedBy.optional(),
});

/** Data of a `test-connection` job. */
export type TestConnectionJobData = z.infer<typeof testConnectionJobSchema>;

/** Data of a `rotate-credentials` job on the rotation queue. */
export const rotateCredentialsJobSchema = z.strictObject({
  /** The integration whose connector certificate is rolled. */
  integrationId: z.uuid(),
  trigger: z.enum(['schedule', 'manual']),
  /** The daily slot this rotation stands for (scheduled rotations only). */
  scheduledFor: isoInstant.optional(),
  requestedBy: requestedBy.optional(),
});

/** Data of a `rotate-credentials` job. */
export type RotateCredentialsJobData = z.infer<typeof rotateCredentialsJobSchema>;

/** Data of a `rotate-connector-credential` job on the rotation queue. Never holds a secret. */
export const rotateConnectorJobSchema = z.strictObject({
  connectorId: z.uuid(),
  trigger: z.enum(['schedule', 'manual']),
  /** The daily slot this rotation stands for (scheduled rotations): a second job for it does nothing. */
  scheduledFor: isoInstant.optional(),
  requestedBy: requestedBy.optional(),
});

/** Data of a `rotate-connector-credential` job. */
export type RotateConnectorJobData = z.infer<typeof rotateConnectorJobSchema>;

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

/** What a `verify-consent` job returns: the outcome it recorded (the worker writes it itself). */
export const consentVerificationResultSchema = z.object({
  outcome: z.enum(['granted', 'denied', 'not_granted', 'confirmation_required', 'failed']),
  detail: z.string().nullable(),
});

/** Result of a `verify-consent` job. */
export type ConsentVerificationResult = z.infer<typeof consentVerificationResultSchema>;

/** One line of a Test Connection checklist. */
export const connectionCheckSchema = z.object({
  name: z.string(),
  ok: z.boolean(),
  detail: z.string(),
  warning: z.boolean().optional(),
});

/** A Test Connection checklist: what a control job returns and what the API answers. */
export const connectionReportSchema = z.object({
  ok: z.boolean(),
  checks: z.array(connectionCheckSchema),
  /** A few entries mapped with the integration's attribute mapping, when the checks passed. */
  samples: z.array(mappedSampleSchema).max(20).optional(),
});

/** A Test Connection checklist. */
export type ConnectionReport = z.infer<typeof connectionReportSchema>;
/** One item of a Test Connection checklist. */
export type ConnectionCheck = z.infer<typeof connectionCheckSchema>;
