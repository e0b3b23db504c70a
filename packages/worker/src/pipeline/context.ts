import type { ObjectSql } from '@dirsync/db';
import type { IssueLog, SyncCounts } from './report.ts';

/** What the stages of one run share: where to write, which run it is, and what it has counted. */
export interface SyncContext {
  /**
   * The pool, the transaction a dry run rolls back, or, while a fenced step runs, that step's
   * transaction (see `runSync`'s `fence`).
   */
  sql: ObjectSql;
  /** The pool, for what must run outside any transaction; undefined in a dry run. */
  readonly pool: ObjectSql | undefined;
  readonly integrationId: string;
  readonly runId: string;
  readonly counts: SyncCounts;
  readonly issues: IssueLog;
  /**
   * Statements a stage may run at once on separate connections (1 inside a dry run's single
   * transaction). PostgreSQL runs each statement on one core; splitting a batch's disjoint rows
   * across connections uses more.
   */
  parallelism: number;
  /**
   * While a fenced step may spread its writes over more connections (see {@link inLanes}): runs
   * `fn` in a fenced transaction of its own on another connection, committed with the counts `fn`
   * tallied. Undefined otherwise, and from the moment a step writes rows other than by lane.
   */
  fork: Fork | undefined;
  /**
   * Whether the integration had any stored object when the run started. When it had none (a
   * first sync), no stored object can hold the DN of an object the run creates, so the run need
   * not look for one.
   */
  readonly storedAtStart: boolean;
  /**
   * Insert objects without stamping them first, because none can be stored yet: true from the
   * start of a real run on an empty integration, false from the first object found stored after
   * all (one the fetch listed twice). Inside a transaction the insert is tried in a savepoint, so
   * that refusal does not abort the step.
   */
  assumeAbsent: boolean;
}

/** The write counts a transaction records in its run (see `addRunProgress`). */
export type Tally = Pick<SyncCounts, 'created' | 'updated' | 'restored' | 'deleted' | 'membershipsAdded' | 'membershipsRemoved'>;

/** See {@link SyncContext.fork}. */
export type Fork = <R>(fn: (sql: ObjectSql, tally: Tally) => Promise<R>) => Promise<R>;

/**
 * The lane of a row's key among `lanes`: a fenced step writes each row on the connection of its
 * lane only, so a forked transaction never meets a row the step's own transaction wrote and holds
 * uncommitted (which it would not see, or would wait for until the step ends: forever).
 */
export function laneOf(key: string, lanes: number): number {
  let hash = 2166136261;
  for (let i = 0; i < key.length; i += 1) hash = Math.imul(hash ^ key.charCodeAt(i), 16777619);
  return (hash >>> 0) % lanes;
}

/**
 * Stops a fenced step from forking: from now on every write of the step runs in its own
 * transaction, one statement at a time (statements sent together on one transaction would share
 * its savepoints).
 */
export function unfork(ctx: SyncContext): void {
  if (ctx.fork === undefined) return;
  ctx.fork = undefined;
  ctx.parallelism = 1;
}

/**
 * Runs `fn` over `items` on separate connections where {@link inParallel} would. Without a fork
 * it is {@link inParallel}, on the context's handle and counts. With one (a fenced step), items go
 * to the lane of their `key` ({@link laneOf}; no key: lane 0), lane 0 in the step's own
 * transaction, the others each in a forked one with a tally of its own.
 */
export async function inLanes<T, R>(
  ctx: SyncContext,
  items: readonly T[],
  key: (item: T) => string | undefined,
  fn: (part: T[], sql: ObjectSql, tally: Tally) => Promise<R>,
  weight?: (item: T) => number,
): Promise<R[]> {
  if (items.length === 0) return [];
  const { fork, sql, counts } = ctx;
  if (fork === undefined) return inParallel(ctx, items, (part) => fn(part, sql, counts), weight);
  const parts: T[][] = Array.from({ length: ctx.parallelism }, () => []);
  for (const item of items) {
    const k = key(item);
    (parts[k === undefined ? 0 : laneOf(k, ctx.parallelism)] as T[]).push(item);
  }
  const runs: Promise<R>[] = [];
  parts.forEach((part, index) => {
    if (part.length === 0) return;
    runs.push(index === 0 ? fn(part, sql, counts) : fork((forked, tally) => fn(part, forked, tally)));
  });
  // Every part ends before the step goes on or fails: a forked transaction still open when the
  // step rolls back would commit after it, its counts missing from the report.
  const settled = await Promise.allSettled(runs);
  const failure = settled.find((result) => result.status === 'rejected');
  if (failure !== undefined) throw failure.reason;
  return settled.map((result) => (result as PromiseFulfilledResult<R>).value);
}

/** Splits `items` into slices of at most `size`, so no single statement grows without bound. */
export function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let start = 0; start < items.length; start += size) yield items.slice(start, start + size);
}

/** Below this much work (items, or their weight) a part is not worth a connection of its own. */
export const minPartWeight = 500;

/**
 * Runs `fn` over `items` split into at most `ctx.parallelism` contiguous parts at once, each of
 * about the same total `weight` (default 1 per item: a group weighs its member count, so 250
 * groups of 100 members are split like 25,000 rows). Callers pass only items that touch disjoint
 * rows, so the parts cannot wait on each other's locks.
 */
export async function inParallel<T, R>(
  ctx: Pick<SyncContext, 'parallelism'>,
  items: readonly T[],
  fn: (part: T[]) => Promise<R>,
  weight?: (item: T) => number,
): Promise<R[]> {
  let total = items.length;
  if (weight !== undefined) {
    total = 0;
    for (const item of items) total += Math.max(1, weight(item));
  }
  const parts = Math.min(ctx.parallelism, items.length, Math.floor(total / minPartWeight));
  if (parts <= 1) return [await fn([...items])];
  if (weight === undefined) return Promise.all([...chunks(items, Math.ceil(items.length / parts))].map(fn));
  const slices: T[][] = [];
  let current: T[] = [];
  let sum = 0;
  for (const item of items) {
    const w = Math.max(1, weight(item));
    const target = (total * (slices.length + 1)) / parts;
    if (slices.length < parts - 1 && sum + w >= target) {
      // Cut before or after this item, whichever lands nearer the target.
      if (current.length > 0 && target - sum < sum + w - target) {
        slices.push(current);
        current = [item];
      } else {
        current.push(item);
        slices.push(current);
        current = [];
      }
    } else {
      current.push(item);
    }
    sum += w;
  }
  if (current.length > 0) slices.push(current);
  return Promise.all(slices.map(fn));
}
