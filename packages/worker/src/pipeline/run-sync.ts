import {
  addRunProgress,
  inFencedTransaction,
  countLiveAmong,
  countLiveObjects,
  countSweep,
  type Db,
  deleteObjects,
  hasStoredRows,
  type ObjectSql,
  sweepUnseenObjects,
} from '@dirsync/db';
import {
  ConfigError,
  type Cursor,
  CursorRejectedError,
  type FetchPage,
  type Provider,
  ProviderError,
} from '@dirsync/providers';
import { chunks, type SyncContext, type Tally } from './context.ts';
import { contentHashOf } from './hash.ts';
import { MemberSync } from './members.ts';
import type { SyncMode } from '@dirsync/contracts';
import { fallbackToFull, type ModePlan, planMode } from './mode.ts';
import { combineRecords, type PreparedObject, prepareObject, syncObjectBatch } from './objects.ts';
import { readAhead } from './read-ahead.ts';
import { IssueLog, type SyncReport, zeroCounts } from './report.ts';
import { type DeletionApproval, deletionVerdict } from './threshold.ts';
import { phase, type TraceParent } from '../ops/tracing.ts';

/** The integration fields the pipeline needs. */
export interface SyncIntegration {
  readonly id: string;
  /** Stored cursor for the next delta; null when there is none. */
  readonly cursor: Cursor | null;
  readonly deleteThresholdCount: number;
  readonly deleteThresholdPercent: number;
}

/** The run being executed. */
export interface SyncRun {
  readonly id: string;
  readonly modeRequested: SyncMode;
  /** Compute the report, write no directory data. */
  readonly dryRun: boolean;
}

/** Progress reported after every batch. */
export interface SyncProgress {
  /** Source entries received and processed so far. */
  readonly processed: number;
}

/** Input of {@link runSync}. */
export interface RunSyncOptions<S> {
  readonly db: Db;
  readonly provider: Provider<S>;
  readonly integration: SyncIntegration;
  readonly run: SyncRun;
  /** Aborting stops the run between batches (and the provider's fetch); nothing is deleted. */
  readonly signal: AbortSignal;
  readonly onProgress?: ((progress: SyncProgress) => void | Promise<void>) | undefined;
  /** An administrator's approval of an earlier blocked run (see the runs repository's `findApproval`). */
  readonly approval?: DeletionApproval | undefined;
  /**
   * Looks up the approval for the mode the pipeline decided (used when `approval` is not given),
   * so that only the pipeline decides the mode.
   */
  readonly approvalFor?: ((mode: SyncMode) => Promise<DeletionApproval | undefined>) | undefined;
  /** Objects per write batch (default 2000). */
  readonly batchSize?: number | undefined;
  /**
   * Member references per batch (default 25,000): a batch of large groups is cut earlier, so
   * memory follows the number of edges in flight, not the size of the groups.
   */
  readonly batchMemberRefs?: number | undefined;
  /** Issues kept in the report (default 1000); the rest are only counted. */
  readonly maxIssues?: number | undefined;
  /** Connections a batch's statements may use at once (default 2; a dry run always uses 1). */
  readonly parallelism?: number | undefined;
  /**
   * The attempt's fencing token. When set (real runs), every write step (a batch, the member
   * deltas, the deferred members, the deletions) runs in one transaction that first checks the
   * token is still the integration's and ends by adding the step's counts to the run: a stale
   * attempt's step is refused whole (`FencedOutError`) and the run stops. The run's stored
   * write counts then cover every attempt.
   */
  readonly fence?: string | undefined;
  /** Told the mode the pipeline runs in as soon as it is decided (and again when it changes). */
  readonly onPlan?: ((plan: ModePlan) => void) | undefined;
  /** What one run may cost the installation (defaults: {@link defaultRunLimits}). */
  readonly limits?: Partial<RunLimits> | undefined;
  /**
   * The run's span: the phases become its children (`dirsync.fetch` with a `dirsync.write` per
   * batch, `dirsync.members`, `dirsync.sweep`). Undefined when tracing is off.
   */
  readonly trace?: TraceParent | undefined;
}

