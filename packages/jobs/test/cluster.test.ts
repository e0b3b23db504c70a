import type { SyncJobData } from '@dirsync/contracts';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Job } from 'bullmq';
import { useTestRedisCluster, waitFor, type TestRedisCluster } from '@dirsync/testkit';
import {
  clusterKeySlot,
  createControlClient,
  createEnqueueClient,
  createQueueClient,
  createQueueWorker,
  createRotationEnqueueClient,
  createSyncJobInspector,
  parseShardSelection,
  queueLayout,
  queueLayoutOf,
  syncJobPriority,
  syncShardOf,
  type RedisSettings,
} from '../src/index.ts';

// Every test goes through one seed node that does not serve the keys it uses: the client must
// learn the slot map and follow redirections, which is what a managed cluster's endpoint needs.

const silent = { error: () => {}, warn: () => {} };
const teardown: Array<() => Promise<unknown>> = [];
let cluster: TestRedisCluster;

beforeAll(async () => {
  cluster = await useTestRedisCluster();
}, 120_000);

afterEach(async () => {
  while (teardown.length > 0) await teardown.pop()?.();
});

function newPrefix(label: string): string {
  const prefix = `dirsync-test-cluster-${label}-${randomBytes(4).toString('hex')}`;
  teardown.push(() => cluster.deleteKeys(prefix));
  return prefix;
}

/** Settings whose only seed is a node that does not serve `queueName`'s keys. */
async function seededAway(prefix: string, queueName: string, syncShards: number): Promise<RedisSettings> {
  const slot = clusterKeySlot(`${prefix}:${queueName}:wait`);
  const url = await cluster.nonOwnerUrl(slot);
  expect(await cluster.ownerOf(slot)).not.toBe(Number(new URL(url).port));
  return { url, mode: 'cluster', syncShards };
}

/** An integration id whose syncs go to shard `shard` of `shards`. */
function integrationOnShard(shard: number, shards: number): string {
  for (;;) {
    const id = randomUUID();
    if (syncShardOf(id, shards) === shard) return id;
  }
}

describe('queue layout on a 3-node cluster', () => {
  it('puts 4 sync shards on every node, each queue in one slot', async () => {
    const layout = queueLayout('cluster', 4);
    const owners = await Promise.all(layout.sync.map((name) => cluster.ownerOf(clusterKeySlot(`dirsync:${name}:wait`))));
    expect(new Set(owners).size).toBe(3);
    for (const name of layout.all) {
      expect(clusterKeySlot(`dirsync:${name}:wait`)).toBe(clusterKeySlot(`dirsync:${name}:de:sync.x.real`));
    }
    // One shard in standalone mode is the single queue of earlier versions.
    expect(queueLayout('standalone', 1).sync).toEqual(['dirsync-sync']);
    expect(queueLayout('standalone', 3).sync).toEqual(['dirsync-sync', 'dirsync-sync-1', 'dirsync-sync-2']);
  });

  it('maps an integration to one shard, and parses worker shard selections', () => {
    const id = randomUUID();
    expect(syncShardOf(id, 8)).toBe(syncShardOf(id.toUpperCase(), 8));
    const spread = new Set(Array.from({ length: 200 }, () => syncShardOf(randomUUID(), 4)));
    expect(spread.size).toBe(4);
    expect(parseShardSelection('0-3,7', 8)).toEqual([0, 1, 2, 3, 7]);
    expect(parseShardSelection('', 3)).toEqual([0, 1, 2]);
    expect(() => parseShardSelection('2-9', 4)).toThrow(/past the last/);
    expect(() => parseShardSelection('x', 4)).toThrow(/not a shard number/);
  });
});

