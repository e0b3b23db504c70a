import { pino } from 'pino';
import { close, connect, type Db } from '@dirsync/db';
import { clusterKeySlot, installationMetricsLeaseKey, type RedisConnection } from '@dirsync/jobs';
import { validateSettings } from '@dirsync/providers';
import { requestSync } from '@dirsync/scheduler';
import {
  createTestDatabase,
  createTestQueuePrefix,
  startThrowawayRedis,
  testRedisUrl,
  useTestRedisCluster,
  waitFor,
  type TestDatabase,
  type TestQueuePrefix,
} from '@dirsync/testkit';
import { createApiServer, type ApiServer } from '../src/index.ts';

// Metrics servers (what a scheduler runs: probes and the operations registry, no API) competing
// for the installation-wide series on real Redis: exactly one of those on a queue prefix serves
// them at any time, another takes over when it stops, and none claims them without Redis.

// Short leases: a stopped exporter is replaced within seconds.
const lease = { ttlMs: 2_000, renewEveryMs: 200 };
let database: TestDatabase;
let db: Db;
const prefixes: TestQueuePrefix[] = [];
const teardown: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  database = await createTestDatabase('instmetrics_leader');
  db = connect(database.url, { max: 6 });
}, 60_000);

afterEach(async () => {
  while (teardown.length > 0) await teardown.pop()?.();
});

afterAll(async () => {
  for (const prefix of prefixes) await prefix.cleanup();
  await close(db);
  await database?.drop();
});

function newPrefix(label: string): string {
  const prefix = createTestQueuePrefix(label);
  prefixes.push(prefix);
  return prefix.prefix;
}

async function metricsServer(prefix: string, connection: RedisConnection = testRedisUrl): Promise<ApiServer> {
  const server = await createApiServer({
    db,
    connection,
    prefix,
    logger: pino({ level: 'silent' }),
    validateSettings,
    requestSync,
    serveApi: false,
    installationMetrics: 'leader',
    installationMetricsLease: lease,
  });
  teardown.push(() => server.close());
  return server;
}

/** What one scrape of a server's operations registry shows. */
interface Scrape {
  readonly leader: number | undefined;
  /** Whether any installation-wide series is in the text (a sample line, not only a name). */
  readonly installationSeries: boolean;
  readonly processMetrics: boolean;
}

async function scrape(server: ApiServer): Promise<Scrape> {
  const text = await server.ops.registry.metrics();
  const leader = /^dirsync_installation_metrics_leader (\d+)$/m.exec(text)?.[1];
  return {
    leader: leader === undefined ? undefined : Number(leader),
    installationSeries: /^dirsync_(queue_jobs|sync_shard_jobs|integrations|integration_status|runs|actions_needed)[{ ]/m.test(text),
    processMetrics: /^process_cpu_seconds_total /m.test(text),
  };
}

/** The servers that export the series now; every other one must show leader 0 and none of them. */
async function exporters(servers: readonly ApiServer[]): Promise<ApiServer[]> {
  const found: ApiServer[] = [];
  for (const server of servers) {
    const seen = await scrape(server);
    expect(seen.processMetrics).toBe(true);
    if (seen.leader === 1) {
      expect(seen.installationSeries).toBe(true);
      found.push(server);
    } else {
      expect(seen).toEqual({ leader: 0, installationSeries: false, processMetrics: true });
    }
  }
  return found;
}

test('of three metrics servers on one prefix exactly one exports the installation-wide series, and another does once it stops', async () => {
  const prefix = newPrefix('instmetrics-leader');
  const servers = [await metricsServer(prefix), await metricsServer(prefix), await metricsServer(prefix)];
  // The first scrape after the start already knows: no waiting for the lease.
  const [leader, ...others] = await exporters(servers);
  expect(others).toEqual([]);
  if (leader === undefined) throw new Error('no server exports the installation-wide series');
  const text = await leader.ops.registry.metrics();
  expect(text).toMatch(/^dirsync_queue_jobs\{queue="dirsync-sync",state="waiting"\} 0$/m);
  expect(text).toMatch(/^dirsync_actions_needed\{kind="grant_consent"\} 0$/m);

  for (const server of servers) {
    const check = (await server.ops.readiness()).checks['installationMetrics'];
    expect(check).toEqual({
      ok: true,
      detail: server === leader ? 'installation-wide metrics exported by this process: this process holds the lease' : 'installation-wide metrics exported by another process: another process holds the lease',
    });
  }

  await leader.close();
  const rest = servers.filter((server) => server !== leader);
  const next = await waitFor(async () => (await exporters(rest))[0], { timeoutMs: 30_000, what: 'another server to export the installation-wide series' });
  expect(await exporters(rest)).toEqual([next]);
}, 90_000);

test('two installations (queue prefixes) on one Redis each have their exporter', async () => {
  const first = newPrefix('instmetrics-first');
  const second = newPrefix('instmetrics-second');
  const ours = [await metricsServer(first), await metricsServer(first)];
  const theirs = [await metricsServer(second), await metricsServer(second)];
  expect(await exporters(ours)).toHaveLength(1);
  expect(await exporters(theirs)).toHaveLength(1);
}, 90_000);

test('without Redis a server does not claim the series, says why in its readiness, and keeps serving its own metrics', async () => {
  const redis = await startThrowawayRedis();
  teardown.push(() => redis.stop());
  await redis.stop();
  const server = await metricsServer(newPrefix('instmetrics-down'), redis.url);
  expect(await exporters([server])).toEqual([]);
  const report = await server.ops.readiness();
  expect(report.ready).toBe(false);
  expect(report.checks['redis']?.ok).toBe(false);
  expect(report.checks['installationMetrics']).toEqual({ ok: true, detail: expect.stringMatching(/^installation-wide metrics not exported by this process: not claimed: the lease cannot be reached \(.+\)$/) });

  // Redis back: the server takes the lease at its next attempt.
  await redis.start();
  await waitFor(async () => (await exporters([server])).length === 1, { timeoutMs: 30_000, what: 'the server to export the series once Redis is back' });
}, 90_000);

test('on a 3-node Redis Cluster, through a node that does not serve the lease, one of two servers exports the series', async () => {
  const cluster = await useTestRedisCluster();
  const prefix = `dirsync-test-cluster-instmetrics-${process.pid}`;
  teardown.push(() => cluster.deleteKeys(prefix));
  const connection = { url: await cluster.nonOwnerUrl(clusterKeySlot(installationMetricsLeaseKey(prefix))), mode: 'cluster' as const };
  const servers = [await metricsServer(prefix, connection), await metricsServer(prefix, connection)];
  const [leader, ...others] = await exporters(servers);
  expect(others).toEqual([]);
  await leader?.close();
  const rest = servers.filter((server) => server !== leader);
  await waitFor(async () => (await exporters(rest)).length === 1, { timeoutMs: 30_000, what: 'the other server to export the series on the cluster' });
}, 120_000);
