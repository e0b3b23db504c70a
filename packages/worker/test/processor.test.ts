import { randomUUID } from 'node:crypto';
import { Queue, type Job } from 'bullmq';
import { pino } from 'pino';
import {
  close,
  connect,
  createAccount,
  createIntegration,
  createKeyRing,
  type Db,
  generateSecretKey,
  getIntegration,
  type KeyRing,
} from '@dirsync/db';
import { createEnqueueClient, SYNC_BACKOFF_TYPE, SYNC_QUEUE } from '@dirsync/jobs';
import { AuthError, type Provider } from '@dirsync/providers';
import {
  createTestDatabase,
  createTestQueuePrefix,
  testRedisUrl,
  waitFor,
  type TestDatabase,
  type TestQueuePrefix,
} from '@dirsync/testkit';
import type { ProviderFactory } from '../src/processor.ts';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';
import { runReaches } from './support/runs.ts';
import { group, ScriptedProvider, user, userDn, type ScriptedEntry } from './support/scripted-provider.ts';

const secret = 'reader-password-9f2c';

let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let queue: Queue;
let ring: KeyRing;
let accountId: string;
const workers: DirsyncWorker[] = [];
/** Providers by the `key` setting of their integration; the factory records each secret it gets. */
const providers = new Map<string, Provider<ScriptedEntry>>();
const secretsSeen: (string | undefined)[] = [];
/** Every log line the workers wrote. */
const logLines: string[] = [];
const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });

const factory: ProviderFactory = (_kind, settings, plaintext) => {
  secretsSeen.push(plaintext);
  const provider = providers.get(String(settings['key']));
  if (!provider) throw new Error('no scripted provider for these settings');
  return provider;
};

beforeAll(async () => {
  database = await createTestDatabase('processor');
  db = connect(database.url, { max: 6 });
  prefix = createTestQueuePrefix('processor');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  ring = createKeyRing({ current: generateSecretKey() });
  accountId = (await createAccount(db, { name: 'acme' })).id;
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
});

afterAll(async () => {
  await queue.close();
  await prefix.cleanup();
  await close(db);
  await database.drop();
});

function startWorker(workerId: string): DirsyncWorker {
  const worker = createWorker({
    db,
    redisUrl: testRedisUrl,
    prefix: prefix.prefix,
    concurrency: 1,
    keyRing: ring,
    logger,
    workerId,
    createProvider: factory,
    lockRetryDelayMs: 100,
  });
  workers.push(worker);
  return worker;
}

async function newIntegration(provider: Provider<ScriptedEntry>, options: { enabled?: boolean } = {}) {
  const key = randomUUID();
  providers.set(key, provider);
  const integration = await createIntegration(
    db,
    { accountId, kind: 'ldap', name: key, settings: { key }, enabled: options.enabled ?? true },
    { ring, plaintext: secret },
  );
  return integration.id;
}

async function addSync(integrationId: string, options: { dryRun?: boolean; attempts?: number } = {}) {
  const runId = randomUUID();
  const job = await queue.add(
    'sync',
    { integrationId, runId, mode: 'full', trigger: 'manual', dryRun: options.dryRun ?? false },
    { jobId: `run.${runId}`, attempts: options.attempts ?? 3, backoff: { type: SYNC_BACKOFF_TYPE, delay: 50 } },
  );
  return { runId, jobId: job.id! };
}

async function jobState(jobId: string): Promise<{ job: Job; state: string }> {
  // State first: a job read before it finishes would lack what finishing stores (return value).
  const state = await queue.getJobState(jobId);
  const job = await queue.getJob(jobId);
  if (!job) throw new Error(`job ${jobId} not found`);
  return { job, state };
}

function directory(): ScriptedProvider {
  return new ScriptedProvider().put(user('u1'), user('u2'), group('g', [userDn('u1'), userDn('u2')]));
}

test('a sync job runs the pipeline and records report, cursor and integration state', async () => {
  const integrationId = await newIntegration(directory());
  const worker = startWorker('w-happy');
  const progress: unknown[] = [];
  worker.worker.on('progress', (_job, value) => progress.push(value));
  const enqueue = createEnqueueClient({ connection: testRedisUrl, prefix: prefix.prefix });
  let jobId: string;
  let runId: string;
  try {
    ({ jobId, runId } = await enqueue.enqueueSync({ integrationId, mode: 'delta', trigger: 'api' }));
  } finally {
    await enqueue.close();
  }

  const run = await runReaches(db, runId, ['succeeded', 'failed']);
  expect(run).toMatchObject({
    status: 'succeeded',
    modeRequested: 'delta',
    mode: 'full',
    workerId: 'w-happy',
    created: 3,
    membershipsAdded: 2,
    error: null,
  });
  expect(run.reason).toMatch(/^no cursor/);
  const integration = await getIntegration(db, integrationId);
  expect(integration).toMatchObject({ status: 'succeeded', lastRunId: runId, lastSuccessRunId: runId, cursor: { version: 1 } });
  expect(secretsSeen).toContain(secret);
  expect(progress).toContainEqual({ processed: 3 });

  const { job, state } = await waitFor(async () => {
    const found = await jobState(jobId);
    return found.state === 'completed' ? found : undefined;
  });
  expect(state).toBe('completed');
  expect(job.returnvalue).toMatchObject({ runId, status: 'succeeded', created: 3 });
  // The secret travels nowhere but into the provider.
  expect(JSON.stringify(job)).not.toContain(secret);
  expect(JSON.stringify(run)).not.toContain(secret);
  expect(logLines.some((line) => line.includes('"msg":"sync finished"') && line.includes(runId))).toBe(true);
  expect(logLines.join('\n')).not.toContain(secret);
});

