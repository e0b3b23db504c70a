import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { installationMetricsLeaseKey } from '@dirsync/jobs';
import { testRedisUrl, waitFor } from '@dirsync/testkit';
import { dirsyncBin } from '../src/services.ts';
import { type CliEnvironment, createCliEnvironment } from './support/run-cli.ts';

// The installation-wide series (read from PostgreSQL and Redis, the same in every process) are
// exported by one process of those allowed to (the schedulers, unless a setting says otherwise):
// the holder of a lease in Redis, which another takes over when the holder stops or dies.

const timeoutMs = 180_000;
let cli: CliEnvironment;
let redis: Redis;
const running: DirsyncProcess[] = [];

beforeAll(async () => {
  cli = await createCliEnvironment('instmetrics');
  redis = new Redis(testRedisUrl);
}, timeoutMs);

afterEach(async () => {
  while (running.length > 0) await running.pop()?.stop('SIGKILL');
});

afterAll(async () => {
  redis?.disconnect();
  await cli?.cleanup();
}, timeoutMs);

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A long-running `dirsync` process of the test and its operations port. */
interface DirsyncProcess {
  readonly child: ChildProcess;
  readonly metricsPort: number;
  /** Its `/metrics` text. */
  metrics(): Promise<string>;
  /** Its `/readyz` report. */
  readiness(): Promise<{ checks: Record<string, { ok: boolean; detail?: string }> }>;
  /** Sends `signal` unless it has exited, and waits for the exit. */
  stop(signal: NodeJS.Signals): Promise<void>;
}