/**
 * Bounds on one run, whatever the directory sends. A customer's server is untrusted: one that
 * answers every page quickly with new entries would otherwise fill the shared database and hold
 * a worker for as long as it likes.
 */
export interface RunLimits {
  /** Source entries one run may fetch; past it the run fails (nothing is deleted). */
  readonly maxObjects: number;
  /** Wall-clock time one run may take, pipeline time included; past it the run fails. */
  readonly maxDurationMs: number;
}

/**
 * Room for the largest directories dirsync is measured with (a million objects, read in well
 * under an hour); a platform with larger customers raises them.
 */
export const defaultRunLimits: RunLimits = { maxObjects: 5_000_000, maxDurationMs: 6 * 3600_000 };

/** A run went past one of its {@link RunLimits}: not retried, since a retry would do the same. */
export class RunLimitError extends ConfigError {
  constructor(message: string) {
    super(message);
    this.name = 'RunLimitError';
  }
}

const defaultBatchSize = 2000;
const defaultBatchMemberRefs = 25_000;
const defaultMaxIssues = 1000;
/** Ids per statement when a delta's deletions are counted and applied. */
const deletionChunk = 5000;

class DryRunRollback extends Error {}

/**
 * The sync pipeline shared by every provider: fetch pages (one page read ahead) → map → hash →
 * compare each batch with the stored hashes → write only what changed, stamp everything seen →
 * members → after a complete fetch, deletions under the threshold → report.
 *
 * - Full sync is mark and sweep: the sweep runs only once the fetch completed; a fetch that
 *   throws (or an abort) deletes nothing. A delta applies the deletions the source reports and
 *   never infers any from absence.
 * - Over the deletion threshold the run deletes nothing but keeps its creates and updates (they
 *   were written as the fetch streamed, and they are true whatever the deletions turn out to be),
 *   reports `blocked` with `wouldDelete`, and returns no cursor: the stored cursor
 *   stays, so the next delta reports the same deletions again and is blocked the same way until
 *   an approval covers them.
 * - A dry run executes exactly the same statements inside a transaction that is rolled back, so
 *   its report is what the real run would do, down to membership counts, and nothing persists.
 *
 * Throws what the provider or the database throws; the caller records the failure.
 */
export async function runSync<S>(options: RunSyncOptions<S>): Promise<SyncReport> {
  if (!options.run.dryRun) return execute(options.db.$client, Math.max(1, options.parallelism ?? 2), options);
  let report: SyncReport | undefined;
  try {
    await options.db.$client.begin(async (tx) => {
      report = await execute(tx, 1, options);
      throw new DryRunRollback('dry run: rolled back');
    });
  } catch (error) {
    if (!(error instanceof DryRunRollback)) throw error;
  }
  if (report === undefined) throw new Error('dry run produced no report');
  return report;
}

function isCursorRejected(error: unknown): error is ProviderError {
  return error instanceof CursorRejectedError || (error instanceof ProviderError && error.code === 'cursor_rejected');
}

