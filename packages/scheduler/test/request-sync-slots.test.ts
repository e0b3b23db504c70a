import type { SyncJobData } from '@dirsync/contracts';
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import pino from 'pino';
import { accounts, close, connect, integrations, updateIntegration, type Db } from '@dirsync/db';
import { createEnqueueClient, SYNC_QUEUE, type EnqueueClient } from '@dirsync/jobs';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, type TestDatabase } from '@dirsync/testkit';
import { createScheduler, jitterOffsetMs, requestSync, type Scheduler, type SyncRequestInput, type TickResult } from '../src/index.ts';

// A sync asked for outside the schedule covers the slots already begun, so the scheduler does not
// follow it with a sync of its own for them (a console's "Start first sync", a "Sync All" between
// the nightly full slot and its jittered due time).

let database: TestDatabase;
let db: Db;
let accountId: string;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  database = await createTestDatabase('request-sync-slots');
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
const at = (base: string, plusMs: number) => new Date(t(base).getTime() + plusMs);
const hourly = { deltaCron: '0 * * * *', fullCron: '0 2 * * *' };

interface Setup {
  queue: Queue;
  scheduler: Scheduler;
  enqueue: EnqueueClient;
  ask(input: Omit<SyncRequestInput, 'requestedBy'>, now: Date): ReturnType<typeof requestSync>;
}

// Each test has its own queue prefix, so job counts are the test's own.
function setup(label: string, jitterMaxMs?: number): Setup {
  const prefix = createTestQueuePrefix(`cover-${label}`);
  cleanups.push(() => prefix.cleanup());
  const queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  cleanups.push(() => queue.close());
  const enqueue: EnqueueClient = createEnqueueClient({ connection: testRedisUrl, prefix: prefix.prefix });
  cleanups.push(() => enqueue.close());
  const scheduler = createScheduler({
    db,
    connection: testRedisUrl,
    prefix: prefix.prefix,
    logger: pino({ level: 'silent' }),
    rotations: false,
    reconcile: false,
    ...(jitterMaxMs === undefined ? {} : { jitterMaxMs }),
  });
  cleanups.push(() => scheduler.stop());
  return { queue, scheduler, enqueue, ask: (input, now) => requestSync({ db, enqueue }, { ...input, requestedBy: 'ops' }, { now }) };
}

async function addIntegration(values: Partial<typeof integrations.$inferInsert> = {}) {
  const [row] = await db
    .insert(integrations)
    .values({ accountId, kind: 'ldap', name: `directory-${randomUUID()}`, settings: {}, ...values })
    .returning();
  return row!;
}

/**
 * An integration whose stable jitter lies between `minMs` and `maxMs` with the given crons (its id
 * is drawn until it does), so that a time between a slot and its due time can be chosen.
 */
async function addJitteredIntegration(crons: typeof hourly, minMs: number, maxMs: number, values: Partial<typeof integrations.$inferInsert> = {}) {
  for (let draw = 0; draw < 1000; draw++) {
    const id = randomUUID();
    const offset = jitterOffsetMs(id, crons);
    if (offset >= minMs && offset <= maxMs) return { integration: await addIntegration({ id, ...crons, ...values }), offset };
  }
  throw new Error('no id with a jitter in range');
}

async function jobsOf(queue: Queue, integrationId: string) {
  const jobs = await queue.getJobs(['wait', 'active', 'delayed', 'prioritized', 'completed', 'failed']);
  return jobs.map((job) => job.data as SyncJobData).filter((data) => data.integrationId === integrationId);
}

async function slotsOf(integrationId: string) {
  const row = await db.query.integrations.findFirst({ where: (i, { eq }) => eq(i.id, integrationId) });
  return { full: row?.fullScheduledFor?.toISOString() ?? null, delta: row?.deltaScheduledFor?.toISOString() ?? null };
}

