import pino from 'pino';
import { close, connect, createAccount, createApiKey, createIntegration, getRun, listRuns, type Db, type Run } from '@dirsync/db';
import { Queue } from 'bullmq';
import { createEnqueueClient, SYNC_QUEUE } from '@dirsync/jobs';
import { validateSettings } from '@dirsync/providers';
import { createApiServer, type ApiServer } from '@dirsync/api';
import { createScheduler, requestSync } from '@dirsync/scheduler';
import { testRedisUrl } from '@dirsync/testkit';
import { type CliEnvironment, createCliEnvironment } from './support/run-cli.ts';

// Every producer asks for a sync through the one `requestSync`: the scheduler tick, the API, the
// `dirsync sync` command (a real child process) and a direct call (what the benchmark does). The
// queued run rows they leave differ only in who asked.

const timeoutMs = 60_000;
const logger = pino({ level: 'silent' });

let cli: CliEnvironment;
let db: Db;
let api: ApiServer;
let queue: Queue;
let accountId: string;
let apiToken: string;
let baseUrl: string;

beforeAll(async () => {
  cli = await createCliEnvironment('reqsync');
  db = connect(cli.database.url, { max: 4 });
  api = await createApiServer({ db, connection: testRedisUrl, prefix: cli.prefix.prefix, logger, validateSettings, requestSync });
  baseUrl = `http://127.0.0.1:${await api.listen(0, '127.0.0.1')}`;
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: cli.prefix.prefix });
  accountId = (await createAccount(db, { name: 'producers' })).id;
  apiToken = (await createApiKey(db, { accountId, name: 'producer', scopes: ['admin'] })).token;
}, timeoutMs);

afterAll(async () => {
  await queue?.close();
  await api?.close();
  if (db) await close(db);
  await cli?.cleanup();
}, timeoutMs);

/** `POST /v1/integrations/{id}/syncs` as another service sends it. */
async function apiRequestSync(integrationId: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const response = await fetch(`${baseUrl}/v1/integrations/${integrationId}/syncs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(202);
  return (await response.json()) as Record<string, unknown>;
}

let integrations = 0;
async function newIntegration(): Promise<string> {
  integrations += 1;
  const integration = await createIntegration(db, {
    accountId,
    kind: 'ldap',
    name: `producer-${integrations}`,
    settings: { url: 'ldaps://ldap.example.com', bindDn: 'cn=r,dc=example,dc=org' },
  });
  return integration.id;
}

/** The queued run row without what tells producers apart. */
function shape(run: Run | undefined) {
  expect(run).toBeDefined();
  const { id: _id, integrationId: _integration, jobId: _job, trigger: _trigger, requestedBy: _by, queuedAt: _at, ...rest } = run as Run;
  return rest;
}

async function onlyRun(integrationId: string): Promise<Run> {
  const runs = await listRuns(db, { integrationId });
  expect(runs).toHaveLength(1);
  return runs[0] as Run;
}

test('the scheduler tick, the API, the CLI and a direct call leave identical queued runs, each with its job', async () => {
  // The tick first, alone: any integration that exists is due for its first full sync.
  const scheduled = await newIntegration();
  const scheduler = createScheduler({ db, connection: testRedisUrl, prefix: cli.prefix.prefix, logger, rotations: false });
  try {
    const tick = await scheduler.tick(new Date());
    expect(tick.enqueued.map((s) => [s.integrationId, s.mode, s.deduplicated])).toEqual([[scheduled, 'full', false]]);
  } finally {
    await scheduler.stop();
  }

  const viaApi = await newIntegration();
  const accepted = await apiRequestSync(viaApi, { mode: 'full' });
  expect(accepted).toMatchObject({ mode: 'full', deduplicated: false, upgraded: false });

  const viaCli = await newIntegration();
  const printed = await cli.run(['sync', viaCli, '--full', '--by', 'ops']);
  expect(printed.code).toBe(0);
  expect(printed.stdout).toMatch(/^queued: full run [0-9a-f-]{36} \(job /);

  const direct = await newIntegration();
  const enqueue = createEnqueueClient({ connection: testRedisUrl, prefix: cli.prefix.prefix });
  try {
    await requestSync({ db, enqueue }, { integrationId: direct, mode: 'full', trigger: 'manual', requestedBy: 'bench' });
  } finally {
    await enqueue.close();
  }

  const runs = await Promise.all([scheduled, viaApi, viaCli, direct].map(onlyRun));
  const [first, ...others] = runs.map(shape);
  expect(first).toMatchObject({ status: 'queued', modeRequested: 'full', mode: null, dryRun: false, attempt: 0 });
  for (const other of others) expect(other).toEqual(first);
  expect(runs.map((r) => [r.trigger, r.requestedBy])).toEqual([
    ['schedule', 'scheduler'],
    ['api', expect.stringMatching(/^api-key:producer /)],
    ['manual', 'ops'],
    ['manual', 'bench'],
  ]);
  // Each row names the job that carries it, and that job carries the row's id.
  for (const run of runs) {
    const job = await queue.getJob(run.jobId ?? '');
    expect(job?.data).toMatchObject({ integrationId: run.integrationId, runId: run.id, mode: 'full' });
  }
}, timeoutMs);

test('producers join one waiting sync: a later delta is absorbed, a later full upgrades the waiting delta and its run row says so', async () => {
  const integrationId = await newIntegration();
  const delta = await cli.run(['sync', integrationId, '--delta']);
  expect(delta.code).toBe(0);
  const [waiting] = await listRuns(db, { integrationId });
  expect(waiting).toMatchObject({ modeRequested: 'delta', trigger: 'manual' });

  const absorbed = await apiRequestSync(integrationId, { mode: 'delta' });
  expect(absorbed).toMatchObject({ runId: waiting?.id, deduplicated: true, upgraded: false });
  const upgraded = await apiRequestSync(integrationId, { mode: 'full' });
  expect(upgraded).toMatchObject({ runId: waiting?.id, mode: 'full', deduplicated: true, upgraded: true });
  const again = await cli.run(['sync', integrationId, '--delta']);
  expect(again.stdout).toContain(`already waiting: full run ${waiting?.id}`);

  expect(await listRuns(db, { integrationId })).toHaveLength(1);
  expect(await getRun(db, waiting?.id ?? '')).toMatchObject({ status: 'queued', modeRequested: 'full', trigger: 'manual' });
}, timeoutMs);
