import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { testRedisUrl, waitFor } from '@dirsync/testkit';
import { installationMetricsLeaseKey, startLeaderElection } from '../src/index.ts';
import { fastLease, leaseHolderScript, useElectionBed } from './support/election-bed.ts';

// The lease under the conditions that break elections: a process stopped while its attempt is in
// flight, a leader whose event loop stalls past the lease's lifetime, and installations whose
// prefixes look alike.

const bed = useElectionBed('leader-attack');
const { elect, freshKey } = bed;

test('a process stopped while its first attempt is in flight leaves no lease behind for the others to wait out', async () => {
  const key = freshKey();
  // A lease far longer than the test: a key left behind would block the others for a minute.
  const election = startLeaderElection({ connection: testRedisUrl, key, timing: { ttlMs: 60_000, renewEveryMs: 10_000 } });
  // Closed at once: the attempt (connect, renewal, SET NX) is still under way and takes the key.
  await election.close();
  expect(election.isLeader()).toBe(false);
  expect(await bed.redis().get(key)).toBeNull();
});

test('a leader whose event loop stalls past the TTL no longer leads when it resumes, and does not win the lease back from the process that took it', async () => {
  const key = freshKey();
  const stalled = elect({ key });
  await stalled.settled;
  expect(stalled.isLeader()).toBe(true);

  const child = spawn(process.execPath, [leaseHolderScript, JSON.stringify({ redisUrl: testRedisUrl, key, ...fastLease })], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  bed.afterTest(async () => {
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
  const stallUntil = Date.now() + fastLease.ttlMs + 3_000;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  while (Date.now() < stallUntil) Atomics.wait(cell, 0, 0, stallUntil - Date.now());

  // Before any of its timers ran again.
  expect(stalled.isLeader()).toBe(false);
  await waitFor(async () => (await bed.redis().get(key))?.startsWith(`${hostname()}/${child.pid}/`) === true, { timeoutMs: 20_000, what: 'the other process to hold the lease' });
  // Several renewal periods later the former leader still leaves it to the other process.
  const until = Date.now() + 5 * fastLease.renewEveryMs;
  await waitFor(
    async () => {
      expect(stalled.isLeader()).toBe(false);
      expect(await bed.redis().get(key)).toMatch(new RegExp(`^${hostname()}/${child.pid}/`));
      return Date.now() >= until;
    },
    { timeoutMs: 20_000, what: 'several renewal periods' },
  );
  expect(stalled.state().status).toBe('follower');
}, 60_000);

test('installations whose prefixes extend one another or carry hash tags elect separately', async () => {
  const prefixes = [bed.prefix().prefix, `${bed.prefix().prefix}-x`, `{${bed.prefix().prefix}}`, `{${bed.prefix().prefix}}-x`, `${bed.prefix().prefix}{x}`];
  const leaseKeys = prefixes.map((name) => installationMetricsLeaseKey(name));
  expect(new Set(leaseKeys).size).toBe(prefixes.length);
  bed.afterTest(() => bed.redis().del(...leaseKeys));
  const elections = leaseKeys.map((key) => [elect({ key }), elect({ key })] as const);
  await Promise.all(elections.flat().map((election) => election.settled));
  for (const pair of elections) expect(pair.filter((election) => election.isLeader())).toHaveLength(1);
}, 60_000);