async function execute<S>(sql: ObjectSql, parallelism: number, options: RunSyncOptions<S>): Promise<SyncReport> {
  const { provider, integration, run } = options;
  const stored = await hasStoredRows(sql, integration.id);
  // The fetch gets a signal of its own so that a failure here also stops a read still in flight.
  const controller = new AbortController();
  const stop = () => controller.abort(options.signal.reason);
  if (options.signal.aborted) stop();
  else options.signal.addEventListener('abort', stop, { once: true });
  const limits: RunLimits = { ...defaultRunLimits, ...options.limits };
  const deadline = setTimeout(() => {
    const seconds = Math.round(limits.maxDurationMs / 1000);
    const took = seconds >= 120 ? `${Math.round(seconds / 60)} min` : `${seconds} s`;
    controller.abort(new RunLimitError(`the run took longer than ${took}, this installation's limit for one run; nothing was deleted`));
  }, limits.maxDurationMs);

  const ctx: SyncContext = {
    sql,
    pool: run.dryRun ? undefined : sql,
    integrationId: integration.id,
    runId: run.id,
    counts: zeroCounts(),
    issues: new IssueLog(options.maxIssues ?? defaultMaxIssues),
    parallelism,
    storedAtStart: stored.objects,
    assumeAbsent: !stored.objects && !run.dryRun,
    fork: undefined,
  };
  const session = new FetchSession(ctx, provider, options, controller.signal, limits.maxObjects);
  try {
    let plan: ModePlan = planMode(run.modeRequested, integration.cursor);
    options.onPlan?.(plan);
    let cursor: Cursor | undefined;
    if (plan.mode === 'delta' && integration.cursor !== null) {
      try {
        const deltaCursor = integration.cursor;
        cursor = await phase(options.trace, 'dirsync.fetch', { 'dirsync.sync.mode': 'delta' }, (traced) =>
          session.consume(provider.fetchDelta(deltaCursor, controller.signal), 'delta', traced),
        );
      } catch (error) {
        if (!isCursorRejected(error)) throw error;
        plan = fallbackToFull(error);
        options.onPlan?.(plan);
        // What the delta wrote stays (it is true); what it still held back is replaced by the
        // full fetch, which sees every object and whose sweep finds every deletion.
        session.reset();
      }
    }
    if (plan.mode === 'full') {
      cursor = await phase(options.trace, 'dirsync.fetch', { 'dirsync.sync.mode': 'full' }, (traced) => session.consume(provider.fetchFull(controller.signal), 'full', traced));
    }
    controller.signal.throwIfAborted();

    await phase(options.trace, 'dirsync.members', {}, () => session.step(() => session.members.resolveDeferred()));
    controller.signal.throwIfAborted();

    const mode = plan.mode;
    // The sweep of a full sync, the reported deletions of a delta: both weighed by the threshold first.
    const deletion = await phase(options.trace, 'dirsync.sweep', { 'dirsync.sync.mode': mode }, async (traced) => {
      const verdict = await session.step(() => applyDeletions(ctx, mode, session.pendingDeletions, options));
      traced?.span.setAttributes({ 'dirsync.objects.would_delete': ctx.counts.wouldDelete, 'dirsync.objects.deleted': ctx.counts.deleted, 'dirsync.deletions.allowed': verdict.allowed });
      return verdict;
    });
    await session.members.refreshStatistics(true);
    const status = run.dryRun ? 'dry_run' : deletion.allowed ? 'succeeded' : 'blocked';
    return {
      ...ctx.counts,
      // Meant for blocked and dry runs: a run that deleted what it found reports only `deleted`.
      wouldDelete: status === 'succeeded' ? 0 : ctx.counts.wouldDelete,
      mode: plan.mode,
      reason: plan.reason,
      status,
      thresholdExceeded: deletion.exceeded,
      approvalUsed: deletion.approvalUsed,
      issues: ctx.issues.issues,
      issueCount: ctx.issues.count,
      cursor: status === 'succeeded' ? cursor : undefined,
    };
  } catch (error) {
    controller.abort(error);
    throw error;
  } finally {
    clearTimeout(deadline);
    options.signal.removeEventListener('abort', stop);
  }
}

