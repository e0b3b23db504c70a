import type { SyncJobData } from '@dirsync/contracts';
import { Queue } from 'bullmq';
import pino from 'pino';
import { accounts, close, connect, integrations, type Db } from '@dirsync/db';
import { scheduledJobId, SYNC_QUEUE } from '@dirsync/jobs';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import { createScheduler, jitterOffsetMs, type Scheduler, type TickResult } from '../src/index.ts';

// Three replicas against 1,200 integrations with the default crons and jitter: each claims
// about a third of every tick and every due slot is enqueued exactly once.

const INTEGRATIONS = 1_200;
const crons = { deltaCron: '*/5 * * * *', fullCron: '0 2 * * *' };

let database: TestDatabase;
let db: Db;
let handles: Db[];
let prefix: TestQueuePrefix;
let queue: Queue;
let replicas: Scheduler[];
let ids: string[];

beforeAll(async () => {
  database = await createTestDatabase('scheduler-replicas');
  db = connect(database.url, { max: 4 });
  const [account] = await db.insert(accounts).values({ name: 'many' }).returning();
  const rows = Array.from({ length: INTEGRATIONS }, (_, i) => ({
    accountId: account!.id,
    kind: 'ldap' as const,
    name: `directory-${i}`,
    settings: {},
  }));
  ids = [];
  for (let i = 0; i < rows.length; i += 400) {
    const inserted = await db.insert(integrations).values(rows.slice(i, i + 400)).returning({ id: integrations.id });
    ids.push(...inserted.map((row) => row.id));
  }
  prefix = createTestQueuePrefix('sched-replicas');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  // Each replica with its own pool, as separate processes would have.
  handles = [0, 1, 2].map(() => connect(database.url, { max: 4 }));
  const logger = pino({ level: 'silent' });
  replicas = handles.map((handle) =>
    createScheduler({ db: handle, connection: testRedisUrl, prefix: prefix.prefix, logger, rotations: false, reconcile: false, batchSize: 25 }),
  );
});

afterAll(async () => {
  await Promise.all(replicas.map((replica) => replica.stop()));
  await queue.close();
  await prefix.cleanup();
  await Promise.all(handles.map((handle) => close(handle)));
  await close(db);
  await database.drop();
});

const t = (iso: string) => new Date(iso);
const tickAll = (now: Date) => Promise.all(replicas.map((replica) => replica.tick(now)));

/** Every replica's share of what the tick enqueued: roughly a third each. */
function expectShared(results: TickResult[], total: number) {
  const shares = results.map((result) => result.enqueued.length);
  expect(shares.reduce((a, b) => a + b, 0)).toBe(total);
  for (const share of shares) {
    expect(share).toBeGreaterThan(total * 0.2);
    expect(share).toBeLessThan(total * 0.47);
  }
}

/** Jobs in the queue by job id, and the integration each one is for. */
async function queuedJobs() {
  const jobs = await queue.getJobs(['wait', 'active', 'delayed', 'prioritized'], 0, -1);
  return jobs.map((job) => ({ id: String(job.id), data: job.data as SyncJobData }));
}

async function runCount(): Promise<number> {
  const [row] = await db.$client<{ n: number }[]>`select count(*)::int as n from sync_runs`;
  return row!.n;
}

test('three replicas split each tick about evenly and enqueue every due slot once', async () => {
  // First sight: a full each, at once whatever the jitter, taken by one replica or another.
  const first = await tickAll(t('2024-05-01T10:07:00Z'));
  expectShared(first, INTEGRATIONS);
  const enqueued = first.flatMap((result) => result.enqueued);
  expect(new Set(enqueued.map((e) => e.integrationId))).toEqual(new Set(ids));
  expect(enqueued.every((e) => e.mode === 'full' && e.supersedesDelta && !e.deduplicated)).toBe(true);
  const fullJobs = await queuedJobs();
  expect(fullJobs).toHaveLength(INTEGRATIONS);
  expect(new Set(fullJobs.map((job) => job.id))).toEqual(new Set(ids.map((id) => scheduledJobId(id, 'full', t('2024-05-01T02:00:00Z').getTime()))));
  expect(await runCount()).toBe(INTEGRATIONS);

  // Nothing new at the same instant: no replica reads a single row.
  const quiet = await tickAll(t('2024-05-01T10:07:00Z'));
  expect(quiet.map((result) => result.considered)).toEqual([0, 0, 0]);
  expect(quiet.flatMap((result) => result.enqueued)).toEqual([]);

  // The 10:05 delta slot falls due at 10:05 plus each integration's own offset. Those whose due
  // time had passed at first sight claimed it then (under their full); the others now, each
  // joining its waiting full instead of adding a job.
  const catchUp = await tickAll(t('2024-05-01T10:09:59Z'));
  const caught = catchUp.flatMap((result) => result.enqueued);
  expect(new Set(caught.map((e) => e.integrationId))).toEqual(new Set(ids.filter((id) => jitterOffsetMs(id, crons) > 120_000)));
  expect(caught.every((e) => e.mode === 'delta' && e.slot.getTime() === t('2024-05-01T10:05:00Z').getTime() && e.deduplicated)).toBe(true);
  expectShared(catchUp, caught.length);
  expect(await queuedJobs()).toHaveLength(INTEGRATIONS);

  // Workers took the fulls. The 10:10 delta slot falls due at 10:10 plus each integration's own
  // offset: half way through the interval, the integrations whose offset has passed, no other.
  await queue.drain();
  const half = await tickAll(t('2024-05-01T10:12:30Z'));
  const early = new Set(half.flatMap((result) => result.enqueued).map((e) => e.integrationId));
  expect(early).toEqual(new Set(ids.filter((id) => jitterOffsetMs(id, crons) <= 150_000)));
  expect(early.size).toBeGreaterThan(INTEGRATIONS * 0.4);
  expect(early.size).toBeLessThan(INTEGRATIONS * 0.6);
  expectShared(half, early.size);

  // Before the next slot the rest have fallen due too: 1,200 delta jobs for 10:10, one each.
  const rest = await tickAll(t('2024-05-01T10:14:59Z'));
  expectShared(rest, INTEGRATIONS - early.size);
  const late = rest.flatMap((result) => result.enqueued);
  expect(late.every((e) => !early.has(e.integrationId))).toBe(true);
  const deltaJobs = await queuedJobs();
  expect(deltaJobs).toHaveLength(INTEGRATIONS);
  expect(new Set(deltaJobs.map((job) => job.id))).toEqual(new Set(ids.map((id) => scheduledJobId(id, 'delta', t('2024-05-01T10:10:00Z').getTime()))));
  expect(await runCount()).toBe(INTEGRATIONS * 2);

  // The same instant again, from every replica at once: nothing more.
  const again = await tickAll(t('2024-05-01T10:14:59Z'));
  expect(again.flatMap((result) => result.enqueued)).toEqual([]);
  expect(await runCount()).toBe(INTEGRATIONS * 2);
});
