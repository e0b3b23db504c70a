import { randomBytes, randomUUID } from 'node:crypto';
import { testRedisUrl, useTestRedisCluster, type TestRedisCluster } from '@dirsync/testkit';
import { closeRedis, createEnqueueClient, openRedis, removeQueuePrefix, type RedisConnection } from '../src/index.ts';

// A throwaway prefix (a demo run's) is removed whole, and only it: a prefix that starts with the
// same characters, as another demo's or an installation's may, keeps every key.

const teardown: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  while (teardown.length > 0) await teardown.pop()?.();
});

function newPrefix(label: string): string {
  return `dirsync-test-cleanup-${label}-${randomBytes(4).toString('hex')}`;
}

/** Enqueues a sync job under `prefix` (queue, job hash, events: several keys in several slots). */
async function fill(connection: RedisConnection, prefix: string): Promise<void> {
  const client = createEnqueueClient({ connection, prefix });
  try {
    await client.enqueueSync({ integrationId: randomUUID(), mode: 'full', trigger: 'manual', requestedBy: 'test' });
  } finally {
    await client.close();
  }
}

/** Keys under `prefix`, counted on each of `nodes` directly. */
async function keysUnder(prefix: string, nodes: readonly string[]): Promise<number> {
  let count = 0;
  for (const url of nodes) {
    const node = openRedis(url);
    try {
      count += (await node.keys(`${prefix}:*`)).length;
    } finally {
      await closeRedis(node);
    }
  }
  return count;
}

test('removeQueuePrefix deletes every key of a prefix and none of a prefix that extends it', async () => {
  const prefix = newPrefix('standalone');
  const neighbour = `${prefix}0`;
  teardown.push(() => removeQueuePrefix(testRedisUrl, neighbour));
  await fill(testRedisUrl, prefix);
  await fill(testRedisUrl, neighbour);
  const before = await keysUnder(prefix, [testRedisUrl]);
  expect(before).toBeGreaterThan(1);
  await expect(removeQueuePrefix(testRedisUrl, prefix)).resolves.toBe(before);
  expect(await keysUnder(prefix, [testRedisUrl])).toBe(0);
  expect(await keysUnder(neighbour, [testRedisUrl])).toBeGreaterThan(1);
});

test('removeQueuePrefix refuses a pattern instead of a name', async () => {
  await expect(removeQueuePrefix(testRedisUrl, 'dirsync*')).rejects.toThrow(/not a plain name/);
});

describe('on a cluster', () => {
  let cluster: TestRedisCluster;

  beforeAll(async () => {
    cluster = await useTestRedisCluster();
  }, 120_000);

  test('removeQueuePrefix deletes the prefix on every primary', async () => {
    const prefix = newPrefix('cluster');
    teardown.push(() => cluster.deleteKeys(prefix));
    const connection = { url: cluster.urls.join(','), mode: 'cluster' as const };
    await fill(connection, prefix);
    expect(await keysUnder(prefix, cluster.urls)).toBeGreaterThan(1);
    await removeQueuePrefix(connection, prefix);
    expect(await keysUnder(prefix, cluster.urls)).toBe(0);
  }, 60_000);
});
