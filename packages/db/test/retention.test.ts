import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import {
  close,
  connect,
  createAccount,
  createIntegration,
  pruneAudit,
  pruneHistory,
  pruneRuns,
  recordAudit,
  type Db,
} from '../src/index.ts';

let database: TestDatabase;
let db: Db;
let accountId: string;

beforeAll(async () => {
  database = await createTestDatabase('retention');
  db = connect(database.url, { max: 2 });
  accountId = (await createAccount(db, { name: 'acme' })).id;
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

let integrationCount = 0;
async function newIntegration(): Promise<string> {
  integrationCount += 1;
  return (await createIntegration(db, { accountId, kind: 'ldap', name: `directory ${integrationCount}`, settings: {} })).id;
}

interface PastRun {
  /** Days ago the run was queued; it finished a minute later. */
  daysAgo: number;
  status?: 'succeeded' | 'failed' | 'blocked' | 'dry_run' | 'running' | 'queued';
  mode?: 'full' | 'delta';
  dryRun?: boolean;
}

/** Inserts runs as the pipeline would have left them, back-dated (only the test can write the past). */
async function pastRuns(integrationId: string, runs: readonly PastRun[]): Promise<string[]> {
  const ids: string[] = [];
  for (const run of runs) {
    const status = run.status ?? 'succeeded';
    const final = status !== 'running' && status !== 'queued';
    const [row] = await db.$client<{ id: string }[]>`
      insert into sync_runs (integration_id, mode_requested, mode, trigger, status, dry_run, queued_at, started_at, finished_at)
      values (${integrationId}, ${run.mode ?? 'delta'}, ${run.mode ?? 'delta'}, 'schedule', ${status}, ${run.dryRun ?? false},
        now() - make_interval(secs => ${run.daysAgo * 86_400}),
        now() - make_interval(secs => ${run.daysAgo * 86_400 - 1}),
        ${final ? db.$client`now() - make_interval(secs => ${run.daysAgo * 86_400 - 60})` : null})
      returning id`;
    ids.push(row!.id);
  }
  return ids;
}

async function runIdsOf(integrationId: string): Promise<Set<string>> {
  const rows = await db.$client<{ id: string }[]>`select id from sync_runs where integration_id = ${integrationId}`;
  return new Set(rows.map((r) => r.id));
}

/** Pruning is global: a test that counts deletions starts from its own runs only. */
async function onlyRunsOf(integrationId: string): Promise<void> {
  await db.$client`delete from sync_runs where integration_id <> ${integrationId}`;
}

async function drainRuns(retention: { days: number; keep: number; batchSize?: number }): Promise<number[]> {
  const batches: number[] = [];
  for (;;) {
    const deleted = await pruneRuns(db, retention);
    batches.push(deleted);
    if (deleted < (retention.batchSize ?? 1000)) return batches;
  }
}

test('old finished runs go; recent runs, the latest N, unfinished and referenced runs stay', async () => {
  const busy = await newIntegration();
  await onlyRunsOf(busy);
  // 40 old runs (100 … 61 days ago) and 12 recent ones (12 … 1 days ago).
  const old = await pastRuns(busy, Array.from({ length: 40 }, (_, i) => ({ daysAgo: 100 - i })));
  const recent = await pastRuns(busy, Array.from({ length: 12 }, (_, i) => ({ daysAgo: 12 - i })));
  const [stuckRunning, oldQueued] = await pastRuns(busy, [{ daysAgo: 90, status: 'running' }, { daysAgo: 80, status: 'queued' }]);
  // A blocked full sync nothing has superseded may still be approved; one superseded may not.
  const [liveBlocked] = await pastRuns(busy, [{ daysAgo: 70, status: 'blocked', mode: 'full' }]);
  const [supersededBlocked, laterDelta] = await pastRuns(busy, [
    { daysAgo: 75, status: 'blocked', mode: 'delta' },
    { daysAgo: 74, status: 'succeeded', mode: 'delta' },
  ]);
  // Referenced by the integration as its last successful run.
  const referenced = old[3]!;
  await db.$client`update integrations set last_success_run_id = ${referenced}, last_run_id = ${recent.at(-1)!} where id = ${busy}`;

  // A quiet integration keeps its latest runs however old; one with more loses only the oldest.
  const quiet = await newIntegration();
  const quietRuns = await pastRuns(quiet, Array.from({ length: 5 }, (_, i) => ({ daysAgo: 400 - i })));
  const longQuiet = await newIntegration();
  const longQuietRuns = await pastRuns(longQuiet, Array.from({ length: 15 }, (_, i) => ({ daysAgo: 300 - i })));

  const batches = await drainRuns({ days: 30, keep: 10 });
  expect(batches.reduce((a, b) => a + b, 0)).toBe(39 + 1 + 1 + 5);

  const busyLeft = await runIdsOf(busy);
  for (const id of recent) expect(busyLeft.has(id)).toBe(true);
  for (const id of [stuckRunning!, oldQueued!, liveBlocked!, referenced]) expect(busyLeft.has(id)).toBe(true);
  expect(busyLeft.has(supersededBlocked!)).toBe(false);
  expect(busyLeft.has(laterDelta!)).toBe(false);
  expect(old.filter((id) => busyLeft.has(id))).toEqual([referenced]);
  expect(busyLeft.size).toBe(12 + 4);

  expect(await runIdsOf(quiet)).toEqual(new Set(quietRuns));
  expect(await runIdsOf(longQuiet)).toEqual(new Set(longQuietRuns.slice(5)));

  // Nothing is due any more: a further call deletes nothing.
  expect(await pruneRuns(db, { days: 30, keep: 10 })).toBe(0);
});

test('run pruning deletes at most one batch per statement and keeps runs for ever at 0 days', async () => {
  const integration = await newIntegration();
  await onlyRunsOf(integration);
  await pastRuns(integration, Array.from({ length: 25 }, (_, i) => ({ daysAgo: 50 - i })));
  expect(await pruneRuns(db, { days: 0, keep: 1 })).toBe(0);
  expect((await runIdsOf(integration)).size).toBe(25);

  expect(await drainRuns({ days: 10, keep: 1, batchSize: 7 })).toEqual([7, 7, 7, 3]);
  // The newest is kept as the one run of `keep`, although it is old too.
  expect((await runIdsOf(integration)).size).toBe(1);
});

test('pruneHistory stops after maxBatches and says more is due', async () => {
  const integration = await newIntegration();
  await onlyRunsOf(integration);
  await pastRuns(integration, Array.from({ length: 12 }, (_, i) => ({ daysAgo: 90 - i })));
  const first = await pruneHistory(db, { runs: { days: 30, keep: 2, batchSize: 4 }, audit: { days: 0 }, maxBatches: 2 });
  expect(first).toEqual({ runs: 8, auditEvents: 0, changes: 0, more: true });
  const second = await pruneHistory(db, { runs: { days: 30, keep: 2, batchSize: 4 }, audit: { days: 0 }, maxBatches: 2 });
  expect(second).toEqual({ runs: 2, auditEvents: 0, changes: 0, more: false });
  expect((await runIdsOf(integration)).size).toBe(2);
});

test('audit events older than the retention go in bounded batches; recent ones stay', async () => {
  const integrationId = await newIntegration();
  await db.$client`delete from audit_events`;
  for (let i = 0; i < 23; i++) {
    await recordAudit(db, { accountId, integrationId, actor: 'test', action: 'integration.updated', details: { i } });
  }
  await db.$client`update audit_events set created_at = now() - interval '400 days'`;
  for (let i = 0; i < 4; i++) {
    await recordAudit(db, { accountId, integrationId, actor: 'test', action: 'run.approved', details: { i } });
  }

  expect(await pruneAudit(db, { days: 0 })).toBe(0);
  expect(await pruneAudit(db, { days: 365, batchSize: 10 })).toBe(10);
  expect(await pruneAudit(db, { days: 365, batchSize: 10 })).toBe(10);
  // The third batch meets the recent events: only the three old ones left go.
  expect(await pruneAudit(db, { days: 365, batchSize: 10 })).toBe(3);
  expect(await pruneAudit(db, { days: 365, batchSize: 10 })).toBe(0);
  const left = await db.$client<{ action: string }[]>`select action from audit_events`;
  expect(left.map((r) => r.action)).toEqual(['run.approved', 'run.approved', 'run.approved', 'run.approved']);
});

test('settings out of range are refused', async () => {
  await expect(pruneRuns(db, { days: 30, keep: 0 })).rejects.toThrow(RangeError);
  await expect(pruneRuns(db, { days: -1, keep: 5 })).rejects.toThrow(RangeError);
  await expect(pruneAudit(db, { days: 30, batchSize: 0 })).rejects.toThrow(RangeError);
});
