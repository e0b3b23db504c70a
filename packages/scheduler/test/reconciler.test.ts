import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import {
  claimIntegrationFence,
  close,
  connect,
  createAccount,
  createConnector,
  createConsentRequest,
  createIntegration,
  createKeyRing,
  createRun,
  type Db,
  failRunAttempt,
  FencedOutError,
  generateSecretKey,
  getConsent,
  getIntegration,
  getRun,
  inFencedTransaction,
  startRunAttempt,
} from '@dirsync/db';
import { runJobId, SYNC_QUEUE } from '@dirsync/jobs';
import { generateCertificate } from '@dirsync/providers';
import {
  createTestDatabase,
  createTestQueuePrefix,
  startThrowawayRedis,
  testRedisUrl,
  type TestDatabase,
  type TestQueuePrefix,
  type ThrowawayRedis,
  waitFor,
} from '@dirsync/testkit';
import { createReconciler, type Reconciler } from '../src/reconciler.ts';

// The worker's own test child: a real worker process syncing a 300-user, 10-group fixture
// directory that stops answering before page `hangAtPage` (50 objects a page), with a 1 s job
// lock, a 1 s integration lock and a 300 ms stalled check. Spawned, not imported: the scheduler
// and the worker meet only in Redis and PostgreSQL.
const workerChild = fileURLToPath(new URL('../../worker/test/support/worker-child.ts', import.meta.url));
const neverHangs = 1_000_000;
const directoryObjects = 310;
const directoryEdges = 300;

const logger = pino({ level: 'silent' });
let database: TestDatabase;
let db: Db;
const children = new Set<ChildProcess>();
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  database = await createTestDatabase('reconciler');
  db = connect(database.url, { max: 6 });
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await close(db);
  await database.drop();
});

function spawnWorker(config: { redisUrl: string; prefix: string; secretKey: string; hangAtPage: number }): Promise<ChildProcess> {
  const child = spawn(process.execPath, [workerChild, JSON.stringify({ databaseUrl: database.url, ...config })], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`worker child exited early (${code})`)));
    child.stdout!.once('data', () => resolve(child));
  });
}

