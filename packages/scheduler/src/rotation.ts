import { claimRotationSlot, type Db, listRotationSchedules, releaseRotationSlot } from '@dirsync/db';
import { createRotationEnqueueClient, DEFAULT_SCHEDULE_TIMEZONE, InvalidCronError, latestDueSlot, type RedisConnection, type RotationEnqueueClient } from '@dirsync/jobs';
import type { Logger } from 'pino';

/** Recorded as the requester of scheduled rotations. */
export const ROTATION_REQUESTER = 'scheduler';

/** One rotation job a tick enqueued (or found already standing for the slot). */
export interface ScheduledRotation {
  readonly connectorId: string;
  readonly slot: Date;
  readonly jobId: string;
  readonly deduplicated: boolean;
}

/** What the rotation part of a tick did. */
export interface RotationTickResult {
  readonly enqueued: ScheduledRotation[];
  readonly failed: { readonly connectorId: string; readonly error: string }[];
}

/** Options of {@link createRotationScheduler}. */
export interface RotationSchedulerOptions {
  readonly db: Db;
  readonly connection: RedisConnection;
  readonly prefix?: string | undefined;
  readonly timezone?: string | undefined;
  readonly logger: Logger;
}

/** Enqueues each connector's daily credential rotation once per slot, however many replicas run. */
export interface RotationScheduler {
  tick(now: Date): Promise<RotationTickResult>;
  close(): Promise<void>;
}

/**
 * Creates the rotation part of the scheduler. Per tick and connector: the latest slot of its
 * rotation cron (default daily at 03:00 UTC) is due when newer than the slot last claimed; a
 * connector never scheduled is due at once. The slot is claimed with one conditional update (one
 * replica wins), then enqueued with a job id derived from connector and slot; a claim whose job
 * could not be enqueued is given back for the next tick.
 */
export function createRotationScheduler(options: RotationSchedulerOptions): RotationScheduler {
  const { db, logger } = options;
  const tz = options.timezone ?? DEFAULT_SCHEDULE_TIMEZONE;
  let client: RotationEnqueueClient | undefined;
  const enqueue = () =>
    (client ??= createRotationEnqueueClient({
      connection: options.connection,
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
      onError: (error) => logger.warn({ err: error }, 'redis connection error (rotation queue)'),
    }));
  const reported = new Map<string, string>();

  return {
    async tick(now) {
      const enqueued: ScheduledRotation[] = [];
      const failed: { connectorId: string; error: string }[] = [];
      for (const connector of await listRotationSchedules(db)) {
        try {
          let slot: Date;
          try {
            slot = latestDueSlot(connector.rotationCron, now, tz);
            reported.delete(connector.id);
          } catch (error) {
            if (!(error instanceof InvalidCronError)) throw error;
            if (reported.get(connector.id) !== connector.rotationCron) {
              reported.set(connector.id, connector.rotationCron);
              logger.warn({ connectorId: connector.id, reason: error.message }, 'connector skipped: invalid rotation schedule');
            }
            throw error;
          }
          if (connector.rotationScheduledFor !== null && connector.rotationScheduledFor.getTime() >= slot.getTime()) continue;
          const claim = await claimRotationSlot(db, connector.id, slot);
          if (claim === undefined) continue;
          let result;
          try {
            result = await enqueue().enqueueRotation({ connectorId: connector.id, trigger: 'schedule', scheduledFor: slot.toISOString(), requestedBy: ROTATION_REQUESTER });
          } catch (error) {
            await releaseRotationSlot(db, connector.id, slot, claim.previous).catch((releaseError: unknown) =>
              logger.error({ connectorId: connector.id, err: releaseError }, 'could not release a claimed rotation slot'),
            );
            throw error;
          }
          const scheduled = { connectorId: connector.id, slot, jobId: result.jobId, deduplicated: result.deduplicated };
          logger.info({ ...scheduled, slot: slot.toISOString() }, 'connector rotation enqueued');
          enqueued.push(scheduled);
        } catch (error) {
          failed.push({ connectorId: connector.id, error: error instanceof Error ? error.message : String(error) });
          if (!(error instanceof InvalidCronError)) logger.error({ connectorId: connector.id, err: error }, 'could not schedule a connector rotation');
        }
      }
      return { enqueued, failed };
    },
    async close() {
      await client?.close();
    },
  };
}
