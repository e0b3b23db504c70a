import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import { type Db, reflectConsentStatus } from '@dirsync/db';

/**
 * Wraps the sync processor: when a run of an Entra integration fails because its tenant's
 * consent is missing or revoked, the run itself records `failed`; this puts `needs_consent` back
 * on the integration afterwards so administrators see the cause, then lets the failure go on.
 */
export function withConsentStatus<R>(
  processor: (job: Job, token?: string) => Promise<R>,
  db: Db,
  logger: Logger,
): (job: Job, token?: string) => Promise<R> {
  return async (job, token) => {
    try {
      return await processor(job, token);
    } catch (error) {
      const integrationId = (job.data as { integrationId?: unknown } | undefined)?.integrationId;
      if (typeof integrationId === 'string') {
        await reflectConsentStatus(db, integrationId).catch((reflectError: unknown) =>
          logger.warn({ integrationId, error: reflectError instanceof Error ? reflectError.message : String(reflectError) }, 'could not record the consent status'),
        );
      }
      throw error;
    }
  };
}
