import type { JobsOptions } from 'bullmq';
import { rotateConnectorJobSchema, type RotateConnectorJobData } from '@dirsync/contracts';
import { SYNC_BACKOFF_TYPE } from './backoff.ts';
import { InvalidJobPayloadError } from './payloads.ts';

/** Name of the job that rolls a connector's certificate (on {@link ROTATION_QUEUE}). */
export const ROTATE_CONNECTOR_JOB = 'rotate-connector-credential';

/** Validates the data of a rotation job. Throws {@link InvalidJobPayloadError}. */
export function parseRotateConnectorJob(data: unknown): RotateConnectorJobData {
  const result = rotateConnectorJobSchema.safeParse(data);
  if (!result.success) throw new InvalidJobPayloadError('rotate-connector-credential job', result.error);
  return result.data;
}

/**
 * Options of rotation jobs: a failed rotation is retried (the old key keeps working meanwhile),
 * with the same exponential backoff as syncs, over about an hour and a half.
 */
export const defaultRotationJobOptions = {
  attempts: 8,
  backoff: { type: SYNC_BACKOFF_TYPE, delay: 30_000 },
  removeOnComplete: { age: 30 * 24 * 3600, count: 1000 },
  removeOnFail: { age: 90 * 24 * 3600, count: 1000 },
} as const satisfies JobsOptions;

/** Job id of a scheduled rotation: every scheduler replica computes the same one for a slot. */
export function rotationJobId(connectorId: string, slotEpochMs: number): string {
  return `rotate.${connectorId}.${slotEpochMs}`;
}

