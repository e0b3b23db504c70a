import { and, desc, eq, exists, gt, isNotNull, isNull, not, sql, type SQL } from 'drizzle-orm';
import { alias } from 'drizzle-orm/pg-core';
import type { Db } from './client.ts';
import { ConflictError, InvalidInputError, InvalidStateError, NotFoundError, pgCodes, pgErrorOf } from './errors.ts';
import { isUuid } from './ids.ts';
import { runStatuses, type FinalRunStatus, type RunCounts, type RunStatus, type SyncMode, type SyncTrigger } from '@dirsync/contracts';
import { syncRuns, type RunIssue } from './schema.ts';

/** A run report, as stored. */
export type Run = typeof syncRuns.$inferSelect;

/** Issues kept in a run row; the rest are only counted (`issueCount`). */
export const maxStoredRunIssues = 1000;

/** Longest error message kept in a run row. */
const maxErrorLength = 4000;

/** Input of {@link createRun}. */
export interface NewRun {
  /** Chosen by the caller (the enqueue client) so that a retried enqueue finds the same run. */
  id?: string;
  integrationId: string;
  jobId?: string;
  modeRequested: SyncMode;
  trigger: SyncTrigger;
  dryRun?: boolean;
  requestedBy?: string;
}

/** How a run is actually executed, decided when a worker picks it up. */
export interface RunStart {
  mode: SyncMode;
  /** Why it runs this way (for example: "no cursor: first sync runs full"). */
  reason?: string | null;
  workerId: string;
}

/** The final report given to {@link finishRun}; omitted counts are stored as 0. */
export interface RunReport extends Partial<RunCounts> {
  status: FinalRunStatus;
  /** Per-object issues; only the first {@link maxStoredRunIssues} are stored. */
  issues?: readonly RunIssue[];
  /** Total issues when the caller already capped `issues` itself; defaults to `issues.length`. */
  issueCount?: number;
  /** One-line reason of a failure; must not contain secrets. */
  error?: string | null;
  /** Set when the mode or reason changed during the run (for example a rejected delta cursor). */
  mode?: SyncMode;
  reason?: string | null;
  /** Measured by the caller; otherwise computed from `started_at`. */
  durationMs?: number;
}

/** Filter of {@link listRuns}. */
export interface RunFilter {
  integrationId?: string;
  status?: RunStatus;
  /** Newest first; default 50. */
  limit?: number;
}

/**
 * Records a queued run. Idempotent on `id`: creating a run that exists returns the stored row
 * unchanged. Throws {@link NotFoundError} when the integration does not exist, and
 * {@link ConflictError} when the id belongs to another integration's run.
 */
export async function createRun(db: Db, input: NewRun): Promise<Run> {
  if (input.id !== undefined && !isUuid(input.id)) throw new InvalidInputError('run id must be a uuid');
  if (!isUuid(input.integrationId)) throw new NotFoundError(`integration ${input.integrationId} not found`);
  let inserted: Run | undefined;
  try {
    [inserted] = await db
      .insert(syncRuns)
      .values({
        ...(input.id === undefined ? {} : { id: input.id }),
        integrationId: input.integrationId,
        jobId: input.jobId ?? null,
        modeRequested: input.modeRequested,
        trigger: input.trigger,
        dryRun: input.dryRun ?? false,
        requestedBy: input.requestedBy ?? null,
        status: 'queued',
      })
      .onConflictDoNothing({ target: syncRuns.id })
      .returning();
  } catch (error) {
    if (pgErrorOf(error)?.code === pgCodes.foreignKeyViolation) {
      throw new NotFoundError(`integration ${input.integrationId} not found`);
    }
    throw error;
  }
  if (inserted) return inserted;
  const existing = await requireRun(db, input.id ?? '');
  if (existing.integrationId !== input.integrationId) {
    throw new ConflictError(`run ${existing.id} belongs to another integration`);
  }
  return existing;
}

