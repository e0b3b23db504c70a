import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import {
  close,
  connect,
  createAccount,
  createIntegration,
  createKeyRing,
  type Db,
  generateSecretKey,
  getRun,
  type KeyRing,
  type Run,
} from '@dirsync/db';
import { SYNC_QUEUE } from '@dirsync/jobs';
import { createProvider, type Provider } from '@dirsync/providers';
import {
  createTestDatabase,
  createTestQueuePrefix,
  startSlapd,
  testDestinations,
  testRedisUrl,
  waitFor,
  type SlapdServer,
  type TestDatabase,
  type TestQueuePrefix,
} from '@dirsync/testkit';
import { accountFullLimitKey, accountLimitKey, countSlots, directoryHostOf, hostLimitKey, type SyncLimitOptions } from '../src/limits.ts';
import type { ProviderFactory } from '../src/processor.ts';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';

let server: SlapdServer;
let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let queue: Queue;
let redis: Redis;
let ring: KeyRing;

/** Workers give a job's slots back once the job is done, a moment after its run row: wait for it. */
async function slotsGivenBack(key: string): Promise<void> {
  await waitFor(async () => ((await countSlots(redis, key)) === 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 50, what: `the slots of ${key} to be given back` });
}

const workers: DirsyncWorker[] = [];

/** Syncs holding a provider (connected or about to connect to slapd) right now, and the most seen at once. */
const inFlight = { now: 0, max: 0 };
/** Integrations whose sync waits, once it holds its slots, until the test lets it go on. */
const held = new Map<string, { release: () => void; released: Promise<void> }>();
/** Runs a gate of {@link syncsReach} waits on, checked whenever a sync starts or ends. */
let onChange: (() => void) | undefined;

function hold(integrationId: string): () => void {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  held.set(integrationId, { release, released });
  return release;
}

const realFactory: ProviderFactory = (kind, settings, secret) => createProvider(kind, settings, secret, { destinations: testDestinations });

/** The real LDAP provider, counted while it lives; held integrations wait here with their slots taken. */
const countingFactory = (gate?: () => Promise<void>): ProviderFactory => async (kind, settings, secret, owner) => {
  inFlight.now += 1;
  inFlight.max = Math.max(inFlight.max, inFlight.now);
  onChange?.();
  let provider: Provider;
  try {
    await gate?.();
    const waiting = owner ? held.get(owner.integrationId) : undefined;
    if (waiting) await waiting.released;
    provider = await realFactory(kind, settings, secret, owner);
  } catch (error) {
    inFlight.now -= 1;
    onChange?.();
    throw error;
  }
  const closeProvider = provider.close.bind(provider);
  provider.close = async () => {
    try {
      await closeProvider();
    } finally {
      inFlight.now -= 1;
      onChange?.();
    }
  };
  return provider;
};

beforeAll(async () => {
  server = await startSlapd({ data: { users: 1500, groups: 20, membersPerGroup: 40 } });
  database = await createTestDatabase('fairness');
  db = connect(database.url, { max: 12 });
  prefix = createTestQueuePrefix('fairness');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  redis = new Redis(testRedisUrl);
  ring = createKeyRing({ current: generateSecretKey() });
}, 60_000);

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
  onChange = undefined;
  held.clear();
  inFlight.now = 0;
  inFlight.max = 0;
});

afterAll(async () => {
  await queue.close();
  redis.disconnect();
  await prefix.cleanup();
  await close(db);
  await database.drop();
  await server.stop();
});

function settings(): Record<string, unknown> {
  return {
    url: server.url,
    bindDn: server.readerDn,
    tls: { mode: 'none', allowInsecure: true },
    users: { baseDns: [`ou=people,${server.suffix}`] },
    groups: { baseDns: [`ou=groups,${server.suffix}`] },
    pageSize: 200,
    deltaOverlapSeconds: 5,
  };
}

function startWorkers(count: number, limits: SyncLimitOptions, factory: ProviderFactory): void {
  for (let i = 0; i < count; i += 1) {
    workers.push(
      createWorker({
        db,
        redisUrl: testRedisUrl,
        prefix: prefix.prefix,
        concurrency: 4,
        keyRing: ring,
        logger: pino({ level: 'silent' }),
        workerId: `fair-${i}`,
        destinations: testDestinations,
        createProvider: factory,
        lockRetryDelayMs: 100,
        controlConcurrency: 0,
        runRotations: false,
        syncLimits: { retryDelayMs: 100, ...limits },
      }),
    );
  }
}

async function newIntegration(accountId: string, name: string): Promise<string> {
  return (await createIntegration(db, { accountId, kind: 'ldap', name, settings: settings() }, { ring, plaintext: server.readerPassword })).id;
}

async function enqueue(integrationId: string, mode: 'full' | 'delta'): Promise<string> {
  const runId = randomUUID();
  await queue.add('sync', { integrationId, runId, mode, trigger: 'schedule', dryRun: false }, { jobId: `run.${runId}`, attempts: 1 });
  return runId;
}

async function ended(runIds: readonly string[], timeoutMs = 120_000): Promise<Run[]> {
  return waitFor(
    async () => {
      const runs = await Promise.all(runIds.map((id) => getRun(db, id)));
      return runs.every((run) => run && !['queued', 'running', 'retrying'].includes(run.status)) ? (runs as Run[]) : undefined;
    },
    { timeoutMs, intervalMs: 100, what: `${runIds.length} runs to end` },
  );
}

