import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { acquireOwnedKey, releaseOwnedKey, renewOwnedKey } from './owned-key.ts';
import { DEFAULT_QUEUE_PREFIX } from './queues.ts';
import { closeRedis, openRedis, type RedisClient, type RedisConnection } from './redis.ts';

/** Timing of a leader lease. */
export interface LeaderLeaseTiming {
  /** Lifetime of the key: how long a killed leader stays leader in Redis's eyes. */
  readonly ttlMs: number;
  /** How often the holder renews it and the others try to take it (well under `ttlMs`). */
  readonly renewEveryMs: number;
}

/**
 * Defaults: a killed leader's role is free after at most 30 s, and another process takes it at its
 * next attempt, 10 s later at most.
 */
export const DEFAULT_LEADER_LEASE_TIMING: LeaderLeaseTiming = { ttlMs: 30_000, renewEveryMs: 10_000 };

/**
 * The Redis key of the lease electing one process of an installation for `role`, under the queue
 * prefix (removed with the queues; two prefixes on one Redis elect two leaders). Every command and
 * script on it names this one key, so it works on Redis Cluster as it is; the hash tag keeps the
 * key in the slot of its role's name whatever the prefix (unless the prefix carries a tag of its
 * own, which then wins and keeps every key of the installation together, as for the queues).
 */
export function leaderLeaseKey(prefix: string, role: string): string {
  return `${prefix}:dirsync:leader:{${role}}`;
}

/** The lease of the process exporting the installation-wide metrics series. */
export function installationMetricsLeaseKey(prefix: string = DEFAULT_QUEUE_PREFIX): string {
  return leaderLeaseKey(prefix, 'installation-metrics');
}

/**
 * What this process knows of the election: `leader` while it holds a lease it renewed in time;
 * `follower` when Redis answered that another process holds it; `unavailable` when its last
 * attempt failed (Redis unreachable) and it holds no valid lease, so it does not claim the role.
 */
export interface LeaderState {
  readonly status: 'leader' | 'follower' | 'unavailable';
  /** Why, in words (an error's text has no address or password: only its kind). */
  readonly detail: string;
}

/** A running election: this process's part in it. */
export interface LeaderElection {
  readonly key: string;
  /**
   * True while this process holds the lease: it was set or renewed by this process less than
   * `ttlMs` ago, measured from before the request, so this process stops believing it leads
   * before Redis lets the key expire and another process can take it.
   */
  isLeader(): boolean;
  state(): LeaderState;
  /** Settles once the first attempt has finished (whatever its outcome). Never rejects. */
  readonly settled: Promise<void>;
  /**
   * Stops the timers, waits for an attempt in flight, deletes the key if it is still this
   * process's (so another process takes over at its next attempt instead of after the TTL) and
   * closes the connection. Idempotent; never throws.
   */
  close(): Promise<void>;
}

/** Options of {@link startLeaderElection}. */
export interface LeaderElectionOptions {
  readonly connection: RedisConnection;
  /** The lease's key, e.g. {@link installationMetricsLeaseKey}. */
  readonly key: string;
  /** Default {@link DEFAULT_LEADER_LEASE_TIMING}; parts left out take their default. */
  readonly timing?: Partial<LeaderLeaseTiming> | undefined;
  /** Called when this process becomes leader or stops being it. */
  readonly onChange?: ((leader: boolean, state: LeaderState) => void) | undefined;
  /** Connection errors and failed attempts (the election goes on: the next attempt may work). */
  readonly onError?: ((error: Error) => void) | undefined;
}