async function kill9(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

async function newIntegration(name: string) {
  const secretKey = generateSecretKey();
  const ring = createKeyRing({ current: secretKey });
  const accountId = (await createAccount(db, { name })).id;
  const integration = await createIntegration(db, { accountId, kind: 'ldap', name, settings: {} }, { ring, plaintext: 'pw' });
  return { integrationId: integration.id, secretKey };
}

/** A queued run with its job, the way a producer leaves it. */
async function queueRun(queue: Queue, integrationId: string, attempts = 3): Promise<string> {
  const runId = randomUUID();
  const jobId = runJobId(runId);
  await createRun(db, { id: runId, integrationId, jobId, modeRequested: 'full', trigger: 'manual' });
  await queue.add('sync', { integrationId, runId, mode: 'full', trigger: 'manual', dryRun: false }, { jobId, attempts });
  return runId;
}

async function storedCounts(integrationId: string) {
  const [row] = await db.$client<{ objects: number; edges: number }[]>`
    select (select count(*)::int from directory_objects where integration_id = ${integrationId} and deleted_at is null) as objects,
           (select count(*)::int from memberships where integration_id = ${integrationId} and deleted_at is null) as edges`;
  return row;
}

const runStatus = async (runId: string) => (await getRun(db, runId))?.status;

function reconcilerFor(connection: string, prefix: string, timings: { stallLimitMs?: number; queuedGraceMs?: number } = {}): Reconciler {
  const reconciler = createReconciler({ db, connection, prefix, logger, stallLimitMs: 60_000, queuedGraceMs: 0, ...timings });
  cleanups.push(() => reconciler.stop());
  return reconciler;
}

test('a job whose worker is killed -9 twice: the queue fails it as stalled, the run ends failed, a later sync is exact', async () => {
  const prefix: TestQueuePrefix = createTestQueuePrefix('reconcile-kill');
  cleanups.push(() => prefix.cleanup());
  const queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  cleanups.push(() => queue.close());
  const { integrationId, secretKey } = await newIntegration('killed-twice');
  const workerConfig = { redisUrl: testRedisUrl, prefix: prefix.prefix, secretKey };
  const runId = await queueRun(queue, integrationId);

  const first = await spawnWorker({ ...workerConfig, hangAtPage: 3 });
  const firstAttempt = await waitFor(async () => {
    const run = await getRun(db, runId);
    const stored = await storedCounts(integrationId);
    return run?.status === 'running' && (stored?.objects ?? 0) >= 100 ? run : undefined;
  }, { timeoutMs: 30_000, what: 'the first worker to write its first pages' });
  await kill9(first);

  // BullMQ's stalled check (run by the next worker) puts the job back once; that worker takes it.
  // A minute at most: this file often starts with the suite, while every test process loads.
  const second = await spawnWorker({ ...workerConfig, hangAtPage: 3 });
  const secondAttempt = await waitFor(async () => {
    const run = await getRun(db, runId);
    return run?.status === 'running' && run.fence !== firstAttempt.fence ? run : undefined;
  }, { timeoutMs: 60_000, what: 'a second attempt to start' });
  await kill9(second);

  // A third worker's stalled check finds the job stalled again: past maxStalledCount (1), it fails.
  await spawnWorker({ ...workerConfig, hangAtPage: neverHangs });
  await waitFor(async () => (await queue.getJobState(runJobId(runId))) === 'failed', {
    timeoutMs: 30_000,
    what: 'the queue to fail the twice-stalled job',
  });
  const job = await queue.getJob(runJobId(runId));
  expect(job?.failedReason).toMatch(/stalled more than allowable limit/);
  // Nobody wrote the end: without the reconciler the run would read running forever.
  expect(await getRun(db, runId)).toMatchObject({ status: 'running', fence: secondAttempt.fence });

  const reconciler = reconcilerFor(testRedisUrl, prefix.prefix);
  const pass = await reconciler.reconcile();
  expect(pass.failed.map((f) => f.runId)).toContain(runId);
  const run = await getRun(db, runId);
  expect(run).toMatchObject({ status: 'failed' });
  expect(run?.error).toMatch(/stalled more than allowable limit/);
  expect(run?.finishedAt).not.toBeNull();
  expect(await getIntegration(db, integrationId)).toMatchObject({ status: 'failed', lastRunId: runId });
  // A second pass has nothing left to do for it.
  expect((await reconciler.reconcile()).failed.map((f) => f.runId)).not.toContain(runId);

  const laterRun = await queueRun(queue, integrationId);
  await waitFor(async () => (await runStatus(laterRun)) === 'succeeded', { timeoutMs: 60_000, what: 'the later sync to succeed' });
  expect(await storedCounts(integrationId)).toEqual({ objects: directoryObjects, edges: directoryEdges });
  expect(await getIntegration(db, integrationId)).toMatchObject({ status: 'succeeded', lastRunId: laterRun });
  expect(await runStatus(runId)).toBe('failed');
}, 150_000);

test('Redis loses its data (FLUSHALL on a throwaway server): queued runs are enqueued again once, then completed', async () => {
  const redis: ThrowawayRedis = await startThrowawayRedis();
  cleanups.push(() => redis.stop());
  const prefix = 'reconcile-flush';
  const queue = new Queue(SYNC_QUEUE, { connection: { url: redis.url }, prefix });
  cleanups.push(() => queue.close());
  const kept = await newIntegration('flushed-kept');
  const lostTwice = await newIntegration('flushed-twice');
  const keptRun = await queueRun(queue, kept.integrationId);
  const lostRun = await queueRun(queue, lostTwice.integrationId);
  const reconcilers = [reconcilerFor(redis.url, prefix), reconcilerFor(redis.url, prefix)] as const;

  // Jobs in place: nothing to do.
  const idle = await reconcilers[0].reconcile();
  expect(idle).toMatchObject({ skipped: false, failed: [], requeued: [] });

  const admin = new Redis(redis.url);
  cleanups.push(async () => admin.disconnect());
  expect(await admin.flushall()).toBe('OK');
  expect(await queue.getJob(runJobId(keptRun))).toBeUndefined();

  // Two replicas at once: each lost job is put back once between them.
  const passes = await Promise.all(reconcilers.map((r) => r.reconcile()));
  expect(passes.flatMap((p) => p.requeued).sort()).toEqual([keptRun, lostRun].sort());
  expect(passes.flatMap((p) => p.failed)).toEqual([]);
  for (const runId of [keptRun, lostRun]) {
    expect(await getRun(db, runId)).toMatchObject({ status: 'queued', requeuedAt: expect.any(Date) });
    // Waiting with its priority (sync jobs always carry one).
    expect(await queue.getJobState(runJobId(runId))).toBe('prioritized');
  }

  // One job vanishes again: the run was given its one second chance, so it fails and says why.
  await queue.remove(runJobId(lostRun));
  const second = await reconcilers[1].reconcile();
  expect(second.requeued).toEqual([]);
  expect(second.failed.map((f) => f.runId)).toEqual([lostRun]);
  const lost = await getRun(db, lostRun);
  expect(lost).toMatchObject({ status: 'failed' });
  expect(lost?.error).toMatch(/lost again after the run was re-enqueued/);
  expect(await getIntegration(db, lostTwice.integrationId)).toMatchObject({ status: 'failed', lastRunId: lostRun });
  expect(await runStatus(keptRun)).toBe('queued');

  await spawnWorker({ redisUrl: redis.url, prefix, secretKey: kept.secretKey, hangAtPage: neverHangs });
  await waitFor(async () => (await runStatus(keptRun)) === 'succeeded', { timeoutMs: 60_000, what: 'the re-enqueued run to complete' });
  expect(await storedCounts(kept.integrationId)).toEqual({ objects: directoryObjects, edges: directoryEdges });
  expect(await getIntegration(db, kept.integrationId)).toMatchObject({ status: 'succeeded', lastRunId: keptRun });
  expect(await storedCounts(lostTwice.integrationId)).toEqual({ objects: 0, edges: 0 });
}, 150_000);

test('a failure PostgreSQL refused to record (run running, job failed) is reconciled; the stale attempt is fenced out', async () => {
  const prefix: TestQueuePrefix = createTestQueuePrefix('reconcile-pgdown');
  cleanups.push(() => prefix.cleanup());
  const queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  cleanups.push(() => queue.close());
  const { integrationId } = await newIntegration('unrecorded-failure');
  const busy = await newIntegration('live-job');

  // An attempt starts the way a worker's does (fence claimed, run running)...
  const runId = await queueRun(queue, integrationId, 1);
  const fence = `1:${randomUUID()}`;
  await claimIntegrationFence(db, integrationId, fence);
  await startRunAttempt(db, { runId, integrationId, fence, attempt: 1, maxAttempts: 1, workerId: 'pg-refused' });
  // ...and a run whose job is still waiting for a worker, silent far beyond the stall limit.
  const liveRun = await queueRun(queue, busy.integrationId);
  const liveFence = `1:${randomUUID()}`;
  await claimIntegrationFence(db, busy.integrationId, liveFence);
  await startRunAttempt(db, { runId: liveRun, integrationId: busy.integrationId, fence: liveFence, attempt: 1, maxAttempts: 3, workerId: 'pg-refused' });

  // The attempt fails while PostgreSQL refuses connections: the queue records the failure, the
  // database never hears of it.
  const refused = 'connect ECONNREFUSED 127.0.0.1:5432 (could not record the failed run)';
  const failing = new Worker(SYNC_QUEUE, null, { connection: { url: testRedisUrl }, prefix: prefix.prefix, autorun: false });
  cleanups.push(() => failing.close());
  // Jobs are taken in order: the failing run's first; the other stays waiting (a live job).
  const token = randomUUID();
  const taken = await failing.getNextJob(token);
  expect(taken?.id).toBe(runJobId(runId));
  await taken!.moveToFailed(new Error(refused), token, false);
  expect(await queue.getJobState(runJobId(runId))).toBe('failed');
  expect(await queue.getJobState(runJobId(liveRun))).toBe('waiting');
  expect(await runStatus(runId)).toBe('running');

  const pass = await reconcilerFor(testRedisUrl, prefix.prefix, { stallLimitMs: 0 }).reconcile();
  expect(pass.failed.map((f) => f.runId)).toEqual([runId]);
  const run = await getRun(db, runId);
  expect(run).toMatchObject({ status: 'failed' });
  expect(run?.error).toContain('ECONNREFUSED');
  expect(await getIntegration(db, integrationId)).toMatchObject({ status: 'failed', lastRunId: runId });
  // The live job's run is left to the queue, however long it has been silent.
  expect(await runStatus(liveRun)).toBe('running');

  // Were the attempt still alive, nothing it wrote would land now.
  await expect(
    failRunAttempt(db, { runId, integrationId, fence, error: 'late', willRetry: false, durationMs: 1, markIntegration: true }),
  ).rejects.toBeInstanceOf(FencedOutError);
  await expect(inFencedTransaction(db, integrationId, fence, async () => 'written')).rejects.toBeInstanceOf(FencedOutError);
  expect(await getRun(db, runId)).toEqual(run);
});

test('a pass ends admin-consent requests whose link expired unanswered, and leaves open ones pending', async () => {
  const ring = createKeyRing({ current: generateSecretKey() });
  const accountId = (await createAccount(db, { name: 'consent-expiry' })).id;
  const certificate = await generateCertificate({ subject: 'consent expiry', validityDays: 2 });
  const connector = await createConnector(
    db,
    ring,
    {
      name: 'expiry',
      description: 'consent requests that expire',
      clientId: '11111111-2222-4333-8444-000000000abc',
      applicationObjectId: '99999999-2222-4333-8444-000000000abc',
      homeTenantId: 'f0f0f0f0-2222-4333-8444-555555555555',
      redirectUri: 'https://dirsync.example/entra/consent',
      authorityHost: 'https://login.example',
    },
    certificate,
  );
  // Creating a request ends those expired before it: the expired one is created last.
  await createConsentRequest(db, ring, { accountId, connectorId: connector.id, tenantId: 'contoso.onmicrosoft.com' });
  await createConsentRequest(db, ring, { accountId, connectorId: connector.id, tenantId: 'fabrikam.onmicrosoft.com', ttlMs: -1 });
  const prefix = createTestQueuePrefix('consent-expiry');
  cleanups.push(() => prefix.cleanup());
  const result = await reconcilerFor(testRedisUrl, prefix.prefix).reconcile();
  expect(result.expiredConsentRequests).toBe(1);
  expect(await getConsent(db, accountId, connector.id, 'fabrikam.onmicrosoft.com')).toMatchObject({ status: 'denied', error: 'consent_request_expired' });
  expect((await getConsent(db, accountId, connector.id, 'contoso.onmicrosoft.com'))?.status).toBe('pending');
  // Nothing left to end: a second pass ends nothing.
  expect((await reconcilerFor(testRedisUrl, prefix.prefix).reconcile()).expiredConsentRequests).toBe(0);
});
