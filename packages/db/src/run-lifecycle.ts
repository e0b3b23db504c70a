import postgres from 'postgres';
import type { Db } from './client.ts';
import { FencedOutError, NotFoundError } from './errors.ts';
import { isUuid } from './ids.ts';
import type { FinalRunStatus, RunCounts, SyncMode } from '@dirsync/contracts';
import type { ObjectSql } from './objects.ts';
import { requireRun, type Run } from './runs.ts';
import { recordRunWebhookEvents } from './webhooks.ts';
import type { RunIssue } from './schema.ts';

// Every statement of a sync attempt that changes state names the attempt's fencing token and is
// accepted only while the token is the integration's `sync_fence` (for directory data) or the
// run's `fence` (for the run). Taking the integration's lock in Redis is followed by writing the
// new token; a stale attempt (frozen, partitioned) then finds its token gone and stops.

type RawSql = postgres.Sql | postgres.TransactionSql;

function raw(handle: ObjectSql): RawSql {
  return '$client' in handle ? handle.$client : handle;
}

const maxErrorLength = 4000;
const clip = (text: string | null | undefined) => (text == null ? null : text.slice(0, maxErrorLength));

/**
 * Makes `fence` the integration's fencing token: from now on only the attempt holding it may write
 * the integration's directory data. Called right after the integration's Redis lock is taken.
 * Waits for a batch of the previous holder that is being written to commit (it holds the row
 * in share mode), so no batch of a stale attempt can land after this returns.
 */
export async function claimIntegrationFence(db: Db, integrationId: string, fence: string): Promise<void> {
  if (!isUuid(integrationId)) throw new NotFoundError(`integration ${integrationId} not found`);
  const rows = await db.$client`update integrations set sync_fence = ${fence} where id = ${integrationId} returning id`;
  if (rows.length === 0) throw new NotFoundError(`integration ${integrationId} not found`);
}

/**
 * Inside a transaction: refuses with {@link FencedOutError} unless `fence` is the integration's
 * current token, and keeps the row in share mode until the transaction ends, so a newer attempt's
 * claim waits for this transaction's writes rather than racing them.
 */
export async function checkIntegrationFence(tx: postgres.TransactionSql, integrationId: string, fence: string): Promise<void> {
  const rows = await tx`select 1 from integrations where id = ${integrationId} and sync_fence = ${fence} for share`;
  if (rows.length === 0) throw new FencedOutError('another attempt holds the integration now: this attempt stops');
}

/** Object and edge counts a fenced batch adds to its run. */
export type RunCountDelta = Pick<RunCounts, 'created' | 'updated' | 'restored' | 'deleted' | 'membershipsAdded' | 'membershipsRemoved'>;

/**
 * Inside the batch's transaction: adds what the batch wrote to the run's counts and records the
 * heartbeat, so the counts cover every attempt (an attempt killed midway keeps what it wrote).
 */
export async function addRunProgress(tx: postgres.TransactionSql, runId: string, fence: string, delta: RunCountDelta): Promise<void> {
  const rows = await tx`
    update sync_runs set
      created = created + ${delta.created},
      updated = updated + ${delta.updated},
      restored = restored + ${delta.restored},
      deleted = deleted + ${delta.deleted},
      memberships_added = memberships_added + ${delta.membershipsAdded},
      memberships_removed = memberships_removed + ${delta.membershipsRemoved},
      heartbeat_at = now()
    where id = ${runId} and fence = ${fence}
    returning id`;
  if (rows.length === 0) throw new FencedOutError('another attempt owns the run now: this attempt stops');
}

/** Input of {@link startRunAttempt}. */
export interface RunAttemptStart {
  readonly runId: string;
  readonly integrationId: string;
  readonly fence: string;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly workerId: string;
  /**
   * A dry run writes no directory data and leaves the integration alone, fence included: only
   * the run's own fence guards it.
   */
  readonly dryRun?: boolean | undefined;
  /**
   * The queue's reason for the previous attempt's failure (BullMQ's `failedReason`), kept as
   * `last_error` when the run still reads `running`: that attempt failed without being able to
   * write it (PostgreSQL refused). A failure the attempt wrote itself is left as written.
   */
  readonly previousError?: string | undefined;
}

/**
 * Marks the run `running` for this attempt and makes the attempt its owner, provided the attempt
 * holds the integration's fence and the run has not ended. Throws {@link FencedOutError}
 * otherwise (a newer attempt took over, or the run is already final).
 */