/** The kind of a failure, without its text (which may name hosts): the reply's first word or the error's name. */
function failureKind(error: unknown): string {
  if (!(error instanceof Error)) return 'error';
  const word = /^[A-Z]{3,}\b/.exec(error.message)?.[0];
  if (word !== undefined) return word;
  if (/enableOfflineQueue|Connection is closed|Stream isn't writeable/.test(error.message)) return 'not connected';
  if (/timed out/i.test(error.message)) return 'timeout';
  return error.name;
}

function resolveTiming(timing: Partial<LeaderLeaseTiming> | undefined): LeaderLeaseTiming {
  const given = Object.fromEntries(Object.entries(timing ?? {}).filter(([, value]) => value !== undefined));
  const merged: LeaderLeaseTiming = { ...DEFAULT_LEADER_LEASE_TIMING, ...given };
  const ttlMs = Math.max(100, Math.floor(merged.ttlMs));
  return { ttlMs, renewEveryMs: Math.max(10, Math.min(Math.floor(merged.renewEveryMs), Math.floor(ttlMs / 2))) };
}

/**
 * Competes for the lease at `key`: one process of all those running an election on the key is
 * leader at a time. The lease is a Redis key set with `SET NX PX` to a value of this process's
 * own, renewed every `renewEveryMs` only while it still holds that value and deleted on close only
 * then; the others try `SET NX` at the same pace, so a closed leader is replaced at their next
 * attempt and a killed one at the first attempt after its key expired. A process that cannot
 * reach Redis does not claim the role (a leader keeps it until its lease runs out). The first
 * attempt starts at once; the timers do not keep the process alive.
 */
export function startLeaderElection(options: LeaderElectionOptions): LeaderElection {
  const timing = resolveTiming(options.timing);
  const { key } = options;
  const onError = options.onError ?? (() => {});
  // Fails at once while Redis is away instead of queueing: an attempt that cannot run now is
  // simply made again at the next tick.
  const redis: RedisClient = openRedis(options.connection, 'request', { onError, extra: { lazyConnect: true } });
  // The holder's name first, for whoever reads the key to see who leads.
  const value = `${hostname()}/${process.pid}/${randomUUID()}`;
  let held = false;
  let validUntil = 0;
  let lastFailure: string | undefined;
  let closed = false;
  let reported = false;
  let connecting: Promise<void> | undefined;

  const isLeader = () => held && performance.now() < validUntil;
  const state = (): LeaderState => {
    if (isLeader()) {
      const seconds = Math.max(0, Math.round((validUntil - performance.now()) / 1000));
      return lastFailure === undefined
        ? { status: 'leader', detail: 'this process holds the lease' }
        : { status: 'leader', detail: `this process holds the lease for ${seconds} s more; renewing it failed (${lastFailure})` };
    }
    if (lastFailure !== undefined) return { status: 'unavailable', detail: `not claimed: the lease cannot be reached (${lastFailure})` };
    return { status: 'follower', detail: 'another process holds the lease' };
  };
  const report = () => {
    const leader = isLeader();
    if (leader === reported) return;
    reported = leader;
    options.onChange?.(leader, state());
  };

  const attempt = async () => {
    const attemptAt = performance.now();
    try {
      if (redis.status === 'wait' || redis.status === 'end') {
        connecting ??= redis.connect().finally(() => (connecting = undefined));
        await connecting;
      }
      // Renewal first, even past the local deadline and even when the last attempt did not
      // know it had the key (its SET landed after a timeout): while the key holds our value
      // nobody else has taken the lease in between, and keeping it is as safe as taking it anew.
      let ours = await renewOwnedKey(redis, key, value, timing.ttlMs);
      if (!ours) ours = await acquireOwnedKey(redis, key, value, timing.ttlMs);
      // Recorded even when closing: close() waits for this attempt and releases what it took.
      held = ours;
      if (ours) validUntil = attemptAt + timing.ttlMs;
      lastFailure = undefined;
    } catch (error) {
      lastFailure = failureKind(error);
      onError(error instanceof Error ? error : new Error(String(error)));
    }
    if (!closed) report();
  };

  let inFlight: Promise<void> | undefined;
  const tick = () => {
    if (closed || inFlight !== undefined) return;
    inFlight = attempt().finally(() => (inFlight = undefined));
  };
  const settled: Promise<void> = attempt().finally(() => (inFlight = undefined));
  inFlight = settled;
  const timer = setInterval(tick, timing.renewEveryMs);
  // A lease that could not be renewed runs out between attempts: noticed within a fraction of a renewal period.
  const expiryTimer = setInterval(report, Math.max(10, Math.floor(timing.renewEveryMs / 4)));
  timer.unref();
  expiryTimer.unref();

  let closing: Promise<void> | undefined;
  return {
    key,
    isLeader,
    state,
    settled,
    close() {
      closing ??= (async () => {
        closed = true;
        clearInterval(timer);
        clearInterval(expiryTimer);
        // An acquisition landing after the release would hold the key for a whole TTL.
        await inFlight;
        if (held) {
          held = false;
          await releaseOwnedKey(redis, key, value).catch((error: unknown) => onError(error instanceof Error ? error : new Error(String(error))));
        }
        if (reported) {
          reported = false;
          options.onChange?.(false, { status: 'follower', detail: 'stopped' });
        }
        await closeRedis(redis);
      })();
      return closing;
    },
  };
}
