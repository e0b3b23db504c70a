import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import {
  createTestQueuePrefix,
  startThrowawayRedis,
  testRedisUrl,
  useTestRedisCluster,
  waitFor,
  type TestRedisCluster,
} from '@dirsync/testkit';
import { clusterKeySlot, installationMetricsLeaseKey, leaderLeaseKey, type LeaderElection } from '../src/index.ts';
import { fastLease, leaseHolderScript, useElectionBed } from './support/election-bed.ts';

// Elections on real Redis (a standalone server, a throwaway one the tests stop, and the 3-node
// test cluster): at most one leader at any time, handed over on close at once and after the TTL
// when the leader dies, never claimed without Redis.

const bed = useElectionBed('leader-lease');
const { elect, freshKey } = bed;

function leaders(elections: readonly LeaderElection[]): LeaderElection[] {
  return elections.filter((election) => election.isLeader());
}

test('of three processes on one lease exactly one leads while the lease is renewed, and the key names it', async () => {
  const key = freshKey();
  const changes: boolean[] = [];
  const elections = [elect({ key, onChange: (leader) => changes.push(leader) }), elect({ key }), elect({ key })];
  await Promise.all(elections.map((election) => election.settled));
  const [leader] = leaders(elections);
  expect(leaders(elections)).toHaveLength(1);
  for (const election of elections) expect(election.state().status).toBe(election === leader ? 'leader' : 'follower');
  expect(await bed.redis().get(key)).toMatch(new RegExp(`^${hostname()}/${process.pid}/`));

  // Watched across several renewals (each one pushes the key's expiry up again).
  let renewals = 0;
  let lastTtl = await bed.redis().pttl(key);
  await waitFor(
    async () => {
      expect(leaders(elections)).toEqual([leader]);
      const ttl = await bed.redis().pttl(key);
      expect(ttl).toBeGreaterThan(0);
      if (ttl > lastTtl) renewals += 1;
      lastTtl = ttl;
      return renewals >= 4;
    },
    { timeoutMs: 30_000, intervalMs: 40, what: 'four renewals of the lease' },
  );
  expect(changes).toEqual(elections[0] === leader ? [true] : []);
}, 60_000);

test('a leader that closes frees the lease, and another takes over at its next attempt rather than after the TTL', async () => {
  const key = freshKey();
  // A lease far longer than the test's deadline: only the release can explain a takeover.
  const timing = { ttlMs: 60_000, renewEveryMs: 200 };
  const elections = [elect({ key, timing }), elect({ key, timing }), elect({ key, timing })];
  await Promise.all(elections.map((election) => election.settled));
  const [leader] = leaders(elections);
  if (leader === undefined) throw new Error('no leader');
  await leader.close();
  expect(leader.isLeader()).toBe(false);
  const rest = elections.filter((election) => election !== leader);
  const next = await waitFor(() => leaders(rest)[0], { timeoutMs: 20_000, what: 'another process to take the lease' });
  expect(leaders(rest)).toEqual([next]);
  expect(next.state()).toEqual({ status: 'leader', detail: 'this process holds the lease' });
}, 60_000);

test('a killed leader keeps the lease until its TTL runs out; then another process takes it', async () => {
  const key = freshKey();
  const child = spawn(process.execPath, [leaseHolderScript, JSON.stringify({ redisUrl: testRedisUrl, key, ...fastLease })], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  bed.afterTest(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`lease holder exited: ${output}`);
      return output.includes('\n');
    },
    { timeoutMs: 30_000, what: 'the lease holder to join' },
  );
  expect(output).toBe('leader\n');

  const survivor = elect({ key });
  await survivor.settled;
  expect(survivor.state().status).toBe('follower');

  child.kill('SIGKILL');
  await exited;
  // Nothing freed it: the dead process's value stays until the key expires.
  expect(await bed.redis().get(key)).toMatch(new RegExp(`^${hostname()}/${child.pid}/`));
  await waitFor(() => survivor.isLeader(), { timeoutMs: 20_000, what: 'the survivor to take the lease' });
  expect(await bed.redis().get(key)).toMatch(new RegExp(`^${hostname()}/${process.pid}/`));
}, 60_000);

