import { claimDueSlots, listSchedulable, releaseClaimedSlots, type Db, type SchedulableIntegration } from '@dirsync/db';
import { createEnqueueClient, createRepeatedErrorLog, errorText, InvalidJobPayloadError, type QueueCheck, type RedisConnection, type SyncMode } from '@dirsync/jobs';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { DEFAULT_SCHEDULE_TIMEZONE, InvalidCronError } from './cron.ts';
import { dueSlots, planSync, type DueSlots } from './plan.ts';
import { createReconciler, type Reconciler, type ReconcilerOptions } from './reconciler.ts';
import { requestSync } from './request-sync.ts';
import { createRotationScheduler, type RotationTickResult } from './rotation.ts';

/** Every 30 seconds (node-cron's six-field form, seconds first). */
export const DEFAULT_TICK_CRON = '*/30 * * * * *';

/** Recorded as `requested_by` of scheduled runs. */
export const SCHEDULER_REQUESTER = 'scheduler';

/** Options of {@link createScheduler}. */
export interface SchedulerOptions {
  /** Database handle; the caller owns it (the scheduler never closes it). */
  readonly db: Db;
  /** Redis the workers read from; the scheduler opens and closes its own connection. */
  readonly connection: RedisConnection;
  /** BullMQ key prefix; must match the workers'. */
  readonly prefix?: string;
  /** When ticks run (node-cron syntax, seconds allowed). Default {@link DEFAULT_TICK_CRON}. */
  readonly tickCron?: string;
  /** IANA time zone the integrations' crons are read in. Default UTC. */
  readonly timezone?: string;
  readonly logger: Logger;
  /** Clock; tests pin it. */
  readonly now?: () => Date;
  /** Integrations scheduled in parallel within one tick. Default 4. */
  readonly concurrency?: number;
  /** Also enqueue connectors' daily credential rotations (default true). */
  readonly rotations?: boolean;
  /**
   * The run reconciler `start()` runs beside the ticks (see `createReconciler`): its timings, or
   * false for none. Default: on, with its default timings.
   */
  readonly reconcile?: false | Pick<ReconcilerOptions, 'intervalMs' | 'stallLimitMs' | 'queuedGraceMs'>;
}

/** One job the tick enqueued (or found already standing for the slot). */
export interface ScheduledSync {
  readonly integrationId: string;
  readonly mode: SyncMode;
  readonly slot: Date;
  readonly jobId: string;
  readonly runId: string;
  /** The slot was merged into a waiting job (or its own job already existed). */
  readonly deduplicated: boolean;
  /** The waiting job was a delta and now runs full. */
  readonly upgraded: boolean;
  /** A delta slot fell due in the same tick and this full sync covers it. */
  readonly supersedesDelta: boolean;
}

/** An integration the tick could not schedule; the others were not affected. */
export interface TickFailure {
  readonly integrationId: string;
  readonly error: string;
}

/** What one tick did. */
export interface TickResult {
  readonly now: Date;
  /** Enabled integrations looked at. */
  readonly considered: number;
  readonly enqueued: ScheduledSync[];
  readonly failed: TickFailure[];
  /** Connector credential rotations enqueued (empty when rotations are off). */
  readonly rotations: RotationTickResult;
}

/** A scheduler replica. Any number may run: each due slot is enqueued once among them. */
export interface Scheduler {
  /** Starts ticking on `tickCron`, with a first tick right away. */
  start(): void;
  /** Stops ticking, waits for a running tick and closes the Redis connection. Idempotent. */
  stop(): Promise<void>;
  /** Runs one tick at `now` (default: the clock). Never rejects because of one integration. */
  tick(now?: Date): Promise<TickResult>;
  /**
   * Whether its enqueues work: not ok from a failed enqueue until the next one succeeds (a
   * scheduler whose Redis refuses queue commands cannot do its job). For readiness.
   */
  health(): QueueCheck;
}

async function forEachLimited<T>(items: readonly T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await run(item);
    }
  });
  await Promise.all(lanes);
}

/**
 * Creates a scheduler replica. On each tick it reads the enabled integrations, works out for
 * each the latest due full and delta slot, claims new slots in Postgres (one conditional update,
 * so exactly one replica wins a slot), and asks for the sync with {@link requestSync} under a job
 * id derived from (integration, mode, slot), which also records the queued run. See `dueSlots`
 * and `planSync` for the rules (catch-up after downtime, full supersedes delta, first sight runs full).
 */
