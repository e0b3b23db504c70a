import { randomUUID } from 'node:crypto';
import type { RedisClient } from '@dirsync/jobs';
import { ldap } from '@dirsync/providers';

/**
 * Limits on how many syncs run at once across every worker process: per account (fairness
 * between customers), per account for full syncs (a customer's big full syncs never take all of
 * its slots from its small deltas) and per directory server (a customer's LDAP server is never
 * hit by more syncs than it can serve). 0 means unlimited.
 */
export interface SyncLimits {
  /** Syncs of one account at once (default 4). */
  readonly accountConcurrency: number;
  /**
   * Full syncs (requested full, or a delta that has no cursor yet and so reads everything) of one
   * account at once (default 1). Kept below `accountConcurrency`, so deltas always keep a slot.
   */
  readonly accountFullConcurrency: number;
  /** Syncs against one directory server (`host:port` of the integration's LDAP URL) at once (default 4). */
  readonly hostConcurrency: number;
  /** Lifetime of a slot's lease: how long a killed worker keeps its slots (default 30 s). */
  readonly leaseMs: number;
  /** How often a running sync renews its leases (default 10 s). */
  readonly renewEveryMs: number;
  /** Mean delay before a sync that found no free slot tries again (default 1 s, ±50 % jitter). */
  readonly retryDelayMs: number;
}

/** Defaults of {@link SyncLimits}. */
export const DEFAULT_SYNC_LIMITS: SyncLimits = {
  accountConcurrency: 4,
  accountFullConcurrency: 1,
  hostConcurrency: 4,
  leaseMs: 30_000,
  renewEveryMs: 10_000,
  retryDelayMs: 1_000,
};

/** {@link SyncLimits} as configured: anything left out (or undefined) takes its default. */
export type SyncLimitOptions = { readonly [K in keyof SyncLimits]?: number | undefined };

/**
 * Fills defaults and keeps the full-sync limit below the account limit: with both equal, full
 * syncs could hold every slot of the account and its deltas would wait for them again.
 */
export function resolveSyncLimits(partial: SyncLimitOptions = {}): SyncLimits {
  const given = Object.fromEntries(Object.entries(partial).filter(([, value]) => value !== undefined));
  const merged: SyncLimits = { ...DEFAULT_SYNC_LIMITS, ...given };
  const whole = (value: number) => Math.max(0, Math.floor(value));
  const account = whole(merged.accountConcurrency);
  const requested = whole(merged.accountFullConcurrency);
  let full = requested;
  // An account limit of 1 leaves no slot to reserve: its full syncs and deltas share it.
  if (account === 1) full = 1;
  else if (account > 1) full = Math.min(requested === 0 ? account - 1 : requested, account - 1);
  return {
    accountConcurrency: account,
    accountFullConcurrency: full,
    hostConcurrency: whole(merged.hostConcurrency),
    leaseMs: Math.max(100, merged.leaseMs),
    renewEveryMs: Math.max(10, Math.min(merged.renewEveryMs, merged.leaseMs / 2)),
    retryDelayMs: Math.max(1, merged.retryDelayMs),
  };
}

// Each limit is one sorted set: members are leases, scores their expiry in Redis server time
// (one clock for every worker). Expired leases are dropped before counting, so a killed worker's
// slots come back after `leaseMs` without anyone cleaning up. Every script touches one key, so
// it runs unchanged on Redis Cluster.
const acquireScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1`;

const renewScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1`;

const countScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')`;

/**
 * Key of the limit on an account's syncs. The account id is a `{…}` hash tag, so the keys of one
 * account share a cluster slot while different accounts spread (when the prefix carries a tag
 * of its own, Redis hashes that first tag and every key stays on the prefix's slot).
 */
export function accountLimitKey(prefix: string, accountId: string): string {
  return `${prefix}:dirsync:limit:account:{${accountId}}`;
}

/** Key of the limit on an account's full syncs (same hash tag as {@link accountLimitKey}). */
export function accountFullLimitKey(prefix: string, accountId: string): string {
  return `${prefix}:dirsync:limit:account-full:{${accountId}}`;
}

/** Key of the limit on syncs against one directory server, `host` being `host:port`. */
export function hostLimitKey(prefix: string, host: string): string {
  return `${prefix}:dirsync:limit:host:{${host}}`;
}

/**
 * The directory server an integration connects to, as `host:port` (lower case, default port
 * filled in), from the `url` setting every LDAP-based kind has. Undefined for kinds without one:
 * Entra ID reaches Microsoft Graph, one host shared by every tenant, which throttles per tenant
 * and application itself (429 with Retry-After, honoured by the client); a host limit there
 * would cap unrelated customers together.
 */
export function directoryHostOf(settings: Record<string, unknown>): string | undefined {
  const url = settings['url'];
  if (typeof url !== 'string') return undefined;
  try {
    const parsed = ldap.parseLdapUrl(url);
    const host = parsed.host.includes(':') ? `[${parsed.host.toLowerCase()}]` : parsed.host.toLowerCase();
    return `${host}:${parsed.port}`;
  } catch {
    // Invalid settings fail the sync later with their own message; no slot to count here.
    return undefined;
  }
}