describe('enqueue through a non-owner seed', () => {
  it('deduplicates concurrent requests of one integration on its shard', async () => {
    const prefix = newPrefix('dedup');
    const shards = 4;
    const integrationId = integrationOnShard(2, shards);
    const layout = queueLayout('cluster', shards);
    const settings = await seededAway(prefix, layout.sync[2] as string, shards);
    const clients = Array.from({ length: 3 }, () => createEnqueueClient({ connection: settings, prefix }));
    for (const client of clients) teardown.push(() => client.close());

    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (clients[i % clients.length] as (typeof clients)[number]).enqueueSync({ integrationId, mode: 'delta', trigger: 'schedule' })),
    );
    expect(new Set(results.map((r) => r.jobId)).size).toBe(1);
    expect(results.filter((r) => !r.deduplicated)).toHaveLength(1);

    // A full request upgrades the waiting delta in place (the compare-and-set script of ours).
    const upgraded = await (clients[0] as (typeof clients)[number]).enqueueSync({ integrationId, mode: 'full', trigger: 'manual' });
    expect(upgraded).toMatchObject({ jobId: results[0]?.jobId, deduplicated: true, upgraded: true });

    const queues = createQueueClient({ connection: settings, prefix });
    teardown.push(() => queues.close());
    const counts = await Promise.all(queues.syncQueues().map((queue) => queue.getJobCountByTypes('waiting', 'prioritized')));
    expect(counts).toEqual([0, 0, 1, 0]);
    const job = await queues.queueOf('sync', integrationId).getJob(upgraded.jobId);
    expect(job?.data).toMatchObject({ integrationId, mode: 'full' });
    // The manual request made the waiting scheduled job as urgent as itself.
    expect(job?.priority).toBe(syncJobPriority('manual', 'full'));
  });

  it('accepts a {…} prefix (every queue then shares its slot)', async () => {
    const prefix = `{${newPrefix('tagged')}}`;
    teardown.push(() => cluster.deleteKeys(prefix));
    const settings = await seededAway(prefix, 'dirsync-sync', 1);
    const client = createEnqueueClient({ connection: settings, prefix });
    teardown.push(() => client.close());
    const integrationId = randomUUID();
    const first = await client.enqueueSync({ integrationId, mode: 'delta', trigger: 'api' });
    const again = await client.enqueueSync({ integrationId, mode: 'delta', trigger: 'api' });
    expect(again).toMatchObject({ jobId: first.jobId, deduplicated: true });
  });

  it('finds and requeues a run\u2019s job on its shard (reconciler)', async () => {
    const prefix = newPrefix('inspect');
    const settings: RedisSettings = { url: cluster.urls[0] as string, mode: 'cluster', syncShards: 4 };
    const enqueue = createEnqueueClient({ connection: settings, prefix });
    const inspector = createSyncJobInspector({ connection: settings, prefix });
    teardown.push(() => enqueue.close(), () => inspector.close());
    const integrationId = integrationOnShard(3, 4);
    const queued = await enqueue.enqueueSync({ integrationId, mode: 'delta', trigger: 'manual' });
    expect(await inspector.stateOf(queued.jobId, queued.runId)).toEqual({ state: 'live', detail: 'prioritized' });
    expect(await inspector.stateOf(queued.jobId, randomUUID())).toEqual({ state: 'missing' });

    const lost: SyncJobData = { integrationId, runId: randomUUID(), mode: 'full', trigger: 'schedule', dryRun: false };
    await inspector.requeue(`run.${lost.runId}`, lost);
    expect(await inspector.stateOf(`run.${lost.runId}`, lost.runId)).toMatchObject({ state: 'live' });
  });
});

