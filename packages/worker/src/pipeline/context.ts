import type { ObjectSql } from '@dirsync/db';
import type { IssueLog, SyncCounts } from './report.ts';

/** What the stages of one run share: where to write, which run it is, and what it has counted. */
export interface SyncContext {
  /**
   * The pool, the transaction a dry run rolls back, or, while a fenced step runs, that step's
   * transaction (see `runSync`'s `fence`).
   */
  sql: ObjectSql;
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
   * True in a dry run: every statement runs in one transaction, which a refused statement would
   * abort, so nothing may be tried in the hope that it succeeds.
   */
  singleTransaction: boolean;
  /**
   * Whether the integration had any stored object when the run started. When it had none (a
   * first sync), no stored object can hold the DN of an object the run creates, so the run need
   * not look for one.
   */
  readonly storedAtStart: boolean;
  /**
   * Insert objects without stamping them first, because none can be stored yet: true from the
   * start of a run on an empty integration (never in a single transaction), false from the first
   * object found stored after all (one the fetch listed twice).
   */
  assumeAbsent: boolean;
}

/** Splits `items` into slices of at most `size`, so no single statement grows without bound. */
export function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let start = 0; start < items.length; start += size) yield items.slice(start, start + size);
}

/** Below this much work (items, or their weight) a part is not worth a connection of its own. */
const minPartWeight = 500;

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