/** A slot of one limit held by this process. */
export interface HeldSlot {
  readonly key: string;
  /** Aborted when the lease ran out before it could be renewed (the slot may be someone else's now). */
  readonly lost: AbortSignal;
  /** Stops renewing and frees the slot. Idempotent. */
  release(): Promise<void>;
}

/**
 * Takes one of `limit` slots at `key` if one is free and keeps its lease renewed until
 * released. Returns undefined when every slot is taken. `limit` 0 means unlimited: nothing is
 * stored and the returned slot is a no-op.
 */
export async function tryAcquireSlot(
  redis: RedisClient,
  key: string,
  limit: number,
  timing: Pick<SyncLimits, 'leaseMs' | 'renewEveryMs'> = DEFAULT_SYNC_LIMITS,
): Promise<HeldSlot | undefined> {
  const controller = new AbortController();
  if (limit <= 0) return { key, lost: controller.signal, release: async () => undefined };
  const lease = randomUUID();
  const taken = await redis.eval(acquireScript, 1, key, lease, String(limit), String(timing.leaseMs));
  if (taken !== 1) return undefined;

  let released = false;
  let validUntil = performance.now() + timing.leaseMs;
  const lose = () => {
    if (!controller.signal.aborted) controller.abort(new Error(`the lease on ${key} ran out`));
  };
  const renew = async () => {
    const attemptAt = performance.now();
    try {
      const renewed = await redis.eval(renewScript, 1, key, lease, String(timing.leaseMs));
      if (released) return;
      if (renewed === 1) validUntil = attemptAt + timing.leaseMs;
      else lose();
    } catch {
      // Not lost yet: the lease holds until its expiry, and the next renewal may get through.
      if (!released && performance.now() >= validUntil) lose();
    }
  };
  const timer = setInterval(() => void renew(), timing.renewEveryMs);
  timer.unref();
  return {
    key,
    lost: controller.signal,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await redis.zrem(key, lease);
    },
  };
}

/** Slots currently leased at `key` (expired leases not counted). */
export async function countSlots(redis: RedisClient, key: string): Promise<number> {
  return Number(await redis.eval(countScript, 1, key));
}

/** What a sync asks slots for. */
export interface SlotRequest {
  readonly accountId: string;
  /** `host:port` of its directory server, or undefined when exempt (see {@link directoryHostOf}). */
  readonly host: string | undefined;
  /** Whether it reads the whole directory (a full sync). */
  readonly full: boolean;
}

/** The outcome of {@link acquireSyncSlots}. */
export type SlotsOutcome =
  | { readonly ok: true; readonly slots: HeldSlots }
  | { readonly ok: false; readonly blockedBy: 'account' | 'account-full' | 'host' };

/** Every slot one sync holds. */
export interface HeldSlots {
  /** Aborted when any lease ran out. */
  readonly lost: AbortSignal;
  /** Frees every slot. Idempotent; never throws (an unreleased lease expires by itself). */
  release(): Promise<void>;
}

/**
 * Takes the slots a sync needs, in a fixed order (account's full-sync limit, account, host), or
 * none: on the first limit that is full the slots already taken are given back, so a sync that
 * waits never holds a slot another sync could use.
 */
export async function acquireSyncSlots(
  redis: RedisClient,
  prefix: string,
  request: SlotRequest,
  limits: SyncLimits,
): Promise<SlotsOutcome> {
  const wanted: { key: string; limit: number; name: 'account' | 'account-full' | 'host' }[] = [];
  if (request.full) wanted.push({ key: accountFullLimitKey(prefix, request.accountId), limit: limits.accountFullConcurrency, name: 'account-full' });
  wanted.push({ key: accountLimitKey(prefix, request.accountId), limit: limits.accountConcurrency, name: 'account' });
  if (request.host !== undefined) wanted.push({ key: hostLimitKey(prefix, request.host), limit: limits.hostConcurrency, name: 'host' });

  const held: HeldSlot[] = [];
  const releaseAll = async () => {
    await Promise.all(held.map((slot) => slot.release().catch(() => undefined)));
  };
  try {
    for (const { key, limit, name } of wanted) {
      const slot = await tryAcquireSlot(redis, key, limit, limits);
      if (!slot) {
        await releaseAll();
        return { ok: false, blockedBy: name };
      }
      held.push(slot);
    }
  } catch (error) {
    await releaseAll();
    throw error;
  }
  const lost = AbortSignal.any(held.map((slot) => slot.lost));
  let releasing: Promise<void> | undefined;
  return {
    ok: true,
    slots: {
      lost,
      release() {
        releasing ??= releaseAll();
        return releasing;
      },
    },
  };
}

/**
 * When a sync that found no free slot tries again: the mean delay ±50 %, so syncs turned away
 * together do not all come back in the same instant.
 */
export function slotRetryDelayMs(meanMs: number, random: () => number = Math.random): number {
  return Math.max(1, Math.round(meanMs * (0.5 + random())));
}
