import { z } from 'zod';

/** Sync modes (same values as the `sync_runs.mode` column). */
export const SYNC_MODES = ['full', 'delta'] as const;
/** What asked for a sync (same values as the `sync_runs.trigger` column). */
export const SYNC_TRIGGERS = ['schedule', 'manual', 'api', 'password_update', 'recovery'] as const;

/** A sync mode. */
export type SyncMode = (typeof SYNC_MODES)[number];
/** A sync trigger. */
export type SyncTrigger = (typeof SYNC_TRIGGERS)[number];

const requestedBy = z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');
const isoInstant = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time' });

// Payload objects are strict: an unknown key is refused rather than carried along, so a secret
// can never ride in a job by accident (job data is readable by anyone with Redis access).

/** Data of a `sync` job on {@link SYNC_QUEUE}. Never holds a secret. */
export const syncJobSchema = z.strictObject({
  integrationId: z.uuid(),
  runId: z.uuid(),
  mode: z.enum(SYNC_MODES),
  trigger: z.enum(SYNC_TRIGGERS),
  dryRun: z.boolean(),
  requestedBy: requestedBy.optional(),
  /** The schedule slot this job stands for (scheduled jobs only). */
  scheduledFor: isoInstant.optional(),
});

/** Data of a `sync` job. */
export type SyncJobData = z.infer<typeof syncJobSchema>;

/**
 * What a producer asks for. `runId` is generated when absent; `dryRun` defaults to false.
 * `scheduledFor` makes the job id deterministic (see `scheduledJobId`), so replaying the same
 * schedule slot never adds a second job.
 */
export const syncRequestSchema = z.strictObject({
  integrationId: z.uuid(),
  mode: z.enum(SYNC_MODES),
  trigger: z.enum(SYNC_TRIGGERS),
  dryRun: z.boolean().default(false),
  requestedBy: requestedBy.optional(),
  scheduledFor: isoInstant.optional(),
  runId: z.uuid().optional(),
});

/** Input accepted by `enqueueSync`. */
export type SyncRequest = z.input<typeof syncRequestSchema>;

/** Data of a `test-connection` job on {@link CONTROL_QUEUE}. */
export const testConnectionJobSchema = z.strictObject({
  integrationId: z.uuid(),
  /** Correlates the answer with the waiting caller. */
  requestId: z.uuid(),
  requestedBy: requestedBy.optional(),
});

/** Data of a `test-connection` job. */
export type TestConnectionJobData = z.infer<typeof testConnectionJobSchema>;

/** Data of a `rotate-credentials` job on {@link ROTATION_QUEUE}. */
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

/**
 * A job payload or request that does not match its schema. The message lists each problem as
 * `path: reason` on one line; it names keys, never their values.
 */
export class InvalidJobPayloadError extends Error {
  /** One entry per problem, `path: reason`. */
  readonly problems: readonly string[];

  constructor(what: string, error: z.ZodError) {
    const problems = error.issues.map((issue) => {
      const path = issue.path.map(String).join('.');
      return path === '' ? issue.message : `${path}: ${issue.message}`;
    });
    super(`invalid ${what}: ${problems.join('; ')}`);
    this.name = 'InvalidJobPayloadError';
    this.problems = problems;
  }
}

function parseWith<S extends z.ZodType>(schema: S, what: string, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new InvalidJobPayloadError(what, result.error);
  return result.data;
}

/** Validates the data of a `sync` job (workers call this first). Throws {@link InvalidJobPayloadError}. */
export function parseSyncJob(data: unknown): SyncJobData {
  return parseWith(syncJobSchema, 'sync job', data);
}

/** Validates a sync request. Throws {@link InvalidJobPayloadError}. */
export function parseSyncRequest(request: unknown): z.output<typeof syncRequestSchema> {
  return parseWith(syncRequestSchema, 'sync request', request);
}

/** Validates the data of a `test-connection` job. Throws {@link InvalidJobPayloadError}. */
export function parseTestConnectionJob(data: unknown): TestConnectionJobData {
  return parseWith(testConnectionJobSchema, 'test-connection job', data);
}

/** Validates the data of a `rotate-credentials` job. Throws {@link InvalidJobPayloadError}. */
export function parseRotateCredentialsJob(data: unknown): RotateCredentialsJobData {
  return parseWith(rotateCredentialsJobSchema, 'rotate-credentials job', data);
}
