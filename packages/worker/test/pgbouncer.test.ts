import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Attribute, Change } from 'ldapts';
import { pino } from 'pino';
import {
  close,
  connect,
  createAccount,
  createIntegration,
  createKeyRing,
  generateSecretKey,
  getRun,
  type Db,
  type Run,
} from '@dirsync/db';
import { SYNC_QUEUE } from '@dirsync/jobs';
import { createProvider } from '@dirsync/providers';
import {
  createTestDatabase,
  createTestQueuePrefix,
  startPgBouncer,
  startSlapd,
  testDestinations,
  testRedisUrl,
  userDn,
  waitFor,
  type PgBouncer,
  type SlapdServer,
  type TestDatabase,
  type TestQueuePrefix,
} from '@dirsync/testkit';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';

// A real LDAP sync end to end with every statement of the worker going through PgBouncer 1.18 in
// transaction mode: no prepared statements survive from one transaction to the next, and two
// syncs at once share a pool of two server connections.

const timeoutMs = 120_000;
const users = 150;
const groups = 6;
const membersPerGroup = 25;

let server: SlapdServer;
let database: TestDatabase;
let bouncer: PgBouncer;
let direct: Db;
let pooled: Db;
let prefix: TestQueuePrefix;
let queue: Queue;
let worker: DirsyncWorker;
const integrationIds: string[] = [];

beforeAll(async () => {
  server = await startSlapd({ data: { users, groups, membersPerGroup, seed: 3, timestamp: new Date(Date.now() - 86_400_000) } });
  database = await createTestDatabase('worker_pgbouncer');
  bouncer = await startPgBouncer({ poolSize: 2 });
  direct = connect(database.url, { max: 2 });
  pooled = connect(bouncer.through(database.url), { pgbouncer: true, max: 6, applicationName: 'dirsync-worker' });
  prefix = createTestQueuePrefix('worker-pgbouncer');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  const ring = createKeyRing({ current: generateSecretKey() });
  const account = await createAccount(direct, { name: 'pgbouncer' });
  for (const name of ['first', 'second']) {
    const settings = {
      url: server.url,
      bindDn: server.readerDn,
      tls: { mode: 'none', allowInsecure: true },
      users: { baseDns: [`ou=people,${server.suffix}`] },
      groups: { baseDns: [`ou=groups,${server.suffix}`] },
      pageSize: 40,
      deltaOverlapSeconds: 5,
    };
    const integration = await createIntegration(direct, { accountId: account.id, kind: 'ldap', name, settings }, { ring, plaintext: server.readerPassword });
    integrationIds.push(integration.id);
  }
  worker = createWorker({
    db: pooled,
    redisUrl: testRedisUrl,
    prefix: prefix.prefix,
    concurrency: 2,
    keyRing: ring,
    logger: pino({ level: 'silent' }),
    workerId: 'pgbouncer-worker',
    destinations: testDestinations,
    createProvider: (kind, stored, secret) => createProvider(kind, stored, secret, { destinations: testDestinations }),
    batchSize: 50,
  });
}, timeoutMs);

afterAll(async () => {
  await worker?.close();
  await queue?.close();
  await prefix?.cleanup();
  if (pooled) await close(pooled);
  await bouncer?.stop();
  if (direct) await close(direct);
  await database?.drop();
  await server?.stop();
}, timeoutMs);

async function sync(integrationId: string, mode: 'full' | 'delta'): Promise<Run> {
  const runId = randomUUID();
  await queue.add('sync', { integrationId, runId, mode, trigger: 'manual', dryRun: false }, { jobId: `run.${runId}`, attempts: 1 });
  return waitFor(
    async () => {
      const run = await getRun(direct, runId);
      return run && !['queued', 'running', 'retrying'].includes(run.status) ? run : undefined;
    },
    { timeoutMs: 90_000, what: `the ${mode} run to end` },
  );
}

async function stored(integrationId: string) {
  const [row] = await direct.$client<{ users: number; groups: number; edges: number }[]>`
    select
      (select count(*)::int from directory_objects where integration_id = ${integrationId} and type = 'user' and deleted_at is null) as users,
      (select count(*)::int from directory_objects where integration_id = ${integrationId} and type = 'group' and deleted_at is null) as groups,
      (select count(*)::int from memberships where integration_id = ${integrationId} and deleted_at is null) as edges`;
  return row;
}

test('two full syncs at once through PgBouncer store every object and edge', async () => {
  const runs = await Promise.all(integrationIds.map((id) => sync(id, 'full')));
  for (const [i, run] of runs.entries()) {
    expect(run).toMatchObject({ status: 'succeeded', mode: 'full', fetched: users + groups, created: users + groups, failed: 0 });
    expect(run.membershipsAdded).toBe(groups * membersPerGroup);
    expect(await stored(integrationIds[i]!)).toEqual({ users, groups, edges: groups * membersPerGroup });
  }
  // The pool never grew past PgBouncer's two server connections for the database.
  const pools = (await bouncer.pools()).filter((p) => p.database === database.name);
  expect(pools.length).toBeGreaterThan(0);
  for (const pool of pools) expect(pool.servers).toBeLessThanOrEqual(2);
}, timeoutMs);

test('a change in the directory arrives by delta, and by full sync in the other integration, through PgBouncer', async () => {
  const [first] = integrationIds;
  const admin = await server.client();
  try {
    await admin.modify(userDn(7, server.suffix), new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Pooled'] }) }));
  } finally {
    await admin.unbind();
  }
  const delta = await sync(first!, 'delta');
  expect(delta).toMatchObject({ status: 'succeeded', mode: 'delta', updated: 1, created: 0, deleted: 0 });
  const [row] = await direct.$client<{ title: string }[]>`
    select attributes->>'title' as title from directory_objects where integration_id = ${first!} and dn = ${userDn(7, server.suffix).toLowerCase()}`;
  expect(row?.title).toBe('Pooled');

  const unchanged = await sync(integrationIds[1]!, 'full');
  expect(unchanged).toMatchObject({ status: 'succeeded', mode: 'full', created: 0, updated: 1, deleted: 0 });
  expect(unchanged.unchanged).toBe(users + groups - 1);
  expect(await stored(integrationIds[1]!)).toEqual({ users, groups, edges: groups * membersPerGroup });
}, timeoutMs);
