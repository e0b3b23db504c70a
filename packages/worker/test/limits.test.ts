import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createAccount, createIntegration, createKeyRing, type Db, generateSecretKey, getRun, type Run } from '@dirsync/db';
import { testRedisUrl, waitFor, type TestQueuePrefix } from '@dirsync/testkit';
import {
  accountFullLimitKey,
  accountLimitKey,
  acquireSyncSlots,
  countSlots,
  DEFAULT_SYNC_LIMITS,
  directoryHostOf,
  hostLimitKey,
  resolveSyncLimits,
  slotRetryDelayMs,
  tryAcquireSlot,
} from '../src/limits.ts';
import { type KilledWorkerBed, startKilledWorkerBed } from './support/killed-worker.ts';
import { fixtureDirectory } from './support/scripted-provider.ts';

const childScript = fileURLToPath(new URL('./support/limits-child.ts', import.meta.url));

let redis: Redis;
let bed: KilledWorkerBed;
let prefix: TestQueuePrefix;
let db: Db;
let queue: Queue;

beforeAll(async () => {
  redis = new Redis(testRedisUrl);
  bed = await startKilledWorkerBed('limits');
  ({ prefix, db, queue } = bed);
});

afterAll(async () => {
  redis.disconnect();
  await bed?.close();
});

describe('settings', () => {
  test('defaults, and the full-sync limit stays below the account limit so deltas keep a slot', () => {
    expect(resolveSyncLimits()).toEqual(DEFAULT_SYNC_LIMITS);
    expect(resolveSyncLimits({ accountConcurrency: 4, accountFullConcurrency: 4 }).accountFullConcurrency).toBe(3);
    expect(resolveSyncLimits({ accountConcurrency: 6, accountFullConcurrency: 0 }).accountFullConcurrency).toBe(5);
    expect(resolveSyncLimits({ accountConcurrency: 1, accountFullConcurrency: 3 }).accountFullConcurrency).toBe(1);
    expect(resolveSyncLimits({ accountConcurrency: 0, accountFullConcurrency: 2 })).toMatchObject({ accountConcurrency: 0, accountFullConcurrency: 2 });
    expect(resolveSyncLimits({ hostConcurrency: undefined, accountConcurrency: 8 })).toMatchObject({ hostConcurrency: 4, accountConcurrency: 8 });
    // Renewal never slower than half a lease: one missed renewal must not lose the slot.
    expect(resolveSyncLimits({ leaseMs: 1000, renewEveryMs: 5000 }).renewEveryMs).toBe(500);
  });

  test.each([
    [{ url: 'ldaps://DC1.Corp.Example.com' }, 'dc1.corp.example.com:636'],
    [{ url: 'ldap://ldap.example.org' }, 'ldap.example.org:389'],
    [{ url: 'ldap://10.0.0.5:3389' }, '10.0.0.5:3389'],
    [{ url: 'ldaps://[2001:db8::1]:636' }, '[2001:db8::1]:636'],
    [{ tenantId: '4c8a3d0e-7f2b-4a51-9e0d-2b6f1c3a5e77', connectorId: 'x' }, undefined],
    [{ url: 'https://graph.microsoft.com' }, undefined],
    [{ url: 42 }, undefined],
  ])('directory server of %j is %s', (settings, host) => {
    expect(directoryHostOf(settings)).toBe(host);
  });

  test('retry delays spread ±50 % around the mean', () => {
    expect(slotRetryDelayMs(2000, () => 0)).toBe(1000);
    expect(slotRetryDelayMs(2000, () => 0.999_999)).toBe(3000);
    const delays = new Set(Array.from({ length: 50 }, () => slotRetryDelayMs(2000)));
    expect(delays.size).toBeGreaterThan(10);
  });
});

