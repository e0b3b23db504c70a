import { randomBytes, randomUUID } from 'node:crypto';
import { closeRedis, clusterKeySlot, openRedis } from '@dirsync/jobs';
import { useTestRedisCluster, type TestRedisCluster } from '@dirsync/testkit';
import { accountFullLimitKey, accountLimitKey, acquireSyncSlots, countSlots, hostLimitKey, resolveSyncLimits } from '../src/limits.ts';

// The sync limits on a 3-node Redis Cluster, reached through a seed node that does not serve
// their keys: every script touches one key, so the cluster client routes it whole.

let cluster: TestRedisCluster;
const prefix = `dirsync-test-limits-cluster-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  cluster = await useTestRedisCluster();
}, 120_000);

afterAll(async () => {
  await cluster?.deleteKeys(prefix);
});

test('an account\'s limit keys share its hash tag, and different accounts spread over the nodes', async () => {
  const accounts = Array.from({ length: 24 }, () => randomUUID());
  for (const accountId of accounts) {
    expect(clusterKeySlot(accountFullLimitKey(prefix, accountId))).toBe(clusterKeySlot(accountLimitKey(prefix, accountId)));
  }
  const owners = await Promise.all(accounts.map((accountId) => cluster.ownerOf(clusterKeySlot(accountLimitKey(prefix, accountId)))));
  expect(new Set(owners).size).toBe(3);
});

test('slots are counted, refused and given back through a seed that serves none of the keys', async () => {
  const accountId = randomUUID();
  const host = 'ldap.customer.example:636';
  const seed = await cluster.nonOwnerUrl(clusterKeySlot(hostLimitKey(prefix, host)));
  const redis = openRedis({ url: seed, mode: 'cluster' }, 'blocking');
  try {
    const limits = resolveSyncLimits({ accountConcurrency: 3, accountFullConcurrency: 1, hostConcurrency: 2, leaseMs: 5_000, renewEveryMs: 1_000 });
    const full = await acquireSyncSlots(redis, prefix, { accountId, host, full: true }, limits);
    const delta = await acquireSyncSlots(redis, prefix, { accountId, host, full: false }, limits);
    expect([full.ok, delta.ok]).toEqual([true, true]);
    expect(await acquireSyncSlots(redis, prefix, { accountId, host, full: true }, limits)).toEqual({ ok: false, blockedBy: 'account-full' });
    expect(await acquireSyncSlots(redis, prefix, { accountId, host, full: false }, limits)).toEqual({ ok: false, blockedBy: 'host' });
    expect(await countSlots(redis, accountLimitKey(prefix, accountId))).toBe(2);
    expect(await countSlots(redis, hostLimitKey(prefix, host))).toBe(2);
    if (full.ok) await full.slots.release();
    if (delta.ok) await delta.slots.release();
    expect(await countSlots(redis, accountLimitKey(prefix, accountId))).toBe(0);
    expect(await countSlots(redis, hostLimitKey(prefix, host))).toBe(0);
  } finally {
    await closeRedis(redis);
  }
});
