import { Writable } from 'node:stream';
import pino from 'pino';
import { accounts, close, connect, createConsoleSession, createConsoleSignInLink, createRun, findConsoleSession, finishRun, integrations, startRun, type Db } from '@dirsync/db';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import { createReconciler } from '../src/reconciler.ts';

let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let integrationId: string;

beforeAll(async () => {
  database = await createTestDatabase('reconciler_retention');
  db = connect(database.url, { max: 3 });
  prefix = createTestQueuePrefix('reconciler-retention');
  const [account] = await db.insert(accounts).values({ name: 'acme' }).returning();
  const [integration] = await db.insert(integrations).values({ accountId: account!.id, kind: 'ldap', name: 'd', settings: {} }).returning();
  integrationId = integration!.id;
});

afterAll(async () => {
  await prefix.cleanup();
  await close(db);
  await database.drop();
});

function captureLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

async function finishedRunsDaysAgo(days: readonly number[]): Promise<string[]> {
  const ids: string[] = [];
  for (const ago of days) {
    const run = await createRun(db, { integrationId, modeRequested: 'delta', trigger: 'schedule' });
    await startRun(db, run.id, { mode: 'delta', workerId: 'w' });
    await finishRun(db, run.id, { status: 'succeeded' });
    await db.$client`update sync_runs set queued_at = now() - make_interval(days => ${ago}), finished_at = now() - make_interval(days => ${ago}) where id = ${run.id}`;
    ids.push(run.id);
  }
  return ids;
}

test('a pass prunes the runs past retention, reports and logs how many, and keeps the rest', async () => {
  const old = await finishedRunsDaysAgo([90, 80, 70, 60]);
  const recent = await finishedRunsDaysAgo([3, 2, 1]);
  const { logger, lines } = captureLogger();
  const reconciler = createReconciler({
    db,
    connection: testRedisUrl,
    prefix: prefix.prefix,
    logger,
    retention: { runs: { days: 30, keep: 2 }, audit: { days: 365 } },
  });
  try {
    const result = await reconciler.reconcile();
    expect(result.pruned).toEqual({ runs: old.length, auditEvents: 0, changes: 0, more: false });
    expect(lines.find((line) => line['msg'] === 'reconciler: pruned old runs and audit events')).toMatchObject({ runs: 4, auditEvents: 0 });
    const left = await db.$client<{ id: string }[]>`select id from sync_runs where integration_id = ${integrationId}`;
    expect(new Set(left.map((r) => r.id))).toEqual(new Set(recent));
    // Nothing more is due: the next pass deletes nothing and logs nothing about it.
    expect((await reconciler.reconcile()).pruned).toEqual({ runs: 0, auditEvents: 0, changes: 0, more: false });
    expect(lines.filter((line) => line['msg'] === 'reconciler: pruned old runs and audit events')).toHaveLength(1);
  } finally {
    await reconciler.stop();
  }
});

test('a pruning failure is logged and the pass still reports what it reconciled', async () => {
  await finishedRunsDaysAgo([120]);
  const { logger, lines } = captureLogger();
  // keep 0 is refused by the pruning itself: a failure that needs no broken server.
  const reconciler = createReconciler({
    db,
    connection: testRedisUrl,
    prefix: prefix.prefix,
    logger,
    retention: { runs: { days: 30, keep: 0 }, audit: { days: 365 } },
  });
  try {
    const result = await reconciler.reconcile();
    expect(result).toMatchObject({ skipped: false, failed: [], requeued: [] });
    expect(result.pruned).toBeUndefined();
    expect(lines.find((line) => line['msg'] === 'reconciler: pruning old runs and audit events failed')).toBeDefined();
    const [row] = await db.$client<{ n: number }[]>`select count(*)::int as n from sync_runs where integration_id = ${integrationId}`;
    expect(row?.n).toBe(3 + 1);
  } finally {
    await reconciler.stop();
  }
});

test('every pass deletes expired console sessions and links, with or without retention settings', async () => {
  const [account] = await db.insert(accounts).values({ name: 'console' }).returning();
  const grants = [{ accountId: account!.id, role: 'viewer' as const }];
  const live = await createConsoleSession(db, { subject: 'live', name: 'Live', method: 'oidc', grants, ttlMs: 3_600_000 });
  const expired = await createConsoleSession(db, { subject: 'expired', name: 'Expired', method: 'oidc', grants, ttlMs: 1 });
  const link = await createConsoleSignInLink(db, { accountId: account!.id, role: 'viewer', ttlMs: 1 });
  const last = link.link.expiresAt > expired.session.expiresAt ? link.link.expiresAt : expired.session.expiresAt;
  // Expiry is the database's clock: wait until it has passed there.
  for (;;) {
    const [row] = await db.$client<{ past: boolean }[]>`select now() > ${last.toISOString()}::timestamptz as past`;
    if (row?.past) break;
  }
  const { logger, lines } = captureLogger();
  const reconciler = createReconciler({ db, connection: testRedisUrl, prefix: prefix.prefix, logger });
  try {
    expect((await reconciler.reconcile()).expiredConsoleSignIns).toEqual({ sessions: 1, links: 1, oidcLogins: 0, more: false });
    expect(lines.find((line) => line['msg'] === 'reconciler: deleted expired console sign-ins')).toMatchObject({ sessions: 1, links: 1 });
    expect((await findConsoleSession(db, live.token))?.id).toBe(live.session.id);
    expect((await reconciler.reconcile()).expiredConsoleSignIns).toEqual({ sessions: 0, links: 0, oidcLogins: 0, more: false });
  } finally {
    await reconciler.stop();
  }
});