describe('slots', () => {
  test('at most `limit` holders; a released slot can be taken again; limit 0 stores nothing', async () => {
    const key = hostLimitKey(prefix.prefix, 'two-slots:389');
    const first = await tryAcquireSlot(redis, key, 2);
    const second = await tryAcquireSlot(redis, key, 2);
    expect(first && second).toBeDefined();
    expect(await tryAcquireSlot(redis, key, 2)).toBeUndefined();
    expect(await countSlots(redis, key)).toBe(2);
    await first!.release();
    await first!.release();
    const third = await tryAcquireSlot(redis, key, 2);
    expect(third).toBeDefined();
    await Promise.all([second!.release(), third!.release()]);
    expect(await countSlots(redis, key)).toBe(0);

    const unlimited = hostLimitKey(prefix.prefix, 'unlimited:389');
    const many = await Promise.all(Array.from({ length: 20 }, () => tryAcquireSlot(redis, unlimited, 0)));
    expect(many.every(Boolean)).toBe(true);
    expect(await redis.exists(unlimited)).toBe(0);
  });

  test('renewals keep a lease well past its lifetime; an unrenewed one expires and frees its slot', async () => {
    const key = hostLimitKey(prefix.prefix, 'renewed:389');
    // A lease of 2.5 s renewed every 50 ms: only an event loop stalled for seconds could lose it,
    // which is what the test must not measure (a loaded CI machine stalled a 1 s lease once).
    const renewed = await tryAcquireSlot(redis, key, 1, { leaseMs: 2500, renewEveryMs: 50 });
    const start = performance.now();
    await waitFor(
      async () => {
        expect(await countSlots(redis, key)).toBe(1);
        return performance.now() - start > 7500;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'three lease lifetimes' },
    );
    expect(renewed!.lost.aborted).toBe(false);
    await renewed!.release();

    // Renewing far slower than the lease: what a stalled process leaves behind.
    const stale = await tryAcquireSlot(redis, key, 1, { leaseMs: 200, renewEveryMs: 60_000 });
    expect(await tryAcquireSlot(redis, key, 1)).toBeUndefined();
    const next = await waitFor(() => tryAcquireSlot(redis, key, 1), { timeoutMs: 5000, what: 'the stale lease to expire' });
    await stale!.release();
    expect(await countSlots(redis, key)).toBe(1);
    await next.release();
  });

  test('a sync gets every slot it needs or none: a full host gives the account slots back', async () => {
    const limits = resolveSyncLimits({ accountConcurrency: 3, accountFullConcurrency: 1, hostConcurrency: 1 });
    const request = { accountId: randomUUID(), host: 'busy.example.org:636', full: true };
    const first = await acquireSyncSlots(redis, prefix.prefix, request, limits);
    expect(first.ok).toBe(true);
    expect(await acquireSyncSlots(redis, prefix.prefix, request, limits)).toEqual({ ok: false, blockedBy: 'account-full' });
    const otherAccount = { ...request, accountId: randomUUID() };
    expect(await acquireSyncSlots(redis, prefix.prefix, otherAccount, limits)).toEqual({ ok: false, blockedBy: 'host' });
    expect(await countSlots(redis, accountLimitKey(prefix.prefix, otherAccount.accountId))).toBe(0);
    expect(await countSlots(redis, accountFullLimitKey(prefix.prefix, otherAccount.accountId))).toBe(0);
    // A delta of the first account on another server: the full limit does not apply to it.
    const delta = await acquireSyncSlots(redis, prefix.prefix, { ...request, host: 'other.example.org:636', full: false }, limits);
    expect(delta.ok).toBe(true);
    expect(await countSlots(redis, accountLimitKey(prefix.prefix, request.accountId))).toBe(2);
    if (first.ok) await first.slots.release();
    if (delta.ok) await delta.slots.release();
    expect(await countSlots(redis, accountLimitKey(prefix.prefix, request.accountId))).toBe(0);
    expect(await countSlots(redis, hostLimitKey(prefix.prefix, request.host))).toBe(0);
  });
});

test('a killed worker\'s slot comes back when its lease runs out, and the syncs that waited for it run', async () => {
  const secretKey = generateSecretKey();
  const ring = createKeyRing({ current: secretKey });
  const accountId = (await createAccount(db, { name: 'limits' })).id;
  const settings = { url: 'ldap://directory.example.test:389' };
  const host = directoryHostOf(settings)!;
  const newIntegration = async (name: string) => (await createIntegration(db, { accountId, kind: 'ldap', name, settings }, { ring, plaintext: 'pw' })).id;
  const hung = await newIntegration('hung');
  const waiting = await newIntegration('waiting');
  const leaseMs = 1500;

  const child = bed.spawnChild({ secretKey, leaseMs }, childScript);
  await once(child.stdout!, 'data');
  const add = async (integrationId: string) => {
    const runId = randomUUID();
    await queue.add('sync', { integrationId, runId, mode: 'full', trigger: 'manual', dryRun: false }, { jobId: `run.${runId}`, attempts: 3 });
    return runId;
  };
  const hungRun = await add(hung);
  await waitFor(async () => (await getRun(db, hungRun))?.status === 'running', { timeoutMs: 30_000, what: 'the doomed worker to start its sync' });
  expect(await countSlots(redis, hostLimitKey(prefix.prefix, host))).toBe(1);
  child.kill('SIGKILL');
  await once(child, 'exit');
  const killedAt = Date.now();
  // The dead process's lease still counts until it runs out.
  expect(await countSlots(redis, hostLimitKey(prefix.prefix, host))).toBe(1);

  bed.startRescuer({
    concurrency: 2,
    keyRing: ring,
    createProvider: () => fixtureDirectory(50, 1, 5),
    controlConcurrency: 0,
    runRotations: false,
    syncLimits: { hostConcurrency: 1, leaseMs, renewEveryMs: leaseMs / 4, retryDelayMs: 100 },
  });
  const waitingRun = await add(waiting);
  const runs = await waitFor(
    async () => {
      const found = await Promise.all([getRun(db, hungRun), getRun(db, waitingRun)]);
      return found.every((run) => run?.status === 'succeeded') ? (found as Run[]) : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100, what: 'both syncs to succeed on the rescuer' },
  );
  const [rescued, waited] = runs as [Run, Run];
  expect(rescued.workerId).toBe('rescuer');
  expect(waited.attempt).toBe(1);
  // One slot for the server, held by the dead process: the waiting sync could start only once
  // that lease ran out (its last renewal came at most a quarter lease before the kill).
  expect(waited.startedAt!.getTime()).toBeGreaterThanOrEqual(killedAt + leaseMs / 2);
  // The rescuer gives its slots back once each job is done, a moment after the run row.
  await waitFor(async () => ((await countSlots(redis, hostLimitKey(prefix.prefix, host))) === 0 ? true : undefined), {
    timeoutMs: 10_000,
    intervalMs: 50,
    what: 'every slot of the server to be given back',
  });
}, 90_000);