/** Starts `dirsync <command>` on a metrics port of its own and waits until it serves it. */
async function start(command: 'api' | 'scheduler', extra: Record<string, string> = {}): Promise<DirsyncProcess> {
  const metricsPort = await freePort();
  const child = spawn(dirsyncBin, [command], {
    env: { ...cli.env, ...extra, PORT: String(await freePort()), DIRSYNC_METRICS_PORT: String(metricsPort), DIRSYNC_API_HOST: '127.0.0.1', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
  const exited = once(child, 'exit');
  // A failed request names the process and carries what it logged.
  const get = async (path: string) => {
    try {
      return await fetch(`http://127.0.0.1:${metricsPort}${path}`);
    } catch (error) {
      throw new Error(`GET ${path} of dirsync ${command} (pid ${String(child.pid)}) failed: ${String(error)}\n${output}`);
    }
  };
  const started: DirsyncProcess = {
    child,
    metricsPort,
    metrics: async () => (await get('/metrics')).text(),
    readiness: async () => (await (await get('/readyz')).json()) as { checks: Record<string, { ok: boolean; detail?: string }> },
    async stop(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
  running.push(started);
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`dirsync ${command} exited: ${output}`);
      // Logged once the operations port listens (the scheduler's own "started" line comes earlier).
      return output.includes('"ops server listening');
    },
    { timeoutMs: 60_000, what: `dirsync ${command} to serve its operations port` },
  );
  return started;
}

/** Starts `dirsync api`, scrapes its metrics port once, stops it. */
async function scrapeApi(extra: Record<string, string>): Promise<string> {
  const api = await start('api', extra);
  try {
    return await api.metrics();
  } finally {
    await api.stop('SIGTERM');
  }
}

/** What a scrape says of the installation-wide series: the leader gauge and whether any series is there. */
function exporting(text: string): { leader: number | undefined; series: boolean } {
  const leader = /^dirsync_installation_metrics_leader (\d+)$/m.exec(text)?.[1];
  return { leader: leader === undefined ? undefined : Number(leader), series: /^dirsync_(queue_jobs|integrations|runs|actions_needed)[{ ]/m.test(text) };
}

/**
 * The one process of `processes` that exports the series now; every other one must report
 * leader 0 and serve none of them.
 */
async function exporterOf(processes: readonly DirsyncProcess[]): Promise<DirsyncProcess | undefined> {
  const leaders: DirsyncProcess[] = [];
  for (const candidate of processes) {
    const seen = exporting(await candidate.metrics());
    if (seen.leader === 1) {
      expect(seen.series).toBe(true);
      leaders.push(candidate);
    } else {
      expect(seen).toEqual({ leader: 0, series: false });
    }
  }
  expect(leaders.length).toBeLessThanOrEqual(1);
  return leaders[0];
}

/** Whether the lease names `candidate` (the value starts with the holder's host and pid). */
async function leaseHeldBy(candidate: DirsyncProcess): Promise<boolean> {
  return (await redis.get(installationMetricsLeaseKey(cli.prefix.prefix)))?.startsWith(`${hostname()}/${candidate.child.pid}/`) ?? false;
}

test('an API replica exports its process metrics only by default, the installation-wide series when told to', async () => {
  const byDefault = await scrapeApi({});
  expect(byDefault).toMatch(/^process_cpu_seconds_total /m);
  expect(byDefault).not.toMatch(/^dirsync_/m);

  // Told to, it competes for the series; alone on its prefix, it wins at once.
  const told = await scrapeApi({ DIRSYNC_INSTALLATION_METRICS: 'true' });
  expect(told).toMatch(/^dirsync_queue_jobs\{/m);
  expect(told).toMatch(/^dirsync_actions_needed\{kind="grant_consent"\} 0$/m);
  expect(told).toMatch(/^dirsync_installation_metrics_leader 1$/m);

  const wrong = await cli.run(['api'], { env: { DIRSYNC_INSTALLATION_METRICS: 'sometimes' } });
  expect(wrong.code).not.toBe(0);
  expect(wrong.stderr).toContain('DIRSYNC_INSTALLATION_METRICS must be auto, true or false');
}, timeoutMs);

test('of two scheduler replicas one exports the installation-wide series; a stopped one hands them over, a killed one after its lease', async () => {
  const api = await start('api');
  const schedulers = [await start('scheduler'), await start('scheduler')];
  // The lease was settled before each process said it started: no waiting for a leader.
  const first = await exporterOf(schedulers);
  if (first === undefined) throw new Error('no scheduler exports the installation-wide series');
  expect(await leaseHeldBy(first)).toBe(true);
  // An API replica (auto) does not compete at all.
  expect(await api.metrics()).not.toMatch(/^dirsync_/m);
  const follower = schedulers.find((scheduler) => scheduler !== first) as DirsyncProcess;
  expect((await follower.readiness()).checks['installationMetrics']).toEqual({
    ok: true,
    detail: 'installation-wide metrics exported by another process: another process holds the lease',
  });

  // SIGTERM: the leader frees the lease as it stops, and the follower takes it at its next attempt.
  await first.stop('SIGTERM');
  expect(await leaseHeldBy(first)).toBe(false);
  await waitFor(async () => (await exporterOf([follower])) === follower, { timeoutMs: 60_000, intervalMs: 500, what: 'the other scheduler to take over' });

  // SIGKILL: nothing frees the lease; a third scheduler takes it once the lease has expired.
  const third = await start('scheduler');
  expect(await exporterOf([follower, third])).toBe(follower);
  await follower.stop('SIGKILL');
  expect(await leaseHeldBy(follower)).toBe(true);
  expect(await exporterOf([third])).toBeUndefined();
  // The killed process's lease runs out now rather than in up to 30 s: Redis expires it as it would
  // at the end of its TTL, and the third takes it at its next attempt (every 10 s).
  expect(await redis.pexpire(installationMetricsLeaseKey(cli.prefix.prefix), 1)).toBe(1);
  await waitFor(async () => (await exporterOf([third])) === third, { timeoutMs: 60_000, intervalMs: 500, what: 'the third scheduler to take over from the killed one' });
  expect(await leaseHeldBy(third)).toBe(true);

  // DIRSYNC_INSTALLATION_METRICS=false: a scheduler that never competes, and says nothing of it.
  const quiet = await start('scheduler', { DIRSYNC_INSTALLATION_METRICS: 'false' });
  expect(await quiet.metrics()).not.toMatch(/^dirsync_/m);
  expect((await quiet.readiness()).checks['installationMetrics']).toBeUndefined();
}, timeoutMs);
