import type { SyncJobData } from '@dirsync/contracts';
import { Queue } from 'bullmq';
import pino from 'pino';
import {
  accounts,
  close,
  connect,
  createRun,
  finishRun,
  integrations,
  recordAudit,
  startRun,
  type Db,
} from '@dirsync/db';
import { SYNC_QUEUE } from '@dirsync/jobs';
import {
  createTestDatabase,
  createTestQueuePrefix,
  startPgBouncer,
  testRedisUrl,
  type PgBouncer,
  type TestDatabase,
  type TestQueuePrefix,
} from '@dirsync/testkit';
import { createReconciler, createScheduler } from '../src/index.ts';

// The scheduler's claims and the reconciler (its transaction-level lock, requeues and retention),
// through PgBouncer 1.18 in transaction mode with a pool smaller than the number of client
// connections (the API's reads: packages/api/test/api-pgbouncer.test.ts).

const logger = pino({ level: 'silent' });
let database: TestDatabase;
let bouncer: PgBouncer;
/** Direct connection: setting up rows and checking them, never what is under test. */
let direct: Db;
const pooled: Db[] = [];
let prefix: TestQueuePrefix;
let queue: Queue;
let accountId: string;

function throughBouncer(max: number): Db {
  const db = connect(bouncer.through(database.url), { pgbouncer: true, max, statementTimeoutSeconds: 30 });
  pooled.push(db);
  return db;
}

beforeAll(async () => {
  database = await createTestDatabase('sched_pgbouncer');
  bouncer = await startPgBouncer({ poolSize: 3 });
  direct = connect(database.url, { max: 2 });
  prefix = createTestQueuePrefix('sched-pgbouncer');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  const [account] = await direct.insert(accounts).values({ name: 'acme' }).returning();
  accountId = account!.id;
});

afterAll(async () => {
  await Promise.all(pooled.map((db) => close(db)));
  await queue?.close();
  await prefix?.cleanup();
  await bouncer?.stop();
  await close(direct);
  await database.drop();
});

let integrationCount = 0;
async function addIntegration() {
  integrationCount += 1;
  const [row] = await direct
    .insert(integrations)
    .values({ accountId, kind: 'ldap', name: `directory-${integrationCount}`, settings: {} })
    .returning();
  return row!;
}

test('three replicas ticking at once through PgBouncer enqueue one job and one run per due slot', async () => {
  const watched = await Promise.all(Array.from({ length: 12 }, () => addIntegration()));
  const replicas = [0, 1, 2].map(() =>
    createScheduler({ db: throughBouncer(4), connection: testRedisUrl, prefix: prefix.prefix, logger, jitterMaxMs: 0, reconcile: false }),
  );
  try {
    const results = await Promise.all(replicas.map((replica) => replica.tick(new Date('2024-05-01T10:07:00Z'))));
    const enqueued = results.flatMap((r) => r.enqueued);
    expect(enqueued.map((e) => e.integrationId).sort()).toEqual(watched.map((w) => w.id).sort());
    const jobs = await queue.getJobs(['wait', 'prioritized', 'delayed']);
    for (const integration of watched) {
      expect(jobs.filter((job) => (job.data as SyncJobData).integrationId === integration.id)).toHaveLength(1);
      const runs = await direct.query.syncRuns.findMany({ where: (run, { eq }) => eq(run.integrationId, integration.id) });
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ status: 'queued', trigger: 'schedule', modeRequested: 'full' });
    }
    // The same slot again: claimed already, nothing new.
    const again = await Promise.all(replicas.map((replica) => replica.tick(new Date('2024-05-01T10:07:30Z'))));
    expect(again.flatMap((r) => r.enqueued)).toHaveLength(0);
  } finally {
    await Promise.all(replicas.map((replica) => replica.stop()));
    // The next test's reconcilers must not see these runs, whose jobs go with the queue.
    await direct.$client`update integrations set enabled = false`;
    await direct.$client`delete from sync_runs`;
    await queue.obliterate({ force: true });
  }
});

test('reconcilers through PgBouncer: one pass at a time, a lost queued job enqueued again, old runs pruned', async () => {
  const integration = await addIntegration();
  // A queued run whose job Redis lost, old enough to be looked at.
  const lost = await createRun(direct, { integrationId: integration.id, modeRequested: 'delta', trigger: 'schedule' });
  await direct.$client`update sync_runs set queued_at = now() - interval '10 minutes' where id = ${lost.id}`;
  // Forty finished runs from last year, then three recent ones; the latest four (the lost run
  // included) are kept whatever their age.
  const old: string[] = [];
  for (let i = 0; i < 43; i++) {
    const run = await createRun(direct, { integrationId: integration.id, modeRequested: 'delta', trigger: 'schedule' });
    await startRun(direct, run.id, { mode: 'delta', workerId: 'w' });
    await finishRun(direct, run.id, { status: 'succeeded' });
    if (i < 40) {
      old.push(run.id);
      await direct.$client`
        update sync_runs set queued_at = now() - make_interval(days => ${400 - i}), finished_at = now() - make_interval(days => ${400 - i})
        where id = ${run.id}`;
    }
  }
  for (let i = 0; i < 5; i++) await recordAudit(direct, { accountId, actor: 'test', action: 'integration.updated' });
  await direct.$client`update audit_events set created_at = now() - interval '2 years'`;

  const reconcilers = [0, 1].map(() =>
    createReconciler({
      db: throughBouncer(2),
      connection: testRedisUrl,
      prefix: prefix.prefix,
      logger,
      queuedGraceMs: 1000,
      retention: { runs: { days: 30, keep: 4, batchSize: 10 }, audit: { days: 365, batchSize: 2 }, maxBatches: 100 },
    }),
  );
  try {
    // The lock is transaction-scoped, so it means the same behind PgBouncer: of two passes at
    // once, at most one works (the other is skipped, or comes after and finds nothing to do).
    const passes = await Promise.all(reconcilers.map((r) => r.reconcile()));
    const worked = passes.filter((p) => !p.skipped && p.requeued.length > 0);
    expect(worked).toHaveLength(1);
    expect(worked[0]!.requeued).toEqual([lost.id]);
    const pruned = passes.map((p) => p.pruned?.runs ?? 0).reduce((a, b) => a + b, 0);
    expect(pruned).toBe(40);
    expect(passes.map((p) => p.pruned?.auditEvents ?? 0).reduce((a, b) => a + b, 0)).toBe(5);
    const waiting = await queue.getJobs(['wait', 'prioritized', 'delayed']);
    expect(waiting.map((j) => (j.data as SyncJobData).runId)).toEqual([lost.id]);
    const left = await direct.$client<{ id: string }[]>`select id from sync_runs where integration_id = ${integration.id}`;
    expect(left.map((r) => r.id).filter((id) => old.includes(id))).toEqual([]);
    expect(left).toHaveLength(1 + 3);
    expect((await direct.$client<{ n: number }[]>`select count(*)::int as n from audit_events`)[0]?.n).toBe(0);
  } finally {
    await Promise.all(reconcilers.map((r) => r.stop()));
    await queue.obliterate({ force: true });
  }
});
