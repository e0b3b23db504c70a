import type { SyncJobData } from '@dirsync/contracts';
import { Writable } from 'node:stream';
import { Queue } from 'bullmq';
import pino from 'pino';
import { accounts, close, connect, integrations, type Db } from '@dirsync/db';
import { createEnqueueClient, scheduledJobId, SYNC_QUEUE } from '@dirsync/jobs';
import {
  createTestDatabase,
  createTestQueuePrefix,
  testRedisUrl,
  waitFor,
  type TestDatabase,
  type TestQueuePrefix,
} from '@dirsync/testkit';
import { createScheduler, type Scheduler, type TickResult } from '../src/index.ts';

let database: TestDatabase;
let db: Db;
let accountId: string;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  database = await createTestDatabase('scheduler');
  db = connect(database.url, { max: 4 });
  const [account] = await db.insert(accounts).values({ name: 'acme' }).returning();
  accountId = account!.id;
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
  // Later tests tick with other clocks; earlier tests' integrations must not take part.
  await db.$client`update integrations set enabled = false`;
});

const t = (iso: string) => new Date(iso);

// A pino logger whose lines the test can read.
function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

interface Setup {
  queue: Queue;
  prefix: TestQueuePrefix;
  scheduler(options?: { db?: Db }): Scheduler;
  lines: Array<Record<string, unknown>>;
}

// Each test has its own queue prefix, so job counts are the test's own.
function setup(label: string): Setup {
  const prefix = createTestQueuePrefix(`sched-${label}`);
  cleanups.push(() => prefix.cleanup());
  const queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  cleanups.push(() => queue.close());
  const { logger, lines } = captureLogger();
  return {
    queue,
    prefix,
    lines,
    scheduler(options = {}) {
      // Jitter off: these tests pin slot times to the cron's own (scheduler-replicas.test.ts covers jitter).
      const scheduler = createScheduler({ db: options.db ?? db, connection: testRedisUrl, prefix: prefix.prefix, logger, jitterMaxMs: 0 });
      cleanups.push(() => scheduler.stop());
      return scheduler;
    },
  };
}

let integrationCount = 0;
async function addIntegration(values: Partial<typeof integrations.$inferInsert> = {}) {
  integrationCount += 1;
  const [row] = await db
    .insert(integrations)
    .values({ accountId, kind: 'ldap', name: `directory-${integrationCount}`, settings: {}, ...values })
    .returning();
  return row!;
}

async function jobsOf(queue: Queue, integrationId: string) {
  const jobs = await queue.getJobs(['wait', 'active', 'delayed', 'prioritized', 'completed', 'failed']);
  return jobs
    .filter((job) => (job.data as SyncJobData).integrationId === integrationId)
    .map((job) => ({ id: String(job.id), data: job.data as SyncJobData }));
}

async function runsOf(integrationId: string) {
  return db.query.syncRuns.findMany({ where: (run, { eq }) => eq(run.integrationId, integrationId) });
}

async function slotsOf(integrationId: string) {
  const row = await db.query.integrations.findFirst({ where: (i, { eq }) => eq(i.id, integrationId) });
  return { full: row?.fullScheduledFor?.toISOString() ?? null, delta: row?.deltaScheduledFor?.toISOString() ?? null };
}

function enqueuedFor(results: TickResult[], integrationId: string) {
  return results.flatMap((r) => r.enqueued).filter((e) => e.integrationId === integrationId);
}

