import type { z } from 'zod';
import {
  rotateCredentialsJobSchema,
  syncJobSchema,
  syncRequestSchema,
  testConnectionJobSchema,
  type RotateCredentialsJobData,
  type SyncJobData,
  type TestConnectionJobData,
} from '@dirsync/contracts';

// The payload shapes are the contracts' (`syncJobSchema` and the others); this module parses
// them with the queue's typed error.

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
