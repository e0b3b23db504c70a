import { randomUUID } from 'node:crypto';
import { acquireOwnedKey, releaseOwnedKey, renewOwnedKey, type RedisClient } from '@dirsync/jobs';

/** Timing of an integration lock. */
export interface LockTiming {
  /** Lifetime of the key: how long a killed worker keeps the integration locked. */
  readonly ttlMs: number;
  /** How often the holder extends it (well under `ttlMs`). */
  readonly renewEveryMs: number;
}

/** Defaults: a killed worker blocks its integration for at most 30 s. */
export const DEFAULT_LOCK_TIMING: LockTiming = { ttlMs: 30_000, renewEveryMs: 10_000 };

/** A lock this process holds. */
export interface HeldLock {
  readonly key: string;
  /** The random value stored in the key: part of the holder's fencing token. */
  readonly token: string;
  /** Aborted when the lock is lost (taken over after expiry, or not renewable in time). */
  readonly lost: AbortSignal;
  /** Stops renewing and deletes the key if it is still ours. Idempotent. */
  release(): Promise<void>;
}

/**
 * The Redis key locking syncs of one integration, under the queue prefix (cleaned up with the
 * queues). Every command and script on it names this one key, so it needs no hash tag to work
 * on a Redis Cluster: a single key always lives in one slot.
 */
export function integrationLockKey(prefix: string, integrationId: string): string {
  return `${prefix}:dirsync:lock:integration:${integrationId}`;
}

/**
 * Takes the lock at `key` if nobody holds it (SET NX PX with a random token) and keeps it alive
 * until released. Returns undefined when another holder has it.
 */
export async function tryAcquireLock(
  redis: RedisClient,
  key: string,
  timing: LockTiming = DEFAULT_LOCK_TIMING,
): Promise<HeldLock | undefined> {
  const token = randomUUID();
  if (!(await acquireOwnedKey(redis, key, token, timing.ttlMs))) return undefined;

  const controller = new AbortController();
  // Measured from before each request, so a slow reply can only make the holder give up early.
  let validUntil = performance.now() + timing.ttlMs;
  let released = false;
  const lose = (reason: string) => {
    if (!controller.signal.aborted) controller.abort(new LockLostError(reason));
  };
  const renew = async () => {
    const attemptAt = performance.now();
    try {
      const extended = await renewOwnedKey(redis, key, token, timing.ttlMs);
      if (released) return;
      if (extended) validUntil = attemptAt + timing.ttlMs;
      else lose('the integration lock expired and was taken by another worker');
    } catch {
      // A failed renewal is not yet a loss: the key is valid until its TTL runs out.
      if (!released && performance.now() >= validUntil) lose('the integration lock could not be renewed before it expired');
    }
  };
  const timer = setInterval(() => void renew(), timing.renewEveryMs);
  // The TTL may also run out while renewals fail silently; this check catches it even then.
  const expiryTimer = setInterval(() => {
    if (performance.now() >= validUntil) lose('the integration lock could not be renewed before it expired');
  }, Math.max(20, Math.floor(Math.min(timing.renewEveryMs, timing.ttlMs) / 4)));
  timer.unref();
  expiryTimer.unref();

  return {
    key,
    token,
    lost: controller.signal,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      clearInterval(expiryTimer);
      await releaseOwnedKey(redis, key, token);
    },
  };
}

/** The run stopped because its integration lock was lost: another worker may be syncing it now. */
export class LockLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LockLostError';
  }
}
