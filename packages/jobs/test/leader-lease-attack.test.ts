import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createTestQueuePrefix, testRedisUrl, waitFor, type TestQueuePrefix } from '@dirsync/testkit';
import { installationMetricsLeaseKey, leaderLeaseKey, startLeaderElection, type LeaderElection } from '../src/index.ts';

// The lease under the conditions that break elections: a process stopped while its attempt is in
// flight, a leader whose event loop stalls past the lease's lifetime, and installations whose
// prefixes look alike.

const leaseHolderScript = fileURLToPath(new URL('./support/lease-holder.ts', import.meta.url));
const fast = { ttlMs: 2_000, renewEveryMs: 200 };

let prefix: TestQueuePrefix;
let redis: Redis;
const teardown: Array<() => Promise<unknown>> = [];

beforeAll(() => {
  prefix = createTestQueuePrefix('leader-attack');
  redis = new Redis(testRedisUrl);
});

afterEach(async () => {
  while (teardown.length > 0) await teardown.pop()?.();
});

afterAll(async () => {
  await prefix.cleanup();
  redis.disconnect();
});

let keys = 0;
function freshKey(): string {
  keys += 1;
  return leaderLeaseKey(prefix.prefix, `attack-${keys}`);
}

function elect(key: string, timing: { ttlMs: number; renewEveryMs: number } = fast): LeaderElection {
  const election = startLeaderElection({ connection: testRedisUrl, key, timing });
  teardown.push(() => election.close());
  return election;
}

test('a process stopped while its first attempt is in flight leaves no lease behind for the others to wait out', async () => {
  const key = freshKey();
  // A lease far longer than the test: a key left behind would block the others for a minute.
  const election = startLeaderElection({ connection: testRedisUrl, key, timing: { ttlMs: 60_000, renewEveryMs: 10_000 } });
  // Closed at once: the attempt (connect, renewal, SET NX) is still under way and takes the key.
  await election.close();
  expect(election.isLeader()).toBe(false);
  expect(await redis.get(key)).toBeNull();
});

test('a leader whose event loop stalls past the TTL no longer leads when it resumes, and does not win the lease back from the process that took it', async () => {
  const key = freshKey();
  const stalled = elect(key);
  await stalled.settled;
  expect(stalled.isLeader()).toBe(true);

  const child = spawn(process.execPath, [leaseHolderScript, JSON.stringify({ redisUrl: testRedisUrl, key, ...fast })], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  teardown.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
  await waitFor(() => output.includes('\n'), { timeoutMs: 30_000, what: 'the other process to join' });
  expect(output).toBe('follower\n');

  // The stall itself, not a wait: the whole thread is blocked (a long GC pause, a synchronous
  // computation), so no timer or renewal of this process runs until the key expired in Redis
  // and the other process, trying every 200 ms, has had ample time to take it.
  const stallUntil = Date.now() + fast.ttlMs + 3_000;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  while (Date.now() < stallUntil) Atomics.wait(cell, 0, 0, stallUntil - Date.now());

  // Before any of its timers ran again.
  expect(stalled.isLeader()).toBe(false);
  await waitFor(async () => (await redis.get(key))?.startsWith(`${hostname()}/${child.pid}/`) === true, { timeoutMs: 20_000, what: 'the other process to hold the lease' });
  // Several renewal periods later the former leader still leaves it to the other process.
  const until = Date.now() + 5 * fast.renewEveryMs;
  await waitFor(
    async () => {
      expect(stalled.isLeader()).toBe(false);
      expect(await redis.get(key)).toMatch(new RegExp(`^${hostname()}/${child.pid}/`));
      return Date.now() >= until;
    },
    { timeoutMs: 20_000, what: 'several renewal periods' },
  );
  expect(stalled.state().status).toBe('follower');
}, 60_000);

test('installations whose prefixes extend one another or carry hash tags elect separately', async () => {
  const prefixes = [prefix.prefix, `${prefix.prefix}-x`, `{${prefix.prefix}}`, `{${prefix.prefix}}-x`, `${prefix.prefix}{x}`];
  const leaseKeys = prefixes.map((name) => installationMetricsLeaseKey(name));
  expect(new Set(leaseKeys).size).toBe(prefixes.length);
  teardown.push(() => redis.del(...leaseKeys));
  const elections = leaseKeys.map((key) => [elect(key), elect(key)] as const);
  await Promise.all(elections.flat().map((election) => election.settled));
  for (const pair of elections) expect(pair.filter((election) => election.isLeader())).toHaveLength(1);
}, 60_000);