test('three replicas ticking together enqueue one job and one run per due slot', async () => {
  const s = setup('replicas');
  const handles = [connect(database.url, { max: 2 }), connect(database.url, { max: 2 }), connect(database.url, { max: 2 })];
  cleanups.push(() => Promise.all(handles.map((handle) => close(handle))));
  const replicas = handles.map((handle) => s.scheduler({ db: handle }));
  const watched = await Promise.all(Array.from({ length: 8 }, () => addIntegration()));

  // First sight: a full sync each (it covers the delta slot of the same tick).
  const first = await Promise.all(replicas.map((replica) => replica.tick(t('2024-05-01T10:07:00Z'))));
  for (const integration of watched) {
    const enqueued = enqueuedFor(first, integration.id);
    expect(enqueued).toHaveLength(1);
    expect(enqueued[0]).toMatchObject({ mode: 'full', slot: t('2024-05-01T02:00:00Z'), supersedesDelta: true, deduplicated: false });
    const jobs = await jobsOf(s.queue, integration.id);
    expect(jobs).toEqual([
      {
        id: scheduledJobId(integration.id, 'full', t('2024-05-01T02:00:00Z').getTime()),
        data: expect.objectContaining({ mode: 'full', trigger: 'schedule', dryRun: false, scheduledFor: '2024-05-01T02:00:00.000Z' }),
      },
    ]);
    const runs = await runsOf(integration.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      id: jobs[0]!.data.runId,
      jobId: jobs[0]!.id,
      status: 'queued',
      trigger: 'schedule',
      modeRequested: 'full',
      requestedBy: 'scheduler',
    });
    expect(await slotsOf(integration.id)).toEqual({ full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T10:05:00.000Z' });
  }

  // Same slot again, a few seconds later: nothing new.
  const again = await Promise.all(replicas.map((replica) => replica.tick(t('2024-05-01T10:07:30Z'))));
  expect(again.flatMap((r) => r.enqueued)).toHaveLength(0);

  // A full waiting is joined by the next delta slot instead of gaining a second job.
  const joined = await Promise.all(replicas.map((replica) => replica.tick(t('2024-05-01T10:10:00Z'))));
  for (const integration of watched) {
    expect(enqueuedFor(joined, integration.id)).toEqual([expect.objectContaining({ mode: 'delta', deduplicated: true })]);
    expect(await jobsOf(s.queue, integration.id)).toHaveLength(1);
    expect(await runsOf(integration.id)).toHaveLength(1);
  }

  // Workers took the jobs: each following slot gives one new job and run per integration,
  // whichever replica wins it.
  const rounds = [
    ['2024-05-01T10:15:20Z', '2024-05-01T10:15:00.000Z'],
    ['2024-05-01T10:20:40Z', '2024-05-01T10:20:00.000Z'],
    ['2024-05-01T10:25:00Z', '2024-05-01T10:25:00.000Z'],
  ] as const;
  for (const [index, [now, slot]] of rounds.entries()) {
    await s.queue.drain();
    const results = await Promise.all(replicas.map((replica) => replica.tick(t(now))));
    for (const integration of watched) {
      expect(enqueuedFor(results, integration.id)).toEqual([
        expect.objectContaining({ mode: 'delta', slot: t(slot), deduplicated: false }),
      ]);
      const jobs = await jobsOf(s.queue, integration.id);
      expect(jobs.map((job) => job.id)).toEqual([scheduledJobId(integration.id, 'delta', t(slot).getTime())]);
      expect(await runsOf(integration.id)).toHaveLength(index + 2);
      expect((await slotsOf(integration.id)).delta).toBe(slot);
    }
  }
});

test('with the queue drained, each new slot adds a job of its own', async () => {
  const s = setup('next-slot');
  const scheduler = s.scheduler();
  const integration = await addIntegration({
    fullScheduledFor: t('2024-05-01T02:00:00Z'),
    deltaScheduledFor: t('2024-05-01T10:00:00Z'),
  });
  const first = await scheduler.tick(t('2024-05-01T10:05:10Z'));
  expect(enqueuedFor([first], integration.id)).toEqual([
    expect.objectContaining({ mode: 'delta', slot: t('2024-05-01T10:05:00Z'), deduplicated: false }),
  ]);
  // A worker takes the job (and releases the waiting slot, as workers do).
  await s.queue.drain();
  const second = await scheduler.tick(t('2024-05-01T10:10:10Z'));
  const [next] = enqueuedFor([second], integration.id);
  expect(next).toMatchObject({ mode: 'delta', slot: t('2024-05-01T10:10:00Z'), deduplicated: false });
  expect(next?.jobId).toBe(scheduledJobId(integration.id, 'delta', t('2024-05-01T10:10:00Z').getTime()));
  expect(await runsOf(integration.id)).toHaveLength(2);
});

test('after an hour of downtime one catch-up job per mode, not one per missed slot', async () => {
  const s = setup('downtime');
  const scheduler = s.scheduler();
  // Last ticked at 01:57: the 02:00 full and eleven 5-minute deltas were missed.
  const integration = await addIntegration({
    fullScheduledFor: t('2024-04-30T02:00:00Z'),
    deltaScheduledFor: t('2024-05-01T01:55:00Z'),
  });
  const result = await scheduler.tick(t('2024-05-01T02:57:00Z'));
  expect(enqueuedFor([result], integration.id)).toEqual([
    expect.objectContaining({ mode: 'full', slot: t('2024-05-01T02:00:00Z'), supersedesDelta: true }),
  ]);
  expect(await jobsOf(s.queue, integration.id)).toHaveLength(1);
  expect(await slotsOf(integration.id)).toEqual({ full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T02:55:00.000Z' });

  // Deltas alone: an hour later, one catch-up delta.
  await s.queue.drain();
  const later = await scheduler.tick(t('2024-05-01T03:58:00Z'));
  expect(enqueuedFor([later], integration.id)).toEqual([expect.objectContaining({ mode: 'delta', slot: t('2024-05-01T03:55:00Z') })]);
  expect(await jobsOf(s.queue, integration.id)).toHaveLength(1);
  expect(await runsOf(integration.id)).toHaveLength(2);
});

test('a full and a delta due in the same tick enqueue only the full', async () => {
  const s = setup('supersede');
  const scheduler = s.scheduler();
  const integration = await addIntegration({
    fullScheduledFor: t('2024-04-30T02:00:00Z'),
    deltaScheduledFor: t('2024-05-01T01:55:00Z'),
  });
  const result = await scheduler.tick(t('2024-05-01T02:00:05Z'));
  expect(enqueuedFor([result], integration.id)).toEqual([expect.objectContaining({ mode: 'full', supersedesDelta: true })]);
  const jobs = await jobsOf(s.queue, integration.id);
  expect(jobs.map((job) => job.data.mode)).toEqual(['full']);
  expect(await slotsOf(integration.id)).toEqual({ full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T02:00:00.000Z' });
});

test('a tick reads only integrations whose next due time has come; a schedule edit makes one due at once', async () => {
  const s = setup('next-due');
  const scheduler = s.scheduler();
  const integration = await addIntegration({
    deltaCron: '0 * * * *',
    fullScheduledFor: t('2024-05-01T02:00:00Z'),
    deltaScheduledFor: t('2024-05-01T10:00:00Z'),
  });
  // Looked at once (never before), then not until 11:00.
  expect((await scheduler.tick(t('2024-05-01T10:07:00Z'))).considered).toBe(1);
  expect((await scheduler.tick(t('2024-05-01T10:08:00Z'))).considered).toBe(0);
  // Every five minutes from now on: the next tick looks again and finds the 10:10 slot.
  await db.$client`update integrations set delta_cron = '*/5 * * * *' where id = ${integration.id}`;
  const edited = await scheduler.tick(t('2024-05-01T10:10:30Z'));
  expect(edited.considered).toBe(1);
  expect(enqueuedFor([edited], integration.id)).toEqual([expect.objectContaining({ mode: 'delta', slot: t('2024-05-01T10:10:00Z') })]);
  expect((await scheduler.tick(t('2024-05-01T10:14:59Z'))).considered).toBe(0);
  expect((await scheduler.tick(t('2024-05-01T10:15:00Z'))).considered).toBe(1);
});

test('a disabled integration gets nothing', async () => {
  const s = setup('disabled');
  const scheduler = s.scheduler();
  const integration = await addIntegration({ enabled: false });
  const result = await scheduler.tick(t('2024-05-01T10:07:00Z'));
  expect(enqueuedFor([result], integration.id)).toHaveLength(0);
  expect(await jobsOf(s.queue, integration.id)).toHaveLength(0);
  expect(await runsOf(integration.id)).toHaveLength(0);
  expect(await slotsOf(integration.id)).toEqual({ full: null, delta: null });
});

test('an integration with an invalid cron is reported once and skipped; the others are scheduled', async () => {
  const s = setup('bad-cron');
  const scheduler = s.scheduler();
  const bad = await addIntegration({ deltaCron: 'every five minutes' });
  const good = await addIntegration();
  const first = await scheduler.tick(t('2024-05-01T10:07:00Z'));
  expect(first.failed).toEqual([{ integrationId: bad.id, error: expect.stringContaining('"every five minutes"') }]);
  expect(enqueuedFor([first], good.id)).toHaveLength(1);
  expect(await jobsOf(s.queue, bad.id)).toHaveLength(0);

  const second = await scheduler.tick(t('2024-05-01T10:10:00Z'));
  expect(second.failed.map((f) => f.integrationId)).toEqual([bad.id]);
  const warnings = s.lines.filter((line) => line['msg'] === 'integration skipped: invalid schedule');
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatchObject({ integrationId: bad.id, level: 40 });
  // Fixed later: scheduled from the next tick on.
  await db.$client`update integrations set delta_cron = '*/5 * * * *' where id = ${bad.id}`;
  const third = await scheduler.tick(t('2024-05-01T10:15:00Z'));
  expect(enqueuedFor([third], bad.id)).toEqual([expect.objectContaining({ mode: 'full' })]);
});

test('a scheduled full absorbs a waiting manual delta and records it on that run', async () => {
  const s = setup('absorb');
  const scheduler = s.scheduler();
  const integration = await addIntegration({
    fullScheduledFor: t('2024-04-30T02:00:00Z'),
    deltaScheduledFor: t('2024-05-01T02:00:00Z'),
  });
  const client = createEnqueueClient({ connection: testRedisUrl, prefix: s.prefix.prefix });
  cleanups.push(() => client.close());
  const manual = await client.enqueueSync({ integrationId: integration.id, mode: 'delta', trigger: 'manual', requestedBy: 'ops' });
  await db.$client`insert into sync_runs (id, integration_id, job_id, mode_requested, trigger, requested_by)
    values (${manual.runId}, ${integration.id}, ${manual.jobId}, 'delta', 'manual', 'ops')`;

  const result = await scheduler.tick(t('2024-05-01T02:01:00Z'));
  expect(enqueuedFor([result], integration.id)).toEqual([
    expect.objectContaining({ mode: 'full', jobId: manual.jobId, runId: manual.runId, deduplicated: true, upgraded: true }),
  ]);
  const jobs = await jobsOf(s.queue, integration.id);
  expect(jobs).toEqual([{ id: manual.jobId, data: expect.objectContaining({ mode: 'full', trigger: 'manual' }) }]);
  const runs = await runsOf(integration.id);
  expect(runs).toEqual([expect.objectContaining({ id: manual.runId, modeRequested: 'full', trigger: 'manual' })]);
});

test('when Redis cannot be reached the claim is given back for the next tick', async () => {
  const s = setup('redis-down');
  const integration = await addIntegration({
    fullScheduledFor: t('2024-05-01T02:00:00Z'),
    deltaScheduledFor: t('2024-05-01T10:00:00Z'),
  });
  const { logger } = captureLogger();
  const unreachable = createScheduler({
    db,
    connection: { host: '127.0.0.1', port: 1, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, lazyConnect: true },
    prefix: s.prefix.prefix,
    logger,
    jitterMaxMs: 0,
  });
  cleanups.push(() => unreachable.stop());
  const failed = await unreachable.tick(t('2024-05-01T10:05:30Z'));
  expect(failed.failed.map((f) => f.integrationId)).toContain(integration.id);
  expect(await slotsOf(integration.id)).toEqual({ full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T10:00:00.000Z' });
  expect(await runsOf(integration.id)).toHaveLength(0);

  const recovered = await s.scheduler().tick(t('2024-05-01T10:06:00Z'));
  expect(enqueuedFor([recovered], integration.id)).toEqual([expect.objectContaining({ mode: 'delta', slot: t('2024-05-01T10:05:00Z') })]);
});

test('start ticks right away and stop waits for the tick and closes connections', async () => {
  const s = setup('start-stop');
  const integration = await addIntegration();
  const scheduler = s.scheduler();
  scheduler.start();
  await waitFor(async () => (await jobsOf(s.queue, integration.id)).length === 1, { what: 'the first tick to enqueue' });
  await scheduler.stop();
  await scheduler.stop();
  expect(() => scheduler.start()).toThrow(/stopped/);
  expect(s.lines.some((line) => line['msg'] === 'scheduler stopped')).toBe(true);
});

test('refuses an invalid tick schedule', () => {
  const { logger } = captureLogger();
  expect(() => createScheduler({ db, connection: testRedisUrl, logger, tickCron: 'often' })).toThrow(/"often"/);
});