test('an authentication error fails at once, without retries, and the run says why', async () => {
  const provider = directory();
  provider.fetchFull = async function* () {
    yield* [];
    throw new AuthError('invalid credentials for cn=reader,dc=example');
  };
  const integrationId = await newIntegration(provider);
  startWorker('w-auth');
  const { runId, jobId } = await addSync(integrationId, { attempts: 5 });

  const run = await runReaches(db, runId, ['failed']);
  expect(run.error).toBe('auth: invalid credentials for cn=reader,dc=example');
  const { job } = await waitFor(async () => {
    const found = await jobState(jobId);
    return found.state === 'failed' ? found : undefined;
  });
  expect(job.attemptsMade).toBe(1);
  expect((await getIntegration(db, integrationId))?.status).toBe('failed');
  expect(logLines.some((line) => line.includes('invalid credentials') && line.includes(runId))).toBe(true);
  expect(logLines.join('\n')).not.toContain(secret);
});

test('an unavailable server is retried with backoff and the retry completes the run', async () => {
  const provider = directory();
  provider.failAtPage = 0;
  provider.failures = 1;
  const integrationId = await newIntegration(provider);
  startWorker('w-retry');
  const { runId, jobId } = await addSync(integrationId);

  const run = await runReaches(db, runId, ['succeeded']);
  expect(run).toMatchObject({ created: 3, error: null });
  const { job } = await waitFor(async () => {
    const found = await jobState(jobId);
    return found.state === 'completed' ? found : undefined;
  });
  expect(job.attemptsMade).toBe(2);
});

test('an invalid payload is refused without retries', async () => {
  startWorker('w-invalid');
  const job = await queue.add('sync', { integrationId: 'not-a-uuid', mode: 'sideways' }, { attempts: 5 });
  const { job: failed } = await waitFor(async () => {
    const found = await jobState(job.id!);
    return found.state === 'failed' ? found : undefined;
  });
  expect(failed.attemptsMade).toBe(1);
  expect(failed.failedReason).toMatch(/^invalid sync job: /);
});

test('a disabled integration does not sync', async () => {
  const integrationId = await newIntegration(directory(), { enabled: false });
  startWorker('w-disabled');
  const { runId } = await addSync(integrationId);
  const run = await runReaches(db, runId, ['failed']);
  expect(run.error).toBe('integration is disabled');
  expect(run.created).toBe(0);
});

test('a dry run records its report and leaves the integration as it was', async () => {
  const integrationId = await newIntegration(directory());
  startWorker('w-dry');
  const { runId } = await addSync(integrationId, { dryRun: true });
  const run = await runReaches(db, runId, ['dry_run', 'failed']);
  expect(run.error).toBeNull();
  expect(run).toMatchObject({ status: 'dry_run', created: 3, dryRun: true, error: null });
  expect(await getIntegration(db, integrationId)).toMatchObject({ status: 'new', cursor: null, lastRunId: null });
  const [objects] = await db.$client<{ n: number }[]>`
    select count(*)::int as n from directory_objects where integration_id = ${integrationId}`;
  expect(objects?.n).toBe(0);
});

/** A directory whose full fetch waits for a gate, counting fetches that run at the same time. */
class GatedProvider extends ScriptedProvider {
  active = 0;
  maxActive = 0;
  #open!: () => void;
  readonly gate = new Promise<void>((resolve) => {
    this.#open = resolve;
  });

  open(): void {
    this.#open();
  }

  override async *fetchFull(signal: AbortSignal) {
    this.active += 1;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      await this.gate;
      yield* super.fetchFull(signal);
    } finally {
      this.active -= 1;
    }
  }
}

test('two syncs of one integration on two workers never overlap', async () => {
  const provider = new GatedProvider().put(user('u1'), user('u2'));
  const integrationId = await newIntegration(provider);
  const first = await addSync(integrationId);
  const second = await addSync(integrationId);
  startWorker('w-a');
  startWorker('w-b');

  // One job is inside the fetch; the other finds the integration locked and is handed back.
  await waitFor(async () => {
    const states = [(await jobState(first.jobId)).state, (await jobState(second.jobId)).state];
    return provider.active === 1 && states.includes('active') && states.includes('delayed');
  }, { timeoutMs: 30_000, what: 'one job running and the other delayed by the lock' });
  provider.open();

  const runs = await Promise.all([runReaches(db, first.runId, ['succeeded']), runReaches(db, second.runId, ['succeeded'])]);
  expect(provider.maxActive).toBe(1);
  expect(runs.map((run) => run.created).sort()).toEqual([0, 2]);
});
