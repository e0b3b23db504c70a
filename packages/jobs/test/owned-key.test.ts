import { Redis } from 'ioredis';
import { createTestQueuePrefix, testRedisUrl, type TestQueuePrefix } from '@dirsync/testkit';
import { acquireOwnedKey, releaseOwnedKey, renewOwnedKey } from '../src/index.ts';

// The primitives under the integration locks and the leader lease, on real Redis: one holder at
// a time, and a token that is not the key's value can neither prolong nor delete it.

let redis: Redis;
let prefix: TestQueuePrefix;
let keys = 0;

beforeAll(() => {
  redis = new Redis(testRedisUrl);
  prefix = createTestQueuePrefix('owned-key');
});

afterAll(async () => {
  await prefix.cleanup();
  redis.disconnect();
});

function freshKey(): string {
  keys += 1;
  return `${prefix.prefix}:dirsync:owned:${keys}`;
}

test('acquired once with its TTL; a second acquisition fails whoever asks, and a release frees the key for the next', async () => {
  const key = freshKey();
  expect(await acquireOwnedKey(redis, key, 'first', 60_000)).toBe(true);
  expect(await redis.get(key)).toBe('first');
  expect(await redis.pttl(key)).toBeGreaterThan(50_000);
  expect(await acquireOwnedKey(redis, key, 'second', 60_000)).toBe(false);
  expect(await acquireOwnedKey(redis, key, 'first', 60_000)).toBe(false);

  expect(await releaseOwnedKey(redis, key, 'first')).toBe(true);
  expect(await redis.exists(key)).toBe(0);
  expect(await releaseOwnedKey(redis, key, 'first')).toBe(false);
  expect(await acquireOwnedKey(redis, key, 'second', 60_000)).toBe(true);
  expect(await redis.get(key)).toBe('second');
});

test('only the holder renews: the TTL is reset for its token and left alone for another', async () => {
  const key = freshKey();
  expect(await acquireOwnedKey(redis, key, 'holder', 1_000)).toBe(true);
  expect(await renewOwnedKey(redis, key, 'holder', 60_000)).toBe(true);
  expect(await redis.pttl(key)).toBeGreaterThan(50_000);

  expect(await renewOwnedKey(redis, key, 'intruder', 600_000)).toBe(false);
  expect(await redis.pttl(key)).toBeLessThanOrEqual(60_000);
  expect(await releaseOwnedKey(redis, key, 'intruder')).toBe(false);
  expect(await redis.get(key)).toBe('holder');
});

test('a key that is gone is not renewed back into existence', async () => {
  const key = freshKey();
  expect(await renewOwnedKey(redis, key, 'holder', 60_000)).toBe(false);
  expect(await redis.exists(key)).toBe(0);
});
