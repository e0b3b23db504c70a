import { clusterKeySlot, queueLayout, syncShardOf } from '@dirsync/jobs';
import { startSlapd, useTestRedisCluster, type SlapdServer, type TestRedisCluster } from '@dirsync/testkit';
import { type CliEnvironment, type CliWorker, createCliEnvironment, ldapIntegrationArgs, parseRunReports, startCliWorker } from './support/run-cli.ts';

// The real processes in cluster mode: `dirsync worker` and `dirsync sync --wait` configured only
// through the environment (DIRSYNC_REDIS_MODE=cluster, REDIS_URL naming one seed that does not
// serve the integration's shard, DIRSYNC_SYNC_SHARDS=4).

const timeoutMs = 120_000;
const shards = 4;
let cluster: TestRedisCluster;
let server: SlapdServer;
let cli: CliEnvironment;
let worker: CliWorker | undefined;

beforeAll(async () => {
  [cluster, server, cli] = await Promise.all([useTestRedisCluster(), startSlapd({ tls: true, data: { users: 10, groups: 2, membersPerGroup: 3 } }), createCliEnvironment('clicluster')]);
  expect((await cli.run(['accounts', 'add', 'acme'])).code).toBe(0);
}, timeoutMs);

afterAll(async () => {
  if (worker && worker.child.exitCode === null) await worker.stop();
  await cluster?.deleteKeys(cli?.prefix.prefix ?? 'none');
  await cli?.cleanup();
  await server?.stop();
}, timeoutMs);

test('sync --full --wait runs on a cluster-mode worker process through a non-owner seed', async () => {
  const added = await cli.run(ldapIntegrationArgs(server, 'Clustered'), { input: `${server.readerPassword}\n` });
  expect(added).toMatchObject({ code: 0, stderr: '' });
  const integrationId = added.stdout.trim();
  const shardQueue = queueLayout('cluster', shards).sync[syncShardOf(integrationId, shards)] as string;
  const seed = await cluster.nonOwnerUrl(clusterKeySlot(`${cli.prefix.prefix}:${shardQueue}:wait`));
  const clusterEnv = { REDIS_URL: seed, DIRSYNC_REDIS_MODE: 'cluster', DIRSYNC_SYNC_SHARDS: String(shards) };

  worker = await startCliWorker({ ...cli.env, ...clusterEnv }, 'cluster-cli-worker');
  const result = await cli.run(['sync', integrationId, '--full', '--wait'], { env: clusterEnv });
  expect(result).toMatchObject({ code: 0, stderr: '' });
  const [report] = parseRunReports(result.stdout);
  expect(report?.fields).toMatchObject({ status: 'succeeded', mode: 'full', worker: 'cluster-cli-worker' });
  expect(report?.counts).toMatchObject({ created: 12 });

  // The same settings without cluster mode are refused at start, naming what to change.
  const refused = await cli.run(['sync', integrationId], { env: { ...clusterEnv, DIRSYNC_REDIS_MODE: 'standalone', REDIS_URL: `${seed},${cluster.urls[0]}` } });
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toContain('DIRSYNC_REDIS_MODE=cluster');
}, timeoutMs);