function enqueuedFor(results: TickResult[], integrationId: string) {
  return results.flatMap((r) => r.enqueued).filter((e) => e.integrationId === integrationId);
}

test('a new integration enabled and synced in full by hand gets no first sync from the scheduler', async () => {
  const s = setup('first-sync');
  // The console's wizard: created disabled, tested, then enabled with a full sync asked for.
  const wizard = await addIntegration({ enabled: false });
  const untouched = await addIntegration();
  const ticks = [await s.scheduler.tick(t('2024-05-01T10:07:00Z'))];

  await updateIntegration(db, wizard.id, { enabled: true });
  const manual = await s.ask({ integrationId: wizard.id, mode: 'full', trigger: 'api' }, t('2024-05-01T10:07:20Z'));
  expect(manual).toMatchObject({ mode: 'full', deduplicated: false });
  expect(await slotsOf(wizard.id)).toEqual({ full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T10:05:00.000Z' });

  ticks.push(await s.scheduler.tick(t('2024-05-01T10:07:30Z')));
  // The manual sync ran (a worker took its job); the next ticks before the next slot add nothing.
  await s.queue.drain();
  ticks.push(await s.scheduler.tick(t('2024-05-01T10:08:00Z')), await s.scheduler.tick(t('2024-05-01T10:09:59Z')));
  expect(enqueuedFor(ticks, wizard.id)).toEqual([]);
  // An integration nobody synced by hand got its first full sync (then, with its jitter, maybe a delta).
  expect(enqueuedFor(ticks, untouched.id)[0]).toMatchObject({ mode: 'full', slot: t('2024-05-01T02:00:00Z') });

  // The next slot is the scheduler's again: a delta, at its jittered due time.
  const offset = jitterOffsetMs(wizard.id, wizard);
  const next = await s.scheduler.tick(at('2024-05-01T10:10:00Z', offset));
  expect(enqueuedFor([next], wizard.id)).toEqual([expect.objectContaining({ mode: 'delta', slot: t('2024-05-01T10:10:00Z'), deduplicated: false })]);
  expect(await jobsOf(s.queue, wizard.id)).toEqual([expect.objectContaining({ mode: 'delta', trigger: 'schedule' })]);
});

test('a full asked for after the nightly full slot began, before its jittered due time, covers that slot', async () => {
  const s = setup('sync-all');
  const { integration, offset } = await addJitteredIntegration(hourly, 20 * 60_000, 40 * 60_000, {
    fullScheduledFor: t('2024-04-30T02:00:00Z'),
    deltaScheduledFor: t('2024-05-01T01:00:00Z'),
  });
  expect(enqueuedFor([await s.scheduler.tick(t('2024-05-01T01:59:00Z'))], integration.id)).toEqual([]);

  await s.ask({ integrationId: integration.id, mode: 'full', trigger: 'manual' }, at('2024-05-01T02:00:00Z', offset / 2));
  expect(await slotsOf(integration.id)).toEqual({ full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T02:00:00.000Z' });
  await s.queue.drain();

  const due = await s.scheduler.tick(at('2024-05-01T02:00:00Z', offset));
  expect(enqueuedFor([due], integration.id)).toEqual([]);
  const nextHour = await s.scheduler.tick(at('2024-05-01T03:00:00Z', offset));
  expect(enqueuedFor([nextHour], integration.id)).toEqual([expect.objectContaining({ mode: 'delta', slot: t('2024-05-01T03:00:00Z') })]);
});

test('a delta asked for after the full slot began covers the delta slot only: the full still runs', async () => {
  const s = setup('delta-only');
  const { integration, offset } = await addJitteredIntegration(hourly, 20 * 60_000, 40 * 60_000, {
    fullScheduledFor: t('2024-04-30T02:00:00Z'),
    deltaScheduledFor: t('2024-05-01T01:00:00Z'),
  });
  await s.ask({ integrationId: integration.id, mode: 'delta', trigger: 'api' }, at('2024-05-01T02:00:00Z', offset / 2));
  expect(await slotsOf(integration.id)).toEqual({ full: '2024-04-30T02:00:00.000Z', delta: '2024-05-01T02:00:00.000Z' });
  await s.queue.drain();

  const due = await s.scheduler.tick(at('2024-05-01T02:00:00Z', offset));
  expect(enqueuedFor([due], integration.id)).toEqual([
    expect.objectContaining({ mode: 'full', slot: t('2024-05-01T02:00:00Z'), supersedesDelta: false, deduplicated: false }),
  ]);
  expect(await slotsOf(integration.id)).toEqual({ full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T02:00:00.000Z' });
});

test('a sync asked for before a slot does not cover that slot', async () => {
  const s = setup('before', 0);
  const integration = await addIntegration({
    fullScheduledFor: t('2024-04-30T02:00:00Z'),
    deltaScheduledFor: t('2024-05-01T01:25:00Z'),
  });
  await s.ask({ integrationId: integration.id, mode: 'full', trigger: 'password_update' }, t('2024-05-01T01:59:59Z'));
  expect(await slotsOf(integration.id)).toEqual({ full: '2024-04-30T02:00:00.000Z', delta: '2024-05-01T01:55:00.000Z' });
  await s.queue.drain();

  const result = await s.scheduler.tick(t('2024-05-01T02:00:00Z'));
  expect(enqueuedFor([result], integration.id)).toEqual([
    expect.objectContaining({ mode: 'full', slot: t('2024-05-01T02:00:00Z'), supersedesDelta: true }),
  ]);
});

test('a dry run covers nothing', async () => {
  const s = setup('dry-run', 0);
  const integration = await addIntegration();
  const dry = await s.ask({ integrationId: integration.id, mode: 'full', trigger: 'api', dryRun: true }, t('2024-05-01T10:07:20Z'));
  expect(dry).toMatchObject({ dryRun: true, deduplicated: false });
  expect(await slotsOf(integration.id)).toEqual({ full: null, delta: null });

  const result = await s.scheduler.tick(t('2024-05-01T10:07:30Z'));
  expect(enqueuedFor([result], integration.id)).toEqual([
    expect.objectContaining({ mode: 'full', slot: t('2024-05-01T02:00:00Z'), supersedesDelta: true, deduplicated: false }),
  ]);
  expect((await jobsOf(s.queue, integration.id)).map((job) => [job.trigger, job.dryRun]).sort()).toEqual([
    ['api', true],
    ['schedule', false],
  ]);
});

test('a delta absorbed by a waiting full covers what that full covers', async () => {
  const s = setup('absorbed', 0);
  const integration = await addIntegration({
    fullScheduledFor: t('2024-04-30T02:00:00Z'),
    deltaScheduledFor: t('2024-05-01T01:45:00Z'),
  });
  const waiting = await s.ask({ integrationId: integration.id, mode: 'full', trigger: 'api' }, t('2024-05-01T01:50:00Z'));
  expect(await slotsOf(integration.id)).toEqual({ full: '2024-04-30T02:00:00.000Z', delta: '2024-05-01T01:50:00.000Z' });
  // Still waiting at 02:03, the full takes in a delta asked for then, and so runs after the 02:00 slots.
  const absorbed = await s.ask({ integrationId: integration.id, mode: 'delta', trigger: 'manual' }, t('2024-05-01T02:03:00Z'));
  expect(absorbed).toMatchObject({ runId: waiting.runId, mode: 'full', deduplicated: true });
  expect(await slotsOf(integration.id)).toEqual({ full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T02:00:00.000Z' });

  const result = await s.scheduler.tick(t('2024-05-01T02:04:00Z'));
  expect(enqueuedFor([result], integration.id)).toEqual([]);
  expect(await jobsOf(s.queue, integration.id)).toHaveLength(1);
});

/** The test's enqueue client, with `around` run just before each sync is queued (a tick falling then). */
function enqueueWith(s: Setup, around: () => Promise<void>): Pick<EnqueueClient, 'enqueueSync'> {
  return {
    enqueueSync: async (request) => {
      await around();
      return s.enqueue.enqueueSync(request);
    },
  };
}

test('a tick that falls while a requested sync is being queued finds its slots covered already', async () => {
  const s = setup('tick-while-queueing', 0);
  const integration = await addIntegration();
  const during: TickResult[] = [];
  const enqueue = enqueueWith(s, async () => {
    during.push(await s.scheduler.tick(t('2024-05-01T10:07:21Z')));
  });
  const manual = await requestSync({ db, enqueue }, { integrationId: integration.id, mode: 'full', trigger: 'api', requestedBy: 'ops' }, { now: t('2024-05-01T10:07:20Z') });
  expect(manual).toMatchObject({ mode: 'full', deduplicated: false });
  // The tick looked at the integration (enabled, never claimed) and claimed nothing of it.
  expect(during[0]?.considered).toBeGreaterThanOrEqual(1);
  expect(enqueuedFor(during, integration.id)).toEqual([]);
  expect((await jobsOf(s.queue, integration.id)).map((job) => job.trigger)).toEqual(['api']);
});

test('a sync that could not be queued hands its slots back: the next tick queues them', async () => {
  const s = setup('not-queued', 0);
  const integration = await addIntegration();
  const enqueue = enqueueWith(s, () => Promise.reject(new Error('queue unreachable')));
  await expect(
    requestSync({ db, enqueue }, { integrationId: integration.id, mode: 'full', trigger: 'api', requestedBy: 'ops' }, { now: t('2024-05-01T10:07:20Z') }),
  ).rejects.toThrow('queue unreachable');
  expect(await slotsOf(integration.id)).toEqual({ full: null, delta: null });
  expect(await jobsOf(s.queue, integration.id)).toEqual([]);

  const next = await s.scheduler.tick(t('2024-05-01T10:07:30Z'));
  expect(enqueuedFor([next], integration.id)).toEqual([expect.objectContaining({ mode: 'full', slot: t('2024-05-01T02:00:00Z'), deduplicated: false })]);
});

test('enabled just before its first sync is queued, an integration is never due to the scheduler meanwhile', async () => {
  const s = setup('enable-first-sync', 0);
  const wizard = await addIntegration({ enabled: false });
  const during: TickResult[] = [];
  const enable = async () => {
    await updateIntegration(db, wizard.id, { enabled: true });
    during.push(await s.scheduler.tick(t('2024-05-01T10:07:21Z')));
  };
  const manual = await requestSync(
    { db, enqueue: s.enqueue },
    { integrationId: wizard.id, mode: 'full', trigger: 'api', requestedBy: 'ops' },
    { now: t('2024-05-01T10:07:20Z'), beforeEnqueue: enable },
  );
  expect(manual).toMatchObject({ mode: 'full', deduplicated: false });
  expect(during[0]?.considered).toBeGreaterThanOrEqual(1);
  expect(enqueuedFor(during, wizard.id)).toEqual([]);
  expect(await slotsOf(wizard.id)).toEqual({ full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T10:05:00.000Z' });
  expect((await jobsOf(s.queue, wizard.id)).map((job) => job.trigger)).toEqual(['api']);

  // Should enabling fail, nothing is queued and the slots are as they were.
  const other = await addIntegration({ enabled: false });
  await expect(
    requestSync(
      { db, enqueue: s.enqueue },
      { integrationId: other.id, mode: 'full', trigger: 'api', requestedBy: 'ops' },
      { now: t('2024-05-01T10:07:20Z'), beforeEnqueue: () => Promise.reject(new Error('not enabled')) },
    ),
  ).rejects.toThrow('not enabled');
  expect(await slotsOf(other.id)).toEqual({ full: null, delta: null });
  expect(await jobsOf(s.queue, other.id)).toEqual([]);
});