test('a lease that is no longer ours is neither renewed nor deleted by its former holder', async () => {
  const key = freshKey();
  const changes: boolean[] = [];
  const election = elect({ key, onChange: (leader) => changes.push(leader) });
  await election.settled;
  expect(election.isLeader()).toBe(true);

  // As if the lease had expired unnoticed and another process had taken it.
  await bed.redis().set(key, 'another-process', 'PX', 600_000);
  await waitFor(() => !election.isLeader(), { timeoutMs: 20_000, what: 'the former holder to see it lost the lease' });
  expect(election.state().status).toBe('follower');
  expect(changes).toEqual([true, false]);
  expect(await bed.redis().get(key)).toBe('another-process');
  // Its renewal did not shorten the other holder's lease to its own TTL.
  expect(await bed.redis().pttl(key)).toBeGreaterThan(500_000);

  await election.close();
  expect(await bed.redis().get(key)).toBe('another-process');
}, 60_000);

test('without Redis no process claims the lease, and says why; with Redis back one leads again', async () => {
  const server = await startThrowawayRedis();
  bed.afterTest(() => server.stop());
  const key = leaderLeaseKey('throwaway', 'installation-metrics');
  const errors: Error[] = [];
  const first = elect({ key, connection: server.url, onError: (error) => errors.push(error) });
  await first.settled;
  expect(first.isLeader()).toBe(true);

  await server.stop();
  // A leader keeps its role until its lease runs out, then gives it up.
  await waitFor(() => !first.isLeader(), { timeoutMs: 20_000, what: 'the leader to give up the lease it cannot renew' });
  expect(first.state().status).toBe('unavailable');
  expect(first.state().detail).toMatch(/^not claimed: the lease cannot be reached \(.+\)$/);
  expect(first.state().detail).not.toContain(String(server.port));
  expect(errors.length).toBeGreaterThan(0);

  const second = elect({ key, connection: server.url });
  await second.settled;
  expect(second.isLeader()).toBe(false);
  expect(second.state().status).toBe('unavailable');

  await server.start();
  const elections = [first, second];
  await waitFor(() => leaders(elections).length === 1, { timeoutMs: 30_000, what: 'one process to lead once Redis is back' });
}, 90_000);

test('two installations (queue prefixes) on one Redis elect a leader each', async () => {
  const other = createTestQueuePrefix('leader-lease-other');
  bed.afterTest(() => other.cleanup());
  const ours = [elect({ key: installationMetricsLeaseKey(bed.prefix().prefix) }), elect({ key: installationMetricsLeaseKey(bed.prefix().prefix) })];
  const theirs = [elect({ key: installationMetricsLeaseKey(other.prefix) }), elect({ key: installationMetricsLeaseKey(other.prefix) })];
  await Promise.all([...ours, ...theirs].map((election) => election.settled));
  expect(leaders(ours)).toHaveLength(1);
  expect(leaders(theirs)).toHaveLength(1);
  expect(installationMetricsLeaseKey(bed.prefix().prefix)).toBe(`${bed.prefix().prefix}:dirsync:leader:{installation-metrics}`);
}, 60_000);

describe('on a 3-node Redis Cluster', () => {
  let cluster: TestRedisCluster;
  const clusterPrefix = `dirsync-test-cluster-leader-${process.pid}`;

  beforeAll(async () => {
    cluster = await useTestRedisCluster();
  }, 120_000);

  afterAll(async () => {
    await cluster?.deleteKeys(clusterPrefix);
  });

  test('through a node that does not serve the key, one of three leads, and a closed leader is replaced', async () => {
    const key = installationMetricsLeaseKey(clusterPrefix);
    const slot = clusterKeySlot(key);
    const connection = { url: await cluster.nonOwnerUrl(slot), mode: 'cluster' as const };
    const elections = [elect({ key, connection }), elect({ key, connection }), elect({ key, connection })];
    await Promise.all(elections.map((election) => election.settled));
    const [leader] = leaders(elections);
    expect(leaders(elections)).toHaveLength(1);
    for (const election of elections) expect(election.state().status).toBe(election === leader ? 'leader' : 'follower');

    const owner = new Redis(await cluster.ownerOf(slot), '127.0.0.1');
    try {
      expect(await owner.get(key)).toMatch(new RegExp(`^${hostname()}/${process.pid}/`));
      await leader?.close();
      const rest = elections.filter((election) => election !== leader);
      await waitFor(() => leaders(rest).length === 1, { timeoutMs: 20_000, what: 'another process to take the lease on the cluster' });
      expect(await owner.pttl(key)).toBeGreaterThan(0);
    } finally {
      owner.disconnect();
    }
  }, 120_000);
});