describe('workers on the cluster', () => {
  it('run a manual delta before the scheduled fulls that were waiting', async () => {
    const prefix = newPrefix('priority');
    const settings: RedisSettings = { url: cluster.urls[1] as string, mode: 'cluster', syncShards: 1 };
    const enqueue = createEnqueueClient({ connection: settings, prefix });
    teardown.push(() => enqueue.close());
    for (let i = 0; i < 4; i++) await enqueue.enqueueSync({ integrationId: randomUUID(), mode: 'full', trigger: 'schedule' });
    const delta = await enqueue.enqueueSync({ integrationId: randomUUID(), mode: 'delta', trigger: 'schedule' });
    const manual = await enqueue.enqueueSync({ integrationId: randomUUID(), mode: 'delta', trigger: 'manual' });

    const order: string[] = [];
    const worker = createQueueWorker({
      connection: settings,
      prefix,
      queue: 'sync',
      concurrency: 1,
      logger: silent,
      errorMessage: 'worker error',
      processor: async (job: Job) => {
        order.push(String(job.id));
        return 'done';
      },
    });
    teardown.push(() => worker.close());
    await waitFor(() => order.length === 6, { timeoutMs: 20_000, what: 'six syncs to run' });
    expect(order.slice(0, 2)).toEqual([manual.jobId, delta.jobId]);
  });

  it('consume only the shards they are given', async () => {
    const prefix = newPrefix('subset');
    const settings: RedisSettings = { url: cluster.urls[0] as string, mode: 'cluster', syncShards: 2 };
    const enqueue = createEnqueueClient({ connection: settings, prefix });
    teardown.push(() => enqueue.close());
    const onZero = await enqueue.enqueueSync({ integrationId: integrationOnShard(0, 2), mode: 'delta', trigger: 'api' });
    const onOne = await enqueue.enqueueSync({ integrationId: integrationOnShard(1, 2), mode: 'delta', trigger: 'api' });
    const ran: string[] = [];
    const worker = createQueueWorker({
      connection: settings,
      prefix,
      queue: 'sync',
      shards: parseShardSelection('1', 2),
      concurrency: 4,
      logger: silent,
      errorMessage: 'worker error',
      processor: async (job: Job) => {
        ran.push(String(job.id));
        return 'done';
      },
    });
    teardown.push(() => worker.close());
    expect(worker.queueNames).toEqual([queueLayout('cluster', 2).sync[1]]);
    await waitFor(() => ran.length === 1, { timeoutMs: 20_000, what: 'the shard-1 sync to run' });
    expect(ran).toEqual([onOne.jobId]);
    const queues = createQueueClient({ connection: settings, prefix });
    teardown.push(() => queues.close());
    expect(await queues.syncQueues()[0]?.getJobState(onZero.jobId)).toBe('prioritized');
  });

  it('maps failures to retries: a non-retryable error fails at once, a transient one is retried', async () => {
    const prefix = newPrefix('retry');
    const settings: RedisSettings = { url: cluster.urls[2] as string, mode: 'cluster', syncShards: 2 };
    const queues = createQueueClient({ connection: settings, prefix });
    teardown.push(() => queues.close());
    const fatal = randomUUID();
    const transient = randomUUID();
    const attempts = new Map<string, number>();
    const worker = createQueueWorker({
      connection: settings,
      prefix,
      queue: 'sync',
      concurrency: 2,
      logger: silent,
      errorMessage: 'worker error',
      processor: async (job: Job) => {
        const { integrationId } = job.data as SyncJobData;
        attempts.set(integrationId, (attempts.get(integrationId) ?? 0) + 1);
        if (integrationId === fatal) throw Object.assign(new Error('bad credentials'), { retryable: false });
        if ((attempts.get(integrationId) ?? 0) < 2) throw new Error('connection reset');
        return 'ok';
      },
    });
    teardown.push(() => worker.close());
    expect(worker.workers).toHaveLength(2);
    const options = { attempts: 3, backoff: { type: 'fixed', delay: 10 } };
    const fatalJob = await queues.add('sync', { integrationId: fatal, runId: randomUUID(), mode: 'delta', trigger: 'api', dryRun: false }, options);
    const transientJob = await queues.add('sync', { integrationId: transient, runId: randomUUID(), mode: 'delta', trigger: 'api', dryRun: false }, options);
    await waitFor(async () => (await fatalJob.getState()) === 'failed' && (await transientJob.getState()) === 'completed', { timeoutMs: 20_000, what: 'both jobs to end' });
    expect(attempts.get(fatal)).toBe(1);
    expect(attempts.get(transient)).toBe(2);
  });

  it('answer Test Connection through the control queue (round trip)', async () => {
    const prefix = newPrefix('control');
    const settings = await seededAway(prefix, queueLayout('cluster').control, 4);
    const worker = createQueueWorker({
      connection: settings,
      prefix,
      queue: 'control',
      concurrency: 2,
      logger: silent,
      errorMessage: 'control worker error',
      processor: async (job: Job) => ({ ok: true, checks: [{ name: 'bind', ok: true, detail: `answered ${String((job.data as { integrationId: string }).integrationId)}` }] }),
    });
    const control = createControlClient({ connection: settings, prefix, failFast: true });
    teardown.push(() => worker.close(), () => control.close());
    await waitFor(() => control.testConnection(randomUUID(), { timeoutMs: 5_000 }).then(() => true, () => false), { timeoutMs: 20_000, what: 'the control client to connect' });
    const integrationId = randomUUID();
    const report = await control.testConnection(integrationId, { timeoutMs: 10_000 });
    expect(report).toEqual({ ok: true, checks: [{ name: 'bind', ok: true, detail: `answered ${integrationId}` }] });
  });

  it('run rotation jobs, a scheduled slot once', async () => {
    const prefix = newPrefix('rotation');
    const settings = await seededAway(prefix, queueLayout('cluster').rotation, 1);
    const client = createRotationEnqueueClient({ connection: settings, prefix });
    teardown.push(() => client.close());
    const connectorId = randomUUID();
    const scheduledFor = '2026-01-01T03:00:00.000Z';
    const first = await client.enqueueRotation({ connectorId, trigger: 'schedule', scheduledFor });
    const again = await client.enqueueRotation({ connectorId, trigger: 'schedule', scheduledFor });
    expect(first.deduplicated).toBe(false);
    expect(again).toEqual({ jobId: first.jobId, deduplicated: true });
    const seen: string[] = [];
    const worker = createQueueWorker({
      connection: settings,
      prefix,
      queue: 'rotation',
      concurrency: 1,
      logger: silent,
      errorMessage: 'rotation worker error',
      processor: async (job: Job) => {
        seen.push(String(job.id));
        return { status: 'skipped' };
      },
    });
    teardown.push(() => worker.close());
    await waitFor(() => seen.length === 1, { timeoutMs: 20_000, what: 'the rotation to run' });
    expect(seen).toEqual([first.jobId]);
    expect(queueLayoutOf(settings).rotation).toBe(client.queue.name);
  });
});