export async function startRunAttempt(db: Db, start: RunAttemptStart): Promise<Run> {
  const [row] = await db.$client<{ id: string }[]>`
    update sync_runs r set
      status = 'running', attempt = ${start.attempt}, max_attempts = ${start.maxAttempts},
      fence = ${start.fence}, worker_id = ${start.workerId},
      started_at = coalesce(r.started_at, now()), heartbeat_at = now(),
      finished_at = null, duration_ms = null, error = null,
      -- A run still running was not told how its previous attempt ended: the queue's reason stands.
      last_error = case when r.status = 'running' then coalesce(${clip(start.previousError)}::text, r.last_error) else r.last_error end
    from integrations i
    where r.id = ${start.runId} and i.id = r.integration_id and i.id = ${start.integrationId}
      and (${start.dryRun === true} or i.sync_fence = ${start.fence})
      and r.status in ('queued', 'running', 'retrying')
    returning r.id`;
  if (!row) throw new FencedOutError(`run ${start.runId} cannot start: it has ended or another attempt owns it`);
  return requireRun(db, start.runId);
}

/** The report an attempt ends a run with (see {@link completeRunAttempt}). */
export interface AttemptReport {
  readonly status: FinalRunStatus;
  readonly mode: SyncMode;
  readonly reason: string;
  readonly fetched: number;
  readonly unchanged: number;
  readonly failed: number;
  readonly wouldDelete: number;
  readonly issues: readonly RunIssue[];
  readonly issueCount: number;
  readonly durationMs: number;
  /**
   * Counts the attempt did not add batch by batch (a dry run's, whose writes were rolled back):
   * stored as they are.
   */
  readonly writes?: RunCountDelta | undefined;
}

/** Input of {@link completeRunAttempt}. */
export interface RunCompletion {
  readonly runId: string;
  readonly integrationId: string;
  readonly fence: string;
  readonly report: AttemptReport;
  /** Stored as the integration's cursor when given (a successful run's). */
  readonly cursor?: Record<string, unknown> | undefined;
  /**
   * Record the outcome on the integration, which the attempt must then hold (not for dry runs,
   * which leave the integration alone).
   */
  readonly markIntegration: boolean;
}

/**
 * Ends a run with its report, stores the cursor and the integration's status in one transaction,
 * accepted only from the attempt that owns the run and the integration's fence. Throws
 * {@link FencedOutError} when refused; then nothing is written.
 */
export async function completeRunAttempt(db: Db, completion: RunCompletion): Promise<Run> {
  const { report } = completion;
  const issues = report.issues.slice(0, 1000);
  const writes = report.writes;
  await db.$client.begin(async (tx) => {
    if (completion.markIntegration) await checkIntegrationFence(tx, completion.integrationId, completion.fence);
    const rows = await tx<{ id: string }[]>`
      update sync_runs set
        status = ${report.status}, mode = ${report.mode}, reason = ${report.reason},
        fetched = ${report.fetched}, unchanged = ${report.unchanged}, failed = ${report.failed},
        would_delete = ${report.wouldDelete},
        issues = ${JSON.stringify(issues)}::jsonb,
        issue_count = ${Math.max(report.issueCount, issues.length)},
        created = ${writes === undefined ? tx`created` : writes.created},
        updated = ${writes === undefined ? tx`updated` : writes.updated},
        restored = ${writes === undefined ? tx`restored` : writes.restored},
        deleted = ${writes === undefined ? tx`deleted` : writes.deleted},
        memberships_added = ${writes === undefined ? tx`memberships_added` : writes.membershipsAdded},
        memberships_removed = ${writes === undefined ? tx`memberships_removed` : writes.membershipsRemoved},
        error = null, finished_at = now(), heartbeat_at = now(),
        duration_ms = ${Math.round(report.durationMs)}
      where id = ${completion.runId} and fence = ${completion.fence} and status in ('running', 'retrying')
      returning id`;
    if (rows.length === 0) throw new FencedOutError(`run ${completion.runId} is owned by another attempt or already ended`);
    if (completion.cursor !== undefined) {
      await tx`update integrations set cursor = ${JSON.stringify(completion.cursor)}::jsonb where id = ${completion.integrationId}`;
    }
    if (completion.markIntegration) {
      const success = report.status === 'succeeded';
      await tx`
        update integrations set status = ${report.status}, last_run_id = ${completion.runId},
          last_success_run_id = case when ${success} then ${completion.runId}::uuid else last_success_run_id end,
          last_success_at = case when ${success} then now() else last_success_at end
        where id = ${completion.integrationId}`;
      // The run's events commit with its end, or not at all.
      await recordRunWebhookEvents(tx, { runId: completion.runId, integrationId: completion.integrationId, status: report.status, mode: report.mode, error: null });
    }
  });
  return requireRun(db, completion.runId);
}