/** The most runs whose [startedAt, finishedAt] intervals overlap at one instant. */
function maxOverlap(runs: readonly Run[]): number {
  const events = runs.flatMap((run) => [
    { at: run.startedAt!.getTime(), step: 1 },
    { at: run.finishedAt!.getTime(), step: -1 },
  ]);
  // Ends sort before starts at the same instant: a run that ends as another starts did not overlap it.
  events.sort((a, b) => a.at - b.at || a.step - b.step);
  let now = 0;
  let max = 0;
  for (const event of events) {
    now += event.step;
    max = Math.max(max, now);
  }
  return max;
}

test('an account\'s big full syncs queued first never hold the slots its small deltas need', async () => {
  const accountId = (await createAccount(db, { name: 'fair-account' })).id;
  const fulls = await Promise.all([1, 2, 3].map((i) => newIntegration(accountId, `full-${i}`)));
  const deltas = await Promise.all([1, 2, 3, 4, 5].map((i) => newIntegration(accountId, `delta-${i}`)));
  const limits = { accountConcurrency: 4, accountFullConcurrency: 1, hostConcurrency: 16 };
  // Two workers of four slots each: eight slots, enough for all eight syncs at once without limits.
  startWorkers(2, limits, countingFactory());

  // The delta integrations' first syncs read everything (no cursor yet): full syncs, one at a time.
  const firsts = await ended(await Promise.all(deltas.map((id) => enqueue(id, 'delta'))));
  expect(firsts.map((run) => [run.status, run.mode])).toEqual(deltas.map(() => ['succeeded', 'full']));
  expect(maxOverlap(firsts)).toBe(1);

  for (const id of fulls) hold(id);
  const fullRuns: string[] = [];
  for (const id of fulls) fullRuns.push(await enqueue(id, 'full'));
  const deltaRuns: string[] = [];
  for (const id of deltas) deltaRuns.push(await enqueue(id, 'delta'));

  // Every delta finishes while the full syncs are held (one of them running with its slots taken).
  const deltaResults = await ended(deltaRuns);
  expect(deltaResults.map((run) => [run.status, run.mode, run.attempt])).toEqual(deltas.map(() => ['succeeded', 'delta', 1]));
  const fullStates = await Promise.all(fullRuns.map((id) => getRun(db, id)));
  const started = fullStates.filter((run) => run?.startedAt);
  expect(started).toHaveLength(1);
  expect(await countSlots(redis, accountFullLimitKey(prefix.prefix, accountId))).toBe(1);

  for (const { release } of held.values()) release();
  const fullResults = await ended(fullRuns);
  // Turned away while another full ran, yet on their first attempt: waiting spends no attempt.
  expect(fullResults.map((run) => [run.status, run.mode, run.attempt])).toEqual(fulls.map(() => ['succeeded', 'full', 1]));
  expect(maxOverlap(fullResults)).toBe(1);
  const everyRun = [...deltaResults, ...fullResults];
  expect(maxOverlap(everyRun)).toBeLessThanOrEqual(4);
  // The two fulls that waited started only after the last delta had finished.
  const lastDeltaEnd = Math.max(...deltaResults.map((run) => run.finishedAt!.getTime()));
  const waited = fullResults.filter((run) => run.id !== started[0]!.id);
  for (const run of waited) expect(run.startedAt!.getTime()).toBeGreaterThanOrEqual(lastDeltaEnd);
  await slotsGivenBack(accountLimitKey(prefix.prefix, accountId));
}, 180_000);

test('one directory server never serves more syncs at once than the host limit, whatever the accounts and worker slots', async () => {
  const integrations: string[] = [];
  for (let i = 0; i < 8; i += 1) {
    const accountId = (await createAccount(db, { name: `host-account-${i}` })).id;
    integrations.push(await newIntegration(accountId, `host-${i}`));
  }
  const hostLimit = 2;
  let finished = 0;
  // A sync that got its slots waits until as many syncs as the limit allows hold theirs (or
  // fewer remain): the limit is then reached every time, and any sync let past it is counted.
  const reachLimit = () =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (inFlight.now >= Math.min(hostLimit, integrations.length - finished)) resolve();
      };
      const previous = onChange;
      onChange = () => {
        previous?.();
        check();
      };
      check();
    });
  startWorkers(2, { accountConcurrency: 4, hostConcurrency: hostLimit }, countingFactory(reachLimit));

  const runIds = await Promise.all(integrations.map((id) => enqueue(id, 'full')));
  const runs = await waitFor(
    async () => {
      const found = await Promise.all(runIds.map((id) => getRun(db, id)));
      finished = found.filter((run) => run?.finishedAt).length;
      onChange?.();
      return found.every((run) => run?.status === 'succeeded') ? (found as Run[]) : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 100, what: 'every sync of the shared server to succeed' },
  );
  expect(inFlight.max).toBe(hostLimit);
  expect(maxOverlap(runs)).toBeLessThanOrEqual(hostLimit);
  expect(runs.every((run) => run.attempt === 1)).toBe(true);
  const host = directoryHostOf(settings());
  expect(host).toBe(`127.0.0.1:${new URL(server.url).port}`);
  await slotsGivenBack(hostLimitKey(prefix.prefix, host!));
}, 180_000);
