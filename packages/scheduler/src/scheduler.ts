import type { SyncMode } from '@dirsync/contracts';
import { claimDueBatch, releaseClaimedSlots, type ClaimedCandidate, type Db, type ScheduleCandidate, type ScheduleDecision } from '@dirsync/db';
import { createEnqueueClient, createRepeatedErrorLog, DEFAULT_SCHEDULE_TIMEZONE, errorText, InvalidCronError, InvalidJobPayloadError, type QueueCheck, type RedisConnection } from '@dirsync/jobs';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { DEFAULT_JITTER_MAX_MS, dueSlots, jitterOffsetMs, nextDueAt, planSync } from './plan.ts';
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
  /** Claimed integrations enqueued in parallel within one tick. Default 8. */
  readonly concurrency?: number;
  /**
   * Due integrations one replica claims at a time (one transaction, rows locked with `SKIP
   * LOCKED`, so replicas ticking together take different batches). Default 100.
   */
  readonly batchSize?: number;
  /**
   * Longest stable per-integration jitter (see `jitterOffsetMs`): each slot falls due up to this
   * long after its cron time, never past the shorter of the integration's two cron intervals.
   * 0 turns jitter off. Default {@link DEFAULT_JITTER_MAX_MS} (one hour).
   */
  readonly jitterMaxMs?: number;
  /** Also enqueue connectors' daily credential rotations (default true). */
  readonly rotations?: boolean;
  /**
   * The run reconciler `start()` runs beside the ticks (see `createReconciler`): its timings, or
   * false for none. Default: on, with its default timings.
   */
  readonly reconcile?: false | Pick<ReconcilerOptions, 'intervalMs' | 'stallLimitMs' | 'queuedGraceMs' | 'retention'>;
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
  /**
   * Integrations this replica looked at: enabled ones whose next due time had come and that no
   * other replica had locked. A tick with nothing due considers none.
   */
  readonly considered: number;
  readonly enqueued: ScheduledSync[];
  readonly failed: TickFailure[];
  /** Connector credential rotations enqueued (empty when rotations are off). */
  readonly rotations: RotationTickResult;
  /** Wall-clock time the tick took, in milliseconds. */
  readonly durationMs: number;
  /** CPU time (user + system) this process spent during the tick, in milliseconds. */
  readonly cpuMs: number;
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
 * Creates a scheduler replica. On each tick it claims the integrations whose next due time has
 * come, in batches that other replicas skip (`claimDueBatch`), works out for each the latest due
 * full and delta slot (with the integration's stable jitter, see `jitterOffsetMs`) and its next
 * due time, and asks for the sync with {@link requestSync} under a job id derived from
 * (integration, mode, slot), which also records the queued run. Replicas ticking together each
 * take about an equal share, and each due slot is enqueued once among them. See `dueSlots` and
 * `planSync` for the rules (catch-up after downtime, full supersedes delta, first sight runs full).
 */
export function createScheduler(options: SchedulerOptions): Scheduler {
  const { db, logger } = options;
  const clock = options.now ?? (() => new Date());
  const tz = options.timezone ?? DEFAULT_SCHEDULE_TIMEZONE;
  const tickCron = options.tickCron ?? DEFAULT_TICK_CRON;
  const concurrency = options.concurrency ?? 8;
  const batchSize = options.batchSize ?? 100;
  const jitterMaxMs = options.jitterMaxMs ?? DEFAULT_JITTER_MAX_MS;
  if (!cron.validate(tickCron)) throw new InvalidCronError(`tick schedule ${JSON.stringify(tickCron)} is not a valid cron expression`);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError('concurrency must be a positive integer');
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError('batchSize must be a positive integer');
  if (!Number.isFinite(jitterMaxMs) || jitterMaxMs < 0) throw new RangeError('jitterMaxMs must be a non-negative number');

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

  /**
   * Due slots and next due time of a locked candidate. An invalid cron yields nothing to claim
   * and a look again on the next tick (just after `now`), where it is reported as failed again.
   */
  function decide(candidate: ScheduleCandidate, now: Date, invalid: Map<string, InvalidCronError>): ScheduleDecision {
    try {
      const offset = jitterOffsetMs(candidate.id, candidate, jitterMaxMs);
      const decision = { due: dueSlots(candidate, now, tz, offset), nextDueAt: nextDueAt(candidate, now, tz, offset) };
      reportedBadSchedules.delete(candidate.id);
      return decision;
    } catch (error) {
      if (!(error instanceof InvalidCronError)) throw error;
      invalid.set(candidate.id, error);
      const key = `${candidate.deltaCron}\n${candidate.fullCron}`;
      if (reportedBadSchedules.get(candidate.id) !== key) {
        reportedBadSchedules.set(candidate.id, key);
        logger.warn({ integrationId: candidate.id, reason: error.message }, 'integration skipped: invalid schedule');
      }
      return { due: { full: null, delta: null }, nextDueAt: new Date(now.getTime() + 1) };
    }
  }

  async function enqueueClaimed({ candidate, claimed }: ClaimedCandidate, now: Date): Promise<ScheduledSync | undefined> {
    const plan = claimed === null ? null : planSync(claimed);
    if (claimed === null || plan === null) return undefined;

    let result;
    try {
      result = await requestSync(
        { db, enqueue },
        { integrationId: candidate.id, mode: plan.mode, trigger: 'schedule', requestedBy: SCHEDULER_REQUESTER, scheduledFor: plan.slot },
        {
          // The job is queued and its slot claimed; the worker records a missing run when it starts.
          onRunNotRecorded: (error, queued) =>
            logger.error({ integrationId: candidate.id, runId: queued.runId, err: error }, 'scheduled sync queued but its run row was not written'),
        },
      );
      enqueueFailure = undefined;
    } catch (error) {
      // Give the slot back so the next tick (of any replica) tries again; not this tick, which
      // would take the row straight back and fail the same way.
      if (!(error instanceof InvalidJobPayloadError)) enqueueFailure = errorText(error);
      await releaseClaimedSlots(db, candidate.id, claimed, new Date(now.getTime() + 1)).catch((releaseError: unknown) =>
        logger.error({ integrationId: candidate.id, err: releaseError }, 'could not release a claimed schedule slot'),
      );
      throw error;
    }

    const scheduled: ScheduledSync = {
      integrationId: candidate.id,
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
    const started = performance.now();
    const cpuStart = process.cpuUsage();
    const enqueued: ScheduledSync[] = [];
    const failed: TickFailure[] = [];
    let considered = 0;
    // Batch after batch until one comes back short: the rows this replica left are either not
    // due or locked by another replica, which schedules them.
    for (;;) {
      const invalid = new Map<string, InvalidCronError>();
      const batch = await claimDueBatch(db, { now, limit: batchSize, decide: (candidate) => decide(candidate, now, invalid) });
      considered += batch.examined;
      for (const [integrationId, error] of invalid) failed.push({ integrationId, error: error.message });
      await forEachLimited(batch.claims, concurrency, async (claim) => {
        try {
          const scheduled = await enqueueClaimed(claim, now);
          if (scheduled !== undefined) enqueued.push(scheduled);
        } catch (error) {
          failed.push({ integrationId: claim.candidate.id, error: error instanceof Error ? error.message : String(error) });
          scheduleErrors.report('could not schedule integration', error, { integrationId: claim.candidate.id });
        }
      });
      if (batch.examined < batchSize) break;
    }
    const rotated: RotationTickResult = rotations
      ? await rotations.tick(now).catch((error: unknown) => {
          logger.error({ err: error }, 'could not schedule connector rotations');
          return { enqueued: [], failed: [] };
        })
      : { enqueued: [], failed: [] };
    const cpu = process.cpuUsage(cpuStart);
    const durationMs = Math.round(performance.now() - started);
    const cpuMs = Math.round((cpu.user + cpu.system) / 1000);
    const summary = { now: now.toISOString(), considered, enqueued: enqueued.length, failed: failed.length, durationMs, cpuMs };
    // Quiet ticks at debug; a tick that did something is worth a line.
    if (considered > 0) logger.info(summary, 'tick done');
    else logger.debug(summary, 'tick done');
    return { now, considered, enqueued, failed, rotations: rotated, durationMs, cpuMs };
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