async function applyDeletions<S>(
  ctx: SyncContext,
  mode: SyncMode,
  pending: ReadonlySet<string>,
  options: RunSyncOptions<S>,
) {
  const { sql, integrationId, runId, counts } = ctx;
  let wouldDelete = 0;
  let live: number;
  const ids = [...pending];
  if (mode === 'full' && !ctx.storedAtStart) {
    // Nothing was stored when the run began: every row there is now, this run wrote and stamped,
    // so none is unseen. The count would scan the whole integration for nothing (0.1 s of
    // database time at 100,000 objects, growing with them).
    live = 0;
  } else if (mode === 'full') {
    const sweep = await countSweep(sql, integrationId, runId);
    wouldDelete = sweep.unseen;
    live = sweep.live;
  } else {
    for (const slice of chunks(ids, deletionChunk)) wouldDelete += await countLiveAmong(sql, integrationId, slice);
    // No deletion is within any threshold: the count of live objects (a scan of the whole
    // integration, a third of a 100-change delta's time at a million objects) is not needed.
    live = wouldDelete === 0 ? 0 : await countLiveObjects(sql, integrationId);
  }
  counts.wouldDelete = wouldDelete;
  const verdict = deletionVerdict({
    wouldDelete,
    live,
    count: options.integration.deleteThresholdCount,
    percent: options.integration.deleteThresholdPercent,
    approval: options.approval ?? (await options.approvalFor?.(mode)),
  });
  if (!verdict.allowed || wouldDelete === 0) return verdict;
  options.signal.throwIfAborted();
  if (mode === 'full') {
    const result = await sweepUnseenObjects(sql, integrationId, runId, contentHashOf);
    counts.deleted += result.deleted;
    counts.membershipsRemoved += result.membershipsRemoved;
    // Objects whose manager was deleted lose the attribute: updated by this run.
    counts.updated += result.managersCleared;
  } else {
    for (const slice of chunks(ids, deletionChunk)) {
      const result = await deleteObjects(sql, integrationId, slice, contentHashOf, runId);
      counts.deleted += result.deleted;
      counts.membershipsRemoved += result.membershipsRemoved;
      counts.updated += result.managersCleared;
    }
  }
  return verdict;
}

const tallyKeys = ['created', 'updated', 'restored', 'deleted', 'membershipsAdded', 'membershipsRemoved'] as const;

function zeroTally(): Tally {
  return { created: 0, updated: 0, restored: 0, deleted: 0, membershipsAdded: 0, membershipsRemoved: 0 };
}

/** Fenced steps of this process currently allowed to fork, by pool. */
const forkingSteps = new WeakMap<object, number>();

/**
 * Lets a fenced step fork `extra` connections when the pool can give them. A forking step holds
 * its own connection while it waits for the others: if such steps (concurrent runs of a worker)
 * held every connection of the pool, none would get one. Steps that would reach that share run
 * on their own connection only. Returns the release, or undefined when refused.
 */
function claimForking(pool: ObjectSql, extra: number): (() => void) | undefined {
  const handle = '$client' in pool ? pool.$client : pool;
  const max = (handle as { options?: { max?: unknown } }).options?.max;
  if (typeof max !== 'number') return undefined;
  const current = forkingSteps.get(handle) ?? 0;
  // Each forking step holds one connection and needs `extra` more; one spare keeps the rest of
  // the process (heartbeats, other runs' steps) moving.
  if ((current + 1) * (1 + extra) + 1 > max) return undefined;
  forkingSteps.set(handle, current + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    forkingSteps.set(handle, (forkingSteps.get(handle) ?? 1) - 1);
  };
}

/** Streams one fetch into the database, batch by batch. */
class FetchSession<S> {
  readonly members: MemberSync;
  /** External ids a delta reported deleted and did not report again afterwards. */
  pendingDeletions = new Set<string>();
  readonly #ctx: SyncContext;
  readonly #provider: Provider<S>;
  readonly #options: RunSyncOptions<S>;
  readonly #signal: AbortSignal;
  readonly #batchSize: number;
  readonly #batchMemberRefs: number;
  readonly #maxObjects: number;

