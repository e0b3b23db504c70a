/**
 * Queue and job names shared by every producer (scheduler, API, CLI) and the workers. They meet
 * only in Redis, so these strings are the whole contract between them.
 */

/** Queue of directory syncs (long jobs, one integration each). */
export const SYNC_QUEUE = 'dirsync-sync';

/**
 * Queue of short, high-priority jobs (Test Connection, checking a new service-account password)
 * that must not wait behind long syncs.
 */
export const CONTROL_QUEUE = 'dirsync-control';

/** Queue of connector credential rotations. */
export const ROTATION_QUEUE = 'dirsync-rotation';

/** Queue of webhook deliveries: one job drains one endpoint's pending deliveries, in order. */
export const WEBHOOK_QUEUE = 'dirsync-webhook';

/** Every queue name, for tooling that needs to list or clean them. */
export const QUEUE_NAMES = [SYNC_QUEUE, CONTROL_QUEUE, ROTATION_QUEUE, WEBHOOK_QUEUE] as const;

/** A queue name. */
export type QueueName = (typeof QUEUE_NAMES)[number];

/** Job names per queue. */
export const JOB_NAMES = {
  sync: 'sync',
  testConnection: 'test-connection',
  rotateCredentials: 'rotate-credentials',
} as const;

/**
 * Redis key prefix used when none is configured. It is BullMQ's own default, so a worker or a
 * dashboard started without a prefix still meets the producers.
 */
export const DEFAULT_QUEUE_PREFIX = 'bull';