/** Input of {@link failRunAttempt}. */
export interface RunAttemptFailure {
  readonly runId: string;
  readonly integrationId: string;
  readonly fence: string;
  /** One line without secrets. */
  readonly error: string;
  /** True when the queue will try again: the run reads `retrying`, else `failed`. */
  readonly willRetry: boolean;
  readonly mode?: SyncMode | undefined;
  readonly reason?: string | undefined;
  readonly durationMs: number;
  readonly markIntegration: boolean;
}

/**
 * Records a failed attempt: `retrying` (with the error as `last_error`) when the queue tries
 * again, `failed` otherwise (and the integration follows). Accepted only from the attempt that owns
 * the run; throws {@link FencedOutError} when refused.
 */
export async function failRunAttempt(db: Db, failure: RunAttemptFailure): Promise<void> {
  const error = clip(failure.error);
  const status = failure.willRetry ? 'retrying' : 'failed';
  await db.$client.begin(async (tx) => {
    const rows = await tx`
      update sync_runs set
        status = ${status}, last_error = ${error},
        error = ${failure.willRetry ? null : error},
        mode = coalesce(${failure.mode ?? null}, mode), reason = coalesce(${failure.reason ?? null}, reason),
        finished_at = ${failure.willRetry ? null : tx`now()`},
        duration_ms = ${failure.willRetry ? null : Math.round(failure.durationMs)},
        heartbeat_at = now()
      where id = ${failure.runId} and fence = ${failure.fence} and status in ('running', 'retrying')
      returning id`;
    if (rows.length === 0) throw new FencedOutError(`run ${failure.runId} is owned by another attempt or already ended`);
    if (failure.markIntegration && !failure.willRetry) {
      // Only while this attempt still holds the integration: a newer attempt's status stands.
      await tx`
        update integrations set status = 'failed', last_run_id = ${failure.runId}
        where id = ${failure.integrationId} and sync_fence = ${failure.fence}`;
      await recordRunWebhookEvents(tx, { runId: failure.runId, integrationId: failure.integrationId, status: 'failed', mode: failure.mode ?? null, error });
    }
  });
}

/**
 * Runs `fn` in a transaction on one connection that first checks, and holds, the integration's
 * fence (see {@link checkIntegrationFence}): the writes of `fn` land whole from the attempt that
 * owns the integration, or not at all (`FencedOutError`).
 */
export async function inFencedTransaction<T>(
  handle: ObjectSql,
  integrationId: string,
  fence: string,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  const pool = raw(handle);
  if (!('begin' in pool)) throw new Error('a fenced step cannot run inside another transaction');
  return (await pool.begin(async (tx) => {
    await checkIntegrationFence(tx, integrationId, fence);
    return fn(tx);
  })) as T;
}

// ---------------------------------------------------------------------------------------------
// Reconciler: runs the queue lost track of (a job gone, failed for good, a worker killed twice).

/** A run not yet final, as the reconciler sees it (see {@link withReconcileLock}). */
export interface UnfinishedRun {
  readonly id: string;
  readonly integrationId: string;
  readonly jobId: string | null;
  readonly status: 'queued' | 'running' | 'retrying';
  /** Fencing token of the attempt that owns the run; null before any attempt started. */
  readonly fence: string | null;
  readonly modeRequested: SyncMode;
  readonly trigger: string;
  readonly dryRun: boolean;
  readonly requestedBy: string | null;
  readonly requeuedAt: Date | null;
  /**
   * Milliseconds (by the database's clock, so replicas agree) since the run's last sign of life:
   * its heartbeat, else its start, its re-enqueue or its creation.
   */
  readonly idleMs: number;
}