export function createScheduler(options: SchedulerOptions): Scheduler {
  const { db, logger } = options;
  const clock = options.now ?? (() => new Date());
  const tz = options.timezone ?? DEFAULT_SCHEDULE_TIMEZONE;
  const tickCron = options.tickCron ?? DEFAULT_TICK_CRON;
  const concurrency = options.concurrency ?? 4;
  if (!cron.validate(tickCron)) throw new InvalidCronError(`tick schedule ${JSON.stringify(tickCron)} is not a valid cron expression`);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError('concurrency must be a positive integer');

  const redisErrors = createRepeatedErrorLog({ logger, level: 'warn' });
  const enqueue = createEnqueueClient({
    connection: options.connection,
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    onError: (error) => redisErrors.report('redis connection error', error),
  });
  const rotations =
    options.rotations === false
      ? undefined
      : createRotationScheduler({ db, connection: options.connection, prefix: options.prefix, timezone: tz, logger });
  const inFlight = new Set<Promise<unknown>>();
  // Every integration of a tick fails alike while Redis is broken: one line, then a summary.
  const scheduleErrors = createRepeatedErrorLog({ logger });
  let enqueueFailure: string | undefined;
  // Bad schedules are reported once per expression, not every 30 seconds.
  const reportedBadSchedules = new Map<string, string>();
  let task: ScheduledTask | undefined;
  let reconciler: Reconciler | undefined;
  let stopped = false;

  async function scheduleIntegration(row: SchedulableIntegration, now: Date): Promise<ScheduledSync | undefined> {
    let due: DueSlots;
    try {
      due = dueSlots(row, now, tz);
    } catch (error) {
      if (!(error instanceof InvalidCronError)) throw error;
      const key = `${row.deltaCron}\n${row.fullCron}`;
      if (reportedBadSchedules.get(row.id) !== key) {
        reportedBadSchedules.set(row.id, key);
        logger.warn({ integrationId: row.id, reason: error.message }, 'integration skipped: invalid schedule');
      }
      throw error;
    }
    reportedBadSchedules.delete(row.id);
    if (due.full === null && due.delta === null) return undefined;

    const claimed = await claimDueSlots(db, row.id, due);
    const plan = claimed === null ? null : planSync(claimed);
    if (claimed === null || plan === null) return undefined;

    let result;
    try {
      result = await requestSync(
        { db, enqueue },
        { integrationId: row.id, mode: plan.mode, trigger: 'schedule', requestedBy: SCHEDULER_REQUESTER, scheduledFor: plan.slot },
        {
          // The job is queued and its slot claimed; the worker records a missing run when it starts.
          onRunNotRecorded: (error, queued) =>
            logger.error({ integrationId: row.id, runId: queued.runId, err: error }, 'scheduled sync queued but its run row was not written'),
        },
      );
      enqueueFailure = undefined;
    } catch (error) {
      // Give the slot back so the next tick (of any replica) tries again.
      if (!(error instanceof InvalidJobPayloadError)) enqueueFailure = errorText(error);
      await releaseClaimedSlots(db, row.id, claimed).catch((releaseError: unknown) =>
        logger.error({ integrationId: row.id, err: releaseError }, 'could not release a claimed schedule slot'),
      );
      throw error;
    }

    const scheduled: ScheduledSync = {
      integrationId: row.id,
      mode: plan.mode,
      slot: plan.slot,
      jobId: result.jobId,
      runId: result.runId,
      deduplicated: result.deduplicated,
      upgraded: result.upgraded,
      supersedesDelta: plan.supersedesDelta,
    };
    logger.info({ ...scheduled, slot: plan.slot.toISOString() }, 'scheduled sync enqueued');
    return scheduled;
  }

  async function tick(now: Date = clock()): Promise<TickResult> {
    const rows = await listSchedulable(db);
    const enqueued: ScheduledSync[] = [];
    const failed: TickFailure[] = [];
    await forEachLimited(rows, concurrency, async (row) => {
      try {
        const scheduled = await scheduleIntegration(row, now);
        if (scheduled !== undefined) enqueued.push(scheduled);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        failed.push({ integrationId: row.id, error: message });
        if (!(error instanceof InvalidCronError)) {
          scheduleErrors.report('could not schedule integration', error, { integrationId: row.id });
        }
      }
    });
    const rotated: RotationTickResult = rotations
      ? await rotations.tick(now).catch((error: unknown) => {
          logger.error({ err: error }, 'could not schedule connector rotations');
          return { enqueued: [], failed: [] };
        })
      : { enqueued: [], failed: [] };
    logger.debug({ now: now.toISOString(), considered: rows.length, enqueued: enqueued.length, failed: failed.length }, 'tick done');
    return { now, considered: rows.length, enqueued, failed, rotations: rotated };
  }

  function tickInBackground(): void {
    const running = tick(clock())
      .catch((error: unknown) => logger.error({ err: error }, 'scheduler tick failed'))
      .finally(() => inFlight.delete(running));
    inFlight.add(running);
  }

  return {
    tick,
    health() {
      return enqueueFailure === undefined ? { ok: true } : { ok: false, detail: `enqueueing syncs fails: ${enqueueFailure}` };
    },
    start() {
      if (stopped) throw new Error('a stopped scheduler cannot be started again');
      if (task !== undefined) return;
      task = cron.schedule(
        tickCron,
        () => {
          // A tick still running (a slow database) makes the next one wait for the one after.
          if (inFlight.size > 0) {
            logger.warn('previous scheduler tick still running; skipping this one');
            return;
          }
          tickInBackground();
        },
        { name: 'dirsync-scheduler-tick' },
      );
      logger.info({ tickCron, timezone: tz }, 'scheduler started');
      tickInBackground();
      if (options.reconcile !== false) {
        reconciler = createReconciler({ db, connection: options.connection, prefix: options.prefix, logger, ...options.reconcile });
        reconciler.start();
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (task !== undefined) await task.destroy();
      await Promise.allSettled([...inFlight, reconciler?.stop()]);
      await enqueue.close();
      await rotations?.close();
      logger.info('scheduler stopped');
    },
  };
}