/** Marks a run as running with the mode it actually runs in. A run handed back by a stopped worker may start again. */
export async function startRun(db: Db, id: string, start: RunStart): Promise<Run> {
  if (!isUuid(id)) throw new NotFoundError(`run ${id} not found`);
  const [row] = await db
    .update(syncRuns)
    .set({
      status: 'running',
      mode: start.mode,
      reason: start.reason ?? null,
      workerId: start.workerId,
      startedAt: sql`now()`,
      finishedAt: null,
      durationMs: null,
      error: null,
    })
    .where(eq(syncRuns.id, id))
    .returning();
  if (!row) throw new NotFoundError(`run ${id} not found`);
  return row;
}

/** Stores a run's final report: status, counts, the first issues and their total, error, timing. */
export async function finishRun(db: Db, id: string, report: RunReport): Promise<Run> {
  if (!isUuid(id)) throw new NotFoundError(`run ${id} not found`);
  const issues = report.issues ?? [];
  const error = report.error == null ? null : report.error.slice(0, maxErrorLength);
  const [row] = await db
    .update(syncRuns)
    .set({
      status: report.status,
      fetched: report.fetched ?? 0,
      created: report.created ?? 0,
      updated: report.updated ?? 0,
      unchanged: report.unchanged ?? 0,
      deleted: report.deleted ?? 0,
      restored: report.restored ?? 0,
      failed: report.failed ?? 0,
      membershipsAdded: report.membershipsAdded ?? 0,
      membershipsRemoved: report.membershipsRemoved ?? 0,
      wouldDelete: report.wouldDelete ?? 0,
      issues: issues.slice(0, maxStoredRunIssues),
      issueCount: Math.max(report.issueCount ?? 0, issues.length),
      error,
      ...(report.mode === undefined ? {} : { mode: report.mode }),
      ...(report.reason === undefined ? {} : { reason: report.reason }),
      finishedAt: sql`now()`,
      durationMs:
        report.durationMs === undefined
          ? sql`round(extract(epoch from (now() - coalesce(${syncRuns.startedAt}, ${syncRuns.queuedAt}))) * 1000)::integer`
          : Math.round(report.durationMs),
    })
    .where(eq(syncRuns.id, id))
    .returning();
  if (!row) throw new NotFoundError(`run ${id} not found`);
  return row;
}

/** The run with this id; undefined when there is none. */
export async function getRun(db: Db, id: string): Promise<Run | undefined> {
  if (!isUuid(id)) return undefined;
  const [row] = await db.select().from(syncRuns).where(eq(syncRuns.id, id));
  return row;
}

/** Like {@link getRun}, but throws {@link NotFoundError} when there is none. */
export async function requireRun(db: Db, id: string): Promise<Run> {
  const row = await getRun(db, id);
  if (!row) throw new NotFoundError(`run ${id} not found`);
  return row;
}

/**
 * Runs, newest first. Across the installation (no `integrationId`), the newest runs of each
 * account and status are read from the account's index, and the newest of those kept: the read
 * grows with the accounts, not with the runs kept, which a sort of every run did.
 */
export async function listRuns(db: Db, filter: RunFilter = {}): Promise<Run[]> {
  if (filter.integrationId !== undefined && !isUuid(filter.integrationId)) return [];
  const limit = Math.max(1, Math.min(filter.limit ?? 50, 1000));
  if (filter.integrationId === undefined) {
    const statuses: readonly string[] = filter.status === undefined ? runStatuses : [filter.status];
    // One statement, so the page is one snapshot: a run that changed status or was pruned
    // between choosing the page and reading its rows would otherwise show up wrong or go missing.
    // `= any(array(…))` makes the page's ids one value, looked up by primary key, where `in (…)`
    // may be planned as a join that reads every run.
    return db
      .select()
      .from(syncRuns)
      .where(
        sql`${syncRuns.id} = any(array(
          select r.id from accounts a
          cross join unnest(array[${sql.join(
            statuses.map((status) => sql`${status}`),
            sql`, `,
          )}]::text[]) s(status)
          cross join lateral (
            select r.id, r.queued_at from sync_runs r
            where r.account_id = a.id and r.status = s.status
            order by r.queued_at desc, r.id desc
            limit ${limit}) r
          order by r.queued_at desc, r.id desc
          limit ${limit}))`,
      )
      .orderBy(desc(syncRuns.queuedAt), desc(syncRuns.id));
  }
  const conditions: SQL[] = [eq(syncRuns.integrationId, filter.integrationId)];
  if (filter.status !== undefined) conditions.push(eq(syncRuns.status, filter.status));
  return db
    .select()
    .from(syncRuns)
    .where(and(...conditions))
    .orderBy(desc(syncRuns.queuedAt), desc(syncRuns.id))
    .limit(limit);
}

