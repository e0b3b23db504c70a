import { randomUUID } from 'node:crypto';
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
  setIntegrationSecret,
  storeSecretCandidate,
} from '@dirsync/db';
import { checkQueueCommand, ControlJobFailedError, createControlClient, createEnqueueClient, type ControlClient } from '@dirsync/jobs';
import {
  createTestDatabase,
  createTestQueuePrefix,
  startSlapd,
  testRedisUrl,
  waitFor,
  type SlapdServer,
  type TestDatabase,
  type TestQueuePrefix,
  testDestinations,
} from '@dirsync/testkit';
import { createReadinessProbe, createWorkerMetrics, type WorkerMetrics } from '../src/ops/index.ts';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';

let server: SlapdServer;
let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let ring: KeyRing;
let worker: DirsyncWorker;
let control: ControlClient;
let metrics: WorkerMetrics;
let accountId: string;
const logLines: string[] = [];
const timeoutMs = 20_000;

beforeAll(async () => {
  server = await startSlapd({ data: { users: 20, groups: 2, membersPerGroup: 5 } });
  database = await createTestDatabase('control');
  db = connect(database.url, { max: 6 });
  prefix = createTestQueuePrefix('control');
  ring = createKeyRing({ current: generateSecretKey() });
  accountId = (await createAccount(db, { name: 'acme' })).id;
  metrics = createWorkerMetrics({ db });
  worker = createWorker({
    db,
    redisUrl: testRedisUrl,
    prefix: prefix.prefix,
    concurrency: 1,
    keyRing: ring,
    logger: pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) }),
    workerId: 'control-test',
    destinations: testDestinations,
    metrics,
  });
  control = createControlClient({ connection: testRedisUrl, prefix: prefix.prefix });
});

afterAll(async () => {
  await control.close();
  await worker.close();
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
  };
}

async function integration(secret: string | undefined, overrides: Record<string, unknown> = {}): Promise<string> {
  const row = await createIntegration(
    db,
    { accountId, kind: 'ldap', name: `ldap-${randomUUID()}`, settings: { ...settings(), ...overrides } },
    secret === undefined ? undefined : { ring, plaintext: secret },
  );
  return row.id;
}

test('Test Connection runs on the worker with the stored secret', async () => {
  const id = await integration(server.readerPassword);
  const report = await control.testConnection(id, { timeoutMs });
  expect(report.ok).toBe(true);
  expect(report.checks.map((c) => c.name)).toEqual(expect.arrayContaining(['connect', 'bind', 'users base']));

  await setIntegrationSecret(db, ring, id, 'wrong-password-71');
  const refused = await control.testConnection(id, { timeoutMs });
  expect(refused.ok).toBe(false);
  expect(refused.checks.find((c) => !c.ok)?.name).toBe('bind');
  expect(JSON.stringify(refused)).not.toContain('wrong-password-71');
});

test('a candidate secret is checked, then deleted whatever the outcome', async () => {
  const id = await integration('old-password-0');
  const good = await storeSecretCandidate(db, ring, id, server.readerPassword);
  expect((await control.checkSecret(id, good, { timeoutMs })).ok).toBe(true);
  const bad = await storeSecretCandidate(db, ring, id, 'not-the-password-3');
  expect((await control.checkSecret(id, bad, { timeoutMs })).ok).toBe(false);
  const [left] = await db.$client<{ n: number }[]>`select count(*)::int as n from integration_secret_candidates where integration_id = ${id}`;
  expect(left?.n).toBe(0);
  // A used candidate cannot be checked again.
  await expect(control.checkSecret(id, good, { timeoutMs })).rejects.toThrow(/not found or expired/);
  expect(logLines.join('\n')).not.toMatch(new RegExp(`${server.readerPassword}|not-the-password-3`));
});

test('settings that cannot work are a failed check; a missing integration fails the request', async () => {
  const id = await integration(server.readerPassword, { tls: { mode: 'none' } });
  const report = await control.testConnection(id, { timeoutMs });
  expect(report).toEqual({ ok: false, checks: [expect.objectContaining({ ok: false })] });
  const missing = control.testConnection(randomUUID(), { timeoutMs });
  await expect(missing).rejects.toBeInstanceOf(ControlJobFailedError);
  await expect(missing).rejects.toThrow(/not found/);
});

test('finished syncs are counted by kind, mode, status and object outcome', async () => {
  const id = await integration(server.readerPassword);
  const enqueue = createEnqueueClient({ connection: testRedisUrl, prefix: prefix.prefix });
  try {
    const job = await enqueue.enqueueSync({ integrationId: id, mode: 'full', trigger: 'manual' });
    await waitFor(async () => (await getRun(db, job.runId))?.status === 'succeeded', { what: 'the sync to succeed' });
  } finally {
    await enqueue.close();
  }
  const text = await waitFor(async () => {
    const body = await metrics.registry.metrics();
    return body.includes('dirsync_sync_runs_total{kind="ldap",mode="full",status="succeeded"} 1') ? body : undefined;
  });
  expect(text).toMatch(/dirsync_sync_objects_total\{kind="ldap",outcome="created"\} 22/);
  expect(text).toMatch(/dirsync_sync_run_duration_seconds_count\{kind="ldap",mode="full",status="succeeded"\} 1/);
  expect(text).toMatch(/process_cpu_seconds_total/);
});

test('readiness names what is missing; the registry holds the sync metrics', async () => {
  const deadRedis = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  deadRedis.on('error', () => {});
  let stopping = false;
  try {
    const queueKey = `${prefix.prefix}:dirsync-sync:meta`;
    // The worker's own connection, as `dirsync worker` reports it.
    expect(await createReadinessProbe({ db, queue: () => worker.queueState() })()).toEqual({ ready: true, checks: { database: { ok: true }, redis: { ok: true } } });
    expect(metrics.registry.contentType).toMatch(/^text\/plain/);
    expect(await metrics.registry.metrics()).toContain('dirsync_sync_runs_total');

    stopping = true;
    expect(await createReadinessProbe({ db, queue: () => checkQueueCommand(deadRedis, queueKey), stopping: () => stopping })()).toEqual({
      ready: false,
      checks: { database: { ok: true }, redis: { ok: false, detail: expect.any(String) }, process: { ok: false, detail: 'shutting down' } },
    });
  } finally {
    deadRedis.disconnect();
  }
});
