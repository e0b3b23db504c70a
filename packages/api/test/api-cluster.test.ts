import { clusterKeySlot, createQueueClient, queueLayout, syncShardOf, type QueueClient, type RedisSettings } from '@dirsync/jobs';
import { useTestRedisCluster, type TestRedisCluster } from '@dirsync/testkit';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

// The API on a 3-node Redis Cluster with 4 sync shards, seeded with one node that does not serve
// the control queue: sync requests land on their integration's shard, the dashboard and the
// metrics list every shard, the Redis rate limiter and readiness work through the cluster.

const shards = 4;
let cluster: TestRedisCluster;
let api: ApiHarness;
let connection: RedisSettings;
let queues: QueueClient;

beforeAll(async () => {
  cluster = await useTestRedisCluster();
  // The queue's hash tag is in its name, so its slot does not depend on the harness's prefix.
  const controlSlot = clusterKeySlot(`any:${queueLayout('cluster', shards).control}:wait`);
  connection = { url: await cluster.nonOwnerUrl(controlSlot), mode: 'cluster', syncShards: shards };
  api = await startApiHarness('api_cluster', { connection, publicRateLimit: { max: 5, timeWindowMs: 60_000 } });
  expect(await cluster.ownerOf(controlSlot)).not.toBe(Number(new URL(connection.url).port));
  queues = createQueueClient({ connection, prefix: api.prefix.prefix });
}, 120_000);

afterAll(async () => {
  await queues?.close();
  await api?.close();
  await cluster?.deleteKeys(api?.prefix.prefix ?? 'none');
});

test('a sync request lands on its integration\u2019s shard, once', async () => {
  const accountId = await api.account('cluster');
  const client = api.client(await api.key(accountId, ['admin']));
  const integration = await client.createIntegration({ kind: 'ldap', name: 'sharded', settings: ldapSettings(), secret: 'reader-secret' });
  const first = await client.requestSync(integration.id, { mode: 'delta' });
  const again = await client.requestSync(integration.id, { mode: 'delta' });
  expect(again).toMatchObject({ jobId: first.jobId, deduplicated: true });
  const shard = syncShardOf(integration.id, shards);
  const counts = await Promise.all(queues.syncQueues().map((queue) => queue.getJobCountByTypes('waiting', 'prioritized')));
  expect(counts.map((count, index) => (index === shard ? count >= 1 : count === 0))).toEqual([true, true, true, true]);
  expect((await queues.syncQueues()[shard]?.getJob(first.jobId))?.data).toMatchObject({ integrationId: integration.id, trigger: 'api' });
});

test('the dashboard and the metrics list every shard', async () => {
  const platform = await api.key(null, ['admin'], 'dashboard');
  const basic = `Basic ${Buffer.from(`anyone:${platform}`).toString('base64')}`;
  const answer = await api.request('GET', '/admin/queues/api/queues', { headers: { authorization: basic } });
  expect(answer.status).toBe(200);
  const listed = ((await answer.json()) as { queues: { name: string }[] }).queues.map((queue) => queue.name).sort();
  expect(listed).toEqual([...queueLayout('cluster', shards).all].sort());

  const metrics = await api.server.ops.registry.getSingleMetricAsString('dirsync_queue_jobs');
  for (const name of queueLayout('cluster', shards).all) expect(metrics).toContain(`queue="${name}",state="waiting"`);
  expect((await api.server.ops.readiness()).checks['redis']).toEqual({ ok: true });
});

test('the per-address rate limit counts through the cluster', async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 7; i++) statuses.push((await api.request('GET', '/healthz')).status);
  expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
  expect(statuses.slice(5)).toEqual([429, 429]);
});