  /**
   * Runs one write step. Fenced (a real run with a token): in a transaction that checks the token
   * first and adds the step's write counts to the run last, so the step lands whole from the
   * attempt that owns the integration, or not at all. Rows the step spreads over more connections
   * ({@link SyncContext.fork}) are written in transactions that each check the token and record
   * their own counts: a stale attempt writes nothing anywhere, and the run's counts stay exact
   * whichever of them commit.
   */
  async step<T>(fn: () => Promise<T>): Promise<T> {
    const fence = this.#options.fence;
    const ctx = this.#ctx;
    if (fence === undefined || this.#options.run.dryRun) return fn();
    const pool = ctx.sql;
    const before = { ...ctx.counts };
    const forked = zeroTally();
    const { parallelism } = ctx;
    const release = parallelism > 1 ? claimForking(pool, parallelism - 1) : undefined;
    try {
      return await inFencedTransaction(pool, ctx.integrationId, fence, async (tx) => {
        ctx.sql = tx;
        if (release === undefined) ctx.parallelism = 1;
        else ctx.fork = (write) => this.#fork(pool, fence, forked, write);
        const result = await fn();
        const now = ctx.counts;
        const own = (key: keyof Tally) => now[key] - before[key] - forked[key];
        await addRunProgress(tx, ctx.runId, fence, {
          created: own('created'),
          updated: own('updated'),
          restored: own('restored'),
          deleted: own('deleted'),
          membershipsAdded: own('membershipsAdded'),
          membershipsRemoved: own('membershipsRemoved'),
        });
        return result;
      });
    } catch (error) {
      // The step's own transaction rolled back: only what forked transactions committed stays.
      for (const key of tallyKeys) ctx.counts[key] = before[key] + forked[key];
      throw error;
    } finally {
      release?.();
      ctx.sql = pool;
      ctx.parallelism = parallelism;
      ctx.fork = undefined;
    }
  }

  /** See {@link SyncContext.fork}: `forked` sums what the step's forked transactions committed. */
  async #fork<R>(pool: ObjectSql, fence: string, forked: Tally, write: (sql: ObjectSql, tally: Tally) => Promise<R>): Promise<R> {
    const ctx = this.#ctx;
    const tally = zeroTally();
    const result = await inFencedTransaction(pool, ctx.integrationId, fence, async (tx) => {
      const value = await write(tx, tally);
      await addRunProgress(tx, ctx.runId, fence, tally);
      return value;
    });
    for (const key of tallyKeys) {
      ctx.counts[key] += tally[key];
      forked[key] += tally[key];
    }
    return result;
  }

  constructor(ctx: SyncContext, provider: Provider<S>, options: RunSyncOptions<S>, signal: AbortSignal, maxObjects: number) {
    this.#ctx = ctx;
    this.#maxObjects = maxObjects;
    this.#provider = provider;
    this.#options = options;
    this.#signal = signal;
    this.#batchSize = Math.max(1, options.batchSize ?? defaultBatchSize);
    this.#batchMemberRefs = Math.max(1, options.batchMemberRefs ?? defaultBatchMemberRefs);
    this.members = new MemberSync(ctx);
  }

  reset(): void {
    this.pendingDeletions = new Set();
    this.members.reset();
  }

