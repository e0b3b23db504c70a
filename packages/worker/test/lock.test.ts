import { Redis } from 'ioredis';
import { createTestQueuePrefix, testRedisUrl, waitFor, type TestQueuePrefix } from '@dirsync/testkit';
import { integrationLockKey, LockLostError, tryAcquireLock } from '../src/lock.ts';

let redis: Redis;
let prefix: TestQueuePrefix;

beforeAll(() => {
  redis = new Redis(testRedisUrl);
  prefix = createTestQueuePrefix('lock');
});

afterAll(async () => {
  await prefix.cleanup();
  redis.disconnect();
});

test('only one holder at a time; released locks can be taken again', async () => {
  const key = integrationLockKey(prefix.prefix, 'one-holder');
  const first = await tryAcquireLock(redis, key);
  expect(first).toBeDefined();
  expect(await tryAcquireLock(redis, key)).toBeUndefined();
  await first!.release();
  expect(await redis.exists(key)).toBe(0);
  const second = await tryAcquireLock(redis, key);
  expect(second).toBeDefined();
  await second!.release();
});

test('renewals keep the lock alive well past its TTL', async () => {
  const key = integrationLockKey(prefix.prefix, 'renewed');
  // A TTL ten renewals long: a test process starved of CPU for a few hundred milliseconds (the
  // suite runs beside itself on two cores) must not let the key expire between two renewals.
  const held = await tryAcquireLock(redis, key, { ttlMs: 1000, renewEveryMs: 100 });
  const start = performance.now();
  // Four TTLs: without renewal the key would have expired three times over.
  await waitFor(async () => {
    expect(await redis.exists(key)).toBe(1);
    return performance.now() - start > 4000;
  }, { timeoutMs: 15_000, intervalMs: 100, what: 'four lock lifetimes' });
  expect(held!.lost.aborted).toBe(false);
  await held!.release();
});

test('a lock that expires is reported lost, and its old holder cannot release the new one', async () => {
  const key = integrationLockKey(prefix.prefix, 'expired');
  // Renewal far slower than the TTL: the key expires as after a stalled process.
  const stale = await tryAcquireLock(redis, key, { ttlMs: 200, renewEveryMs: 60_000 });
  await waitFor(() => stale!.lost.aborted, { timeoutMs: 5000, what: 'the lock to be reported lost' });
  expect(stale!.lost.reason).toBeInstanceOf(LockLostError);
  await waitFor(async () => (await redis.exists(key)) === 0, { timeoutMs: 5000, what: 'the key to expire' });

  const current = await tryAcquireLock(redis, key, { ttlMs: 10_000, renewEveryMs: 1000 });
  expect(current).toBeDefined();
  await stale!.release();
  expect(await redis.exists(key)).toBe(1);
  await current!.release();
  expect(await redis.exists(key)).toBe(0);
});
