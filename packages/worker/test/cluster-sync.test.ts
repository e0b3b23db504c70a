import { randomBytes, randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { close, connect, createAccount, createIntegration, createKeyRing, type Db, generateSecretKey, getRun, type Run } from '@dirsync/db';
import { clusterKeySlot, closeRedis, createControlClient, createEnqueueClient, createQueueClient, openRedis, queueLayout, syncShardOf, type RedisSettings } from '@dirsync/jobs';
import { createProvider } from '@dirsync/providers';
import {
  createTestDatabase,
  slapdSettings,
  startSlapd,
  testDestinations,
  useTestRedisCluster,
  waitFor,
  type SlapdServer,
  type TestDatabase,
  type TestRedisCluster,
} from '@dirsync/testkit';
import { integrationLockKey, tryAcquireLock } from '../src/lock.ts';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';

// A sync end to end on a 3-node Redis Cluster with the sync queue in 4 shards: slapd, PostgreSQL,
// the enqueue client and a worker reaching the cluster through one seed node that does not serve
// the keys involved.

const timeoutMs = 120_000;
const shards = 4;
const users = 12;
const groups = 2;
const membersPerGroup = 4;

let cluster: TestRedisCluster;
let slapd: SlapdServer;
let database: TestDatabase;
let db: Db;
let worker: DirsyncWorker | undefined;
const prefix = `dirsync-test-cluster-sync-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  [cluster, slapd, database] = await Promise.all([useTestRedisCluster(), startSlapd({ data: { users, groups, membersPerGroup, seed: 3 } }), createTestDatabase('cluster-sync')]);
  db = connect(database.url, { max: 6 });
}, timeoutMs);

afterAll(async () => {
  await worker?.close();
  await cluster?.deleteKeys(prefix);
  if (db) await close(db);
  await database?.drop();
  await slapd?.stop();
}, timeoutMs);

test('the shards of a 4-shard layout live on every node of the cluster', async () => {
  const owners = await Promise.all(queueLayout('cluster', shards).sync.map((name) => cluster.ownerOf(clusterKeySlot(`${prefix}:${name}:wait`))));
  expect(new Set(owners).size).toBe(3);
});

test('integration locks work through a seed that does not serve the lock key', async () => {
  const key = integrationLockKey(prefix, randomUUID());
  const seed = await cluster.nonOwnerUrl(clusterKeySlot(key));
  const redis = openRedis({ url: seed, mode: 'cluster' }, 'blocking');
  try {
    const held = await tryAcquireLock(redis, key, { ttlMs: 5_000, renewEveryMs: 1_000 });
    expect(held).toBeDefined();
    expect(await tryAcquireLock(redis, key)).toBeUndefined();
    await held?.release();
    const again = await tryAcquireLock(redis, key);
    expect(again?.token).not.toBe(held?.token);
    await again?.release();
  } finally {
    await closeRedis(redis);
  }
});

test('syncs of integrations on every shard run through one worker and land in PostgreSQL; Test Connection answers through the control queue', async () => {
  const ring = createKeyRing({ current: generateSecretKey() });
  const account = await createAccount(db, { name: 'cluster' });
  const settings = slapdSettings(slapd);
  // One integration per shard (ids are random: add until every shard has one).
  const byShard = new Map<number, string>();
  for (let n = 0; byShard.size < shards && n < 200; n++) {
    const integration = await createIntegration(db, { accountId: account.id, kind: 'ldap', name: `ldap-${n}`, settings }, { ring, plaintext: slapd.readerPassword });
    const shard = syncShardOf(integration.id, shards);
    if (!byShard.has(shard)) byShard.set(shard, integration.id);
  }
  expect(byShard.size).toBe(shards);

  // The seed is a node that serves none of shard 0's keys.
  const layout = queueLayout('cluster', shards);
  const connection: RedisSettings = { url: await cluster.nonOwnerUrl(clusterKeySlot(`${prefix}:${layout.sync[0]}:wait`)), mode: 'cluster', syncShards: shards };
  worker = createWorker({
    db,
    connection,
    prefix,
    concurrency: 4,
    keyRing: ring,
    logger: pino({ level: 'silent' }),
    workerId: 'cluster-worker',
    destinations: testDestinations,
    createProvider: (kind, stored, secret) => createProvider(kind, stored, secret, { destinations: testDestinations }),
    controlConcurrency: 2,
  });
  expect(worker.workers.map((shardWorker) => shardWorker.name)).toEqual(layout.sync);

  const enqueue = createEnqueueClient({ connection, prefix });
  const queues = createQueueClient({ connection, prefix });
  try {
    const entries = [...byShard];
    const queued = await Promise.all(entries.map(([, integrationId]) => enqueue.enqueueSync({ integrationId, mode: 'full', trigger: 'manual' })));
    const runs = await waitFor(
      async () => {
        const found = await Promise.all(queued.map((q) => getRun(db, q.runId)));
        return found.every((run) => run !== undefined && !['queued', 'running'].includes(run.status)) ? (found as Run[]) : undefined;
      },
      { timeoutMs: 90_000, what: 'every shard\u2019s sync to end' },
    );
    for (const run of runs) expect(run).toMatchObject({ status: 'succeeded', mode: 'full', workerId: 'cluster-worker', created: users + groups });
    // Each job ran on its integration's shard.
    for (const [index, [shard]] of entries.entries()) {
      const shardQueue = queues.queue(layout.sync[shard] as string);
      expect(await shardQueue.getJobState(queued[index]?.jobId ?? '')).toBe('completed');
    }
    const [row] = await db.$client<{ n: number }[]>`select count(*)::int as n from directory_objects where deleted_at is null`;
    expect(row?.n).toBe(shards * (users + groups));

    // The real Test Connection (bind and searches against slapd) by the same worker process.
    const control = createControlClient({ connection, prefix });
    try {
      const report = await control.testConnection(entries[0]?.[1] ?? '', { timeoutMs: 30_000 });
      expect(report.ok).toBe(true);
      expect(report.checks.find((check) => check.name === 'bind')).toMatchObject({ ok: true });
    } finally {
      await control.close();
    }
  } finally {
    await enqueue.close();
    await queues.close();
  }
}, timeoutMs);