  /** Consumes every page; returns the cursor of the final page. */
  async consume(pages: AsyncIterable<FetchPage<S>>, mode: SyncMode, traced?: TraceParent): Promise<Cursor | undefined> {
    const { counts, issues } = this.#ctx;
    let cursor: Cursor | undefined;
    // Keyed by external id so that an object listed twice is written once (the later copy wins,
    // at the later position, which keeps members after the objects they reference).
    let objects = new Map<string, PreparedObject>();
    let failedIds: string[] = [];
    let memberRefs = 0;
    // One batch is written while the next is fetched, mapped and hashed; batches still start in
    // order, each after the previous one finished, so DNs are stored before members resolve.
    let writing: Promise<void> | undefined;
    const drain = async () => {
      const pending = writing;
      writing = undefined;
      await pending;
    };
    const flush = async () => {
      if (objects.size === 0 && failedIds.length === 0) return drain();
      // While the previous batch is still being written: the groups' references hashed and, when
      // every group of this run is new (nothing was stored), resolved against the DN cache.
      const preparedMembers = this.members.prepare(objects.values(), this.#ctx.assumeAbsent);
      await drain();
      await this.members.refreshStatistics();
      const batch = { objects: [...objects.values()], failedIds, preparedMembers };
      objects = new Map();
      failedIds = [];
      memberRefs = 0;
      const processed = counts.fetched;
      writing = (async () => {
        await phase(traced, 'dirsync.write', { 'dirsync.batch.objects': batch.objects.length, 'dirsync.batch.failed': batch.failedIds.length }, () =>
          this.step(() => syncObjectBatch(this.#ctx, this.members, batch)),
        );
        this.#signal.throwIfAborted();
        await this.#options.onProgress?.({ processed });
      })();
      // Observed at the next drain; this only keeps a failure from counting as unhandled meanwhile.
      writing.catch(() => undefined);
    };
    const fail = (reason: string, externalId?: string, dn?: string) => {
      counts.failed += 1;
      issues.add({
        ...(externalId === undefined ? {} : { externalId }),
        ...(dn === undefined ? {} : { dn }),
        reason,
      });
      if (externalId !== undefined) failedIds.push(externalId);
    };

    try {
      for await (const page of readAhead(pages)) {
        this.#signal.throwIfAborted();
        counts.fetched += page.entries.length;
        if (counts.fetched > this.#maxObjects) {
          throw new RunLimitError(
            `the directory sent more than ${this.#maxObjects} entries in one run, this installation's limit for one run; nothing was deleted`,
          );
        }
        for (const entry of page.entries) {
          const result = this.#provider.map(entry);
          if (!result.ok) {
            fail(result.reason, result.externalId, result.dn);
            continue;
          }
          const object = result.object;
          if (mode === 'delta') this.pendingDeletions.delete(object.externalId);
          const prepared = prepareObject(object);
          if ('rejected' in prepared) {
            fail(prepared.rejected, object.externalId, object.dn);
            continue;
          }
          // A repeat was counted at its first listing; two records in one batch become one
          // (a partial later one merged over the earlier).
          if (prepared.repeat) counts.fetched -= 1;
          const previous = objects.get(object.externalId);
          objects.delete(object.externalId);
          objects.set(object.externalId, previous === undefined ? prepared : combineRecords(previous, prepared));
          memberRefs += object.members?.length ?? 0;
          if (objects.size >= this.#batchSize || memberRefs >= this.#batchMemberRefs) await flush();
        }
        if (page.memberDeltas !== undefined && page.memberDeltas.length > 0) {
          // Edges name objects of this page: those must be stored first.
          await flush();
          await drain();
          const deltas = page.memberDeltas;
          await phase(traced, 'dirsync.write', { 'dirsync.batch.member_deltas': deltas.length }, () => this.step(() => this.members.applyDeltas(deltas)));
        }
        // Held until the fetch is complete: the threshold needs their number first. A full sync
        // needs none: its sweep finds every object the source no longer has.
        if (mode === 'delta') for (const id of page.deletions ?? []) this.pendingDeletions.add(id);
        if (page.cursor !== undefined) cursor = page.cursor;
      }
      await flush();
      await drain();
      // Entries are mapped and hashed as they stream in, between the batch writes: no span of
      // their own (one per entry would cost more than the mapping), their outcome is here.
      traced?.span.setAttributes({ 'dirsync.objects.fetched': counts.fetched, 'dirsync.objects.failed': counts.failed });
    } catch (error) {
      // Nothing may still be writing when the run reports its failure (or a dry run rolls back).
      await writing?.catch(() => undefined);
      throw error;
    }
    return cursor;
  }
}
