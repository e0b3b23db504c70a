import { checkSecretJobSchema, previewJobSchema, rotateConnectorJobSchema, syncJobSchema, type SyncMode, type SyncTrigger, testConnectionJobSchema, verifyConsentJobSchema } from '@dirsync/contracts';
import type { JobsOptions } from 'bullmq';
import type { z } from 'zod';
import { CONTROL_JOB_NAMES, controlJobOptions } from './control-jobs.ts';
import { defaultSyncJobOptions } from './job-options.ts';
import { JOB_NAMES } from './queues.ts';
import { defaultRotationJobOptions, ROTATE_CONNECTOR_JOB } from './rotation-jobs.ts';
import { DELIVER_WEBHOOKS_JOB, deliverWebhooksJobOptions, deliverWebhooksJobSchema } from './webhook-jobs.ts';

/** The queues of an installation by role (the names come from its {@link QueueLayout}). */
export type QueueRole = 'sync' | 'control' | 'rotation' | 'webhook';

/** One kind of job: its BullMQ name, the queue it runs on, what its data must be, how it is added. */
export interface JobKind<Schema extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly queue: QueueRole;
  readonly schema: Schema;
  readonly options: JobsOptions;
}

/**
 * Every job dirsync queues. Producers add and workers read jobs only through these entries, so
 * a job's name, queue, payload and retry options are decided in one place.
 */
export const JOB_TABLE = {
  sync: { name: JOB_NAMES.sync, queue: 'sync', schema: syncJobSchema, options: defaultSyncJobOptions },
  testConnection: { name: CONTROL_JOB_NAMES.testConnection, queue: 'control', schema: testConnectionJobSchema, options: controlJobOptions },
  checkSecret: { name: CONTROL_JOB_NAMES.checkSecret, queue: 'control', schema: checkSecretJobSchema, options: controlJobOptions },
  verifyConsent: { name: CONTROL_JOB_NAMES.verifyConsent, queue: 'control', schema: verifyConsentJobSchema, options: controlJobOptions },
  previewMapping: { name: CONTROL_JOB_NAMES.previewMapping, queue: 'control', schema: previewJobSchema, options: controlJobOptions },
  rotateConnector: { name: ROTATE_CONNECTOR_JOB, queue: 'rotation', schema: rotateConnectorJobSchema, options: defaultRotationJobOptions },
  deliverWebhooks: { name: DELIVER_WEBHOOKS_JOB, queue: 'webhook', schema: deliverWebhooksJobSchema, options: deliverWebhooksJobOptions },
} as const satisfies Record<string, JobKind>;

/** A key of {@link JOB_TABLE}. */
export type JobKindName = keyof typeof JOB_TABLE;

/** BullMQ priorities of sync jobs (1 runs first). */
export const SYNC_PRIORITIES = {
  /** Someone is waiting: a manual or API request, a new password being put to use. */
  interactive: 1,
  /** Scheduled (or recovered) delta syncs: short, and they keep copies fresh. */
  delta: 2,
  /** Scheduled (or recovered) full syncs: long; they yield to everything else. */
  full: 3,
} as const;

const interactiveTriggers: ReadonlySet<SyncTrigger> = new Set(['manual', 'api', 'password_update']);

/**
 * The BullMQ `priority` of a sync job: manual, API and password-update syncs before scheduled
 * deltas before scheduled fulls. Within one priority jobs keep their order of arrival.
 */
export function syncJobPriority(trigger: SyncTrigger, mode: SyncMode): number {
  if (interactiveTriggers.has(trigger)) return SYNC_PRIORITIES.interactive;
  return mode === 'full' ? SYNC_PRIORITIES.full : SYNC_PRIORITIES.delta;
}