const laterRun = alias(syncRuns, 'later_run');

/**
 * True for a run that a later, real (not dry) run of the same mode has completed successfully:
 * its approval no longer means anything. Only the same mode counts, so the deltas that keep
 * running between two full syncs do not use up the approval of a blocked full sync.
 */
function superseded(db: Db): SQL {
  return exists(
    db
      .select({ one: sql`1` })
      .from(laterRun)
      .where(
        and(
          eq(laterRun.integrationId, syncRuns.integrationId),
          eq(laterRun.status, 'succeeded'),
          eq(laterRun.dryRun, false),
          sql`${laterRun.mode} is not distinct from ${syncRuns.mode}`,
          gt(laterRun.finishedAt, sql`coalesce(${syncRuns.finishedAt}, ${syncRuns.queuedAt})`),
        ),
      ),
  );
}

/**
 * Approves a run blocked by the deletion threshold, so that the next run of its mode may delete
 * up to the run's `wouldDelete`. Throws {@link NotFoundError}, or {@link InvalidStateError} when
 * the run is not blocked, already approved, or superseded by a later successful run.
 */
export async function approveRun(db: Db, runId: string, approvedBy: string): Promise<Run> {
  if (!isUuid(runId)) throw new NotFoundError(`run ${runId} not found`);
  const [row] = await db
    .update(syncRuns)
    .set({ approvedAt: sql`now()`, approvedBy })
    .where(
      and(
        eq(syncRuns.id, runId),
        eq(syncRuns.status, 'blocked'),
        isNull(syncRuns.approvedAt),
        not(superseded(db)),
      ),
    )
    .returning();
  if (row) return row;

  const run = await requireRun(db, runId);
  if (run.status !== 'blocked') {
    throw new InvalidStateError(
      `run ${runId} is ${run.status}: only a run blocked by the deletion threshold can be approved`,
    );
  }
  if (run.approvedAt) {
    throw new InvalidStateError(`run ${runId} was already approved by ${run.approvedBy ?? 'someone'}`);
  }
  throw new InvalidStateError(`run ${runId} is superseded: a later ${run.mode ?? ''} run succeeded, nothing to approve`);
}

/**
 * The approval the next run of an integration may use: the latest approved blocked run not yet
 * superseded by a successful run of its mode. The pipeline lets a run delete up to that run's
 * `wouldDelete` without being blocked; once a run of that mode succeeds, the approval lapses.
 * Pass `mode` (the mode the run actually runs in) to ignore approvals given to the other mode.
 */
export async function findApproval(
  db: Db,
  integrationId: string,
  options: { mode?: SyncMode } = {},
): Promise<Run | undefined> {
  if (!isUuid(integrationId)) return undefined;
  const [row] = await db
    .select()
    .from(syncRuns)
    .where(
      and(
        eq(syncRuns.integrationId, integrationId),
        eq(syncRuns.status, 'blocked'),
        isNotNull(syncRuns.approvedAt),
        options.mode === undefined ? undefined : eq(syncRuns.mode, options.mode),
        not(superseded(db)),
      ),
    )
    .orderBy(desc(sql`coalesce(${syncRuns.finishedAt}, ${syncRuns.queuedAt})`))
    .limit(1);
  return row;
}
