import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { parseAllDocuments } from 'yaml';
import { close, connect, type Db } from '@dirsync/db';
import { createEnqueueClient, parseShardSelection, syncShardOf, type RedisSettings } from '@dirsync/jobs';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import { createServiceMetrics } from '../src/index.ts';

// The KEDA examples scale workers on the scheduler's per-shard gauge. Checked here without
// Kubernetes: the YAML parses, each pool's trigger selects exactly the shards the pool consumes,
// and the gauge and states the queries name are where a real enqueued sync is counted.

const dockerDir = join(fileURLToPath(new URL('../../../', import.meta.url)), 'docker');

type Doc = Record<string, any>;

async function documents(file: string): Promise<Doc[]> {
  const parsed = parseAllDocuments(await readFile(join(dockerDir, 'k8s', file), 'utf8'));
  for (const doc of parsed) expect(doc.errors).toEqual([]);
  return parsed.map((doc) => doc.toJSON() as Doc);
}

const envOf = (deployment: Doc) =>
  Object.fromEntries((deployment['spec'].template.spec.containers[0].env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value]));

/** The shard numbers a query's `shard=~"…"` selects (every shard when it has no such matcher). */
function queriedShards(query: string, shards: number): number[] {
  const match = /shard=~"([^"]+)"/.exec(query);
  return match ? (match[1] as string).split('|').map(Number) : Array.from({ length: shards }, (_, i) => i);
}

test('each sharded worker pool scales on the shards it consumes, and together they cover every shard', async () => {
  const docs = await documents('worker-shards.yaml');
  const deployments = docs.filter((doc) => doc['kind'] === 'Deployment');
  const scaled = docs.filter((doc) => doc['kind'] === 'ScaledObject');
  expect(scaled).toHaveLength(deployments.length);
  const covered: number[] = [];
  for (const deployment of deployments) {
    const env = envOf(deployment);
    expect(env['DIRSYNC_REDIS_MODE']).toBe('cluster');
    const shards = Number(env['DIRSYNC_SYNC_SHARDS']);
    const consumed = parseShardSelection(env['DIRSYNC_WORKER_SHARDS'], shards);
    const scaledObject = scaled.find((doc) => doc['spec'].scaleTargetRef.name === deployment['metadata'].name);
    expect(scaledObject).toBeDefined();
    const [trigger] = scaledObject?.['spec'].triggers as Doc[];
    expect(trigger?.['type']).toBe('prometheus');
    expect(queriedShards(trigger?.['metadata'].query, shards)).toEqual(consumed);
    // This installation's series only, as in worker.yaml.
    expect(trigger?.['metadata'].query).toContain('dirsync_sync_shard_jobs{namespace="dirsync",');
    // The selector picks this pool's pods only.
    expect(deployment['spec'].selector.matchLabels).toEqual(deployment['spec'].template.metadata.labels);
    covered.push(...consumed);
  }
  expect(covered.sort((a, b) => a - b)).toEqual(Array.from({ length: 8 }, (_, i) => i));
});

describe('the gauge the triggers read', () => {
  let database: TestDatabase;
  let db: Db;
  let prefix: TestQueuePrefix;

  beforeAll(async () => {
    database = await createTestDatabase('keda_shards');
    db = connect(database.url, { max: 2 });
    prefix = createTestQueuePrefix('keda-shards');
  });

  afterAll(async () => {
    await prefix.cleanup();
    await close(db);
    await database.drop();
  });

  test('counts a waiting sync on its shard in a state the queries select', async () => {
    const connection: RedisSettings = { url: testRedisUrl, syncShards: 3 };
    const enqueue = createEnqueueClient({ connection, prefix: prefix.prefix });
    const metrics = createServiceMetrics({ db, connection, prefix: prefix.prefix, registry: new Registry() });
    try {
      const integrationId = randomUUID();
      await enqueue.enqueueSync({ integrationId, mode: 'delta', trigger: 'schedule' });
      const text = await metrics.registry.getSingleMetricAsString('dirsync_sync_shard_jobs');
      const waiting = [...text.matchAll(/dirsync_sync_shard_jobs\{shard="(\d+)",state="(\w+)"\} (\d+)/g)].filter(([, , , value]) => value !== '0');
      expect(waiting.map(([, shard, state, value]) => ({ shard: Number(shard), state, value: Number(value) }))).toEqual([
        { shard: syncShardOf(integrationId, 3), state: 'prioritized', value: 1 },
      ]);
      const [trigger] = (await documents('worker.yaml')).find((doc) => doc['kind'] === 'ScaledObject')?.['spec'].triggers as Doc[];
      expect(trigger?.['metadata'].query).toMatch(/state=~"waiting\|prioritized"/);
    } finally {
      await enqueue.close();
      await metrics.close();
    }
  });
});