/** What a reconcile pass may do, inside the transaction that holds the reconciler lock. */
export interface ReconcileSession {
  /** Runs `queued`, `running` or `retrying`, oldest sign of life first. */
  listUnfinishedRuns(limit: number): Promise<UnfinishedRun[]>;
  /**
   * Ends `run` as `failed` with `error`, provided it is still in the status and owned by the
   * fence it was read with (else false: an attempt moved it on meanwhile). The run and, when that
   * attempt still holds it, the integration get a new fence, so a resumed stale attempt can
   * write nothing more. The integration follows (status `failed`, last run) unless a newer
   * attempt holds it or the run is a dry run.
   */
  failLostRun(run: Pick<UnfinishedRun, 'id' | 'status' | 'fence'>, error: string): Promise<boolean>;
  /** Marks a queued run re-enqueued (once: false when it already was, or is no longer queued). */
  markRunRequeued(runId: string): Promise<boolean>;
}

/** Advisory lock key of the reconciler (any constant; one pass at a time across replicas). */
const reconcileLockKey = 0x64697273; // 'dirs'

/**
 * Runs `fn` in a transaction holding the reconciler's transaction-level advisory lock, so one
 * replica reconciles at a time; returns `{ acquired: false }` at once when another holds it.
 * The lock ends with the transaction, even when the process dies.
 */
export async function withReconcileLock<T>(
  db: Db,
  fn: (session: ReconcileSession) => Promise<T>,
): Promise<{ acquired: true; value: T } | { acquired: false }> {
  return (await db.$client.begin(async (tx) => {
    const [lock] = await tx<{ ok: boolean }[]>`select pg_try_advisory_xact_lock(${reconcileLockKey}) as ok`;
    if (lock?.ok !== true) return { acquired: false };
    const session: ReconcileSession = {
      async listUnfinishedRuns(limit) {
        const rows = await tx<
          {
            id: string;
            integration_id: string;
            job_id: string | null;
            status: UnfinishedRun['status'];
            fence: string | null;
            mode_requested: SyncMode;
            trigger: string;
            dry_run: boolean;
            requested_by: string | null;
            requeued_at: Date | null;
            idle_ms: number;
          }[]
        >`
          select id, integration_id, job_id, status, fence, mode_requested, trigger, dry_run, requested_by, requeued_at,
            (extract(epoch from now() - coalesce(heartbeat_at, started_at, requeued_at, queued_at)) * 1000)::float8 as idle_ms
          from sync_runs
          where status in ('queued', 'running', 'retrying')
          order by coalesce(heartbeat_at, started_at, requeued_at, queued_at)
          limit ${limit}`;
        return rows.map((row) => ({
          id: row.id,
          integrationId: row.integration_id,
          jobId: row.job_id,
          status: row.status,
          fence: row.fence,
          modeRequested: row.mode_requested,
          trigger: row.trigger,
          dryRun: row.dry_run,
          requestedBy: row.requested_by,
          requeuedAt: row.requeued_at,
          idleMs: Number(row.idle_ms),
        }));
      },
      async failLostRun(run, error) {
        const message = clip(error);
        const newFence = `reconciled:${run.id}`;
        const [ended] = await tx<{ integration_id: string; dry_run: boolean }[]>`
          update sync_runs set
            status = 'failed', error = ${message}, last_error = ${message}, fence = ${newFence},
            finished_at = now(),
            duration_ms = case when started_at is null then null
              else (extract(epoch from now() - started_at) * 1000)::int end
          where id = ${run.id} and status = ${run.status} and fence is not distinct from ${run.fence}
          returning integration_id, dry_run`;
        if (!ended) return false;
        if (ended.dry_run) return true;
        // The integration is this run's when its attempt still holds the fence, or when the run
        // never started and no other run of the integration is under way.
        await tx`
          update integrations i set
            status = 'failed', last_run_id = ${run.id},
            sync_fence = case when i.sync_fence is not distinct from ${run.fence}::text then ${newFence} else i.sync_fence end
          where i.id = ${ended.integration_id}
            and (
              (${run.fence}::text is not null and i.sync_fence = ${run.fence}::text)
              or (${run.fence}::text is null and not exists (
                select 1 from sync_runs o
                where o.integration_id = i.id and o.id <> ${run.id} and o.status in ('running', 'retrying')))
            )`;
        await recordRunWebhookEvents(tx, { runId: run.id, integrationId: ended.integration_id, status: 'failed', mode: null, error: message });
        return true;
      },
      async markRunRequeued(runId) {
        const rows = await tx`
          update sync_runs set requeued_at = now()
          where id = ${runId} and status = 'queued' and requeued_at is null
          returning id`;
        return rows.length > 0;
      },
    };
    return { acquired: true, value: await fn(session) };
  })) as { acquired: true; value: T } | { acquired: false };
}
