import type { BackoffStrategy } from 'bullmq';

/** Name of the custom backoff strategy in job options; workers register {@link syncBackoffStrategy} for it. */
export const SYNC_BACKOFF_TYPE = 'dirsync-exponential-jitter';

/** Bounds of the retry delay. */
export interface BackoffPolicy {
  /** Delay ceiling before jitter for the first retry; doubles with every further attempt. */
  readonly baseMs: number;
  /** No retry waits longer than this. */
  readonly maxMs: number;
}

/** 10 s, 20 s, 40 s, … capped at 15 minutes (before jitter). */
export const DEFAULT_BACKOFF_POLICY: BackoffPolicy = { baseMs: 10_000, maxMs: 15 * 60_000 };

/**
 * Delay before retry number `attemptsMade` (1 for the first retry): exponential, capped, with
 * "equal jitter" — a random value in [ceiling/2, ceiling]. The random half spreads the retries of
 * many integrations that failed together (a directory or Redis outage) instead of having them
 * hit the server in lockstep; the fixed half keeps a retry from coming back almost at once.
 */
export function computeBackoffDelay(
  attemptsMade: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF_POLICY,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, Math.floor(attemptsMade) - 1);
  // 2 ** exponent overflows to Infinity for absurd attempt counts; the cap still applies.
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  const half = ceiling / 2;
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(half + r * half);
}

/**
 * BullMQ custom backoff strategy. Register it on the worker:
 * `new Worker(SYNC_QUEUE, processor, { settings: { backoffStrategy: syncBackoffStrategy } })`.
 * The job's `backoff.delay` (see `defaultSyncJobOptions`) is used as the base when present.
 * Errors that must not be retried (bad credentials, bad settings) should be thrown as BullMQ's
 * `UnrecoverableError`: BullMQ then fails the job without asking this strategy.
 */
export const syncBackoffStrategy: BackoffStrategy = (attemptsMade, _type, _err, job) => {
  const backoff = job?.opts.backoff;
  const baseMs =
    typeof backoff === 'object' && typeof backoff.delay === 'number' && backoff.delay > 0
      ? backoff.delay
      : DEFAULT_BACKOFF_POLICY.baseMs;
  return computeBackoffDelay(attemptsMade, { baseMs, maxMs: DEFAULT_BACKOFF_POLICY.maxMs });
};
