import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import postgres from 'postgres';
import { readFileSync } from 'node:fs';
import { startBrokenRedis, testPgServerUrl, waitFor } from '@dirsync/testkit';
import { dirsyncBin } from '../src/services.ts';
import { createCliEnvironment, type CliEnvironment } from './support/run-cli.ts';

// Long-running processes against their real dependencies: how they name themselves in
// PostgreSQL, how many connections they hold.


let cli: CliEnvironment;
const children: ChildProcess[] = [];

beforeAll(async () => {
  cli = await createCliEnvironment('process-health');
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await cli.cleanup();
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts `dirsync <command>` and waits until `url` answers (any status). */
async function startProcess(command: string, env: Record<string, string>, url: string): Promise<{ child: ChildProcess; output: () => string; stop: () => Promise<void> }> {
  const child = spawn(dirsyncBin, [command], { env: { ...cli.env, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (output += text));
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`dirsync ${command} exited (${child.exitCode}): ${output}`);
      return fetch(url).then(
        () => true,
        () => false,
      );
    },
    { timeoutMs: 30_000, what: `dirsync ${command} to listen` },
  );
  return {
    child,
    output: () => output,
    async stop() {
      const closed = once(child, 'close');
      child.kill('SIGTERM');
      await closed;
    },
  };
}

test('each process names its role in pg_stat_activity and keeps its pool within DIRSYNC_DB_POOL_MAX', async () => {
  const workerOps = await freePort();
  const apiPort = await freePort();
  const schedulerPort = await freePort();
  const poolEnv = { DIRSYNC_DB_POOL_MAX: '2', DIRSYNC_DB_IDLE_TIMEOUT_SECONDS: '30' };
  const worker = await startProcess('worker', { ...poolEnv, DIRSYNC_METRICS_PORT: String(workerOps) }, `http://127.0.0.1:${workerOps}/healthz`);
  const api = await startProcess('api', { ...poolEnv, PORT: String(apiPort), DIRSYNC_API_HOST: '127.0.0.1' }, `http://127.0.0.1:${apiPort}/healthz`);
  // With its API off (as in cli.env) the scheduler leaves PORT alone, even one the API holds, and
  // answers its probes on the operations port.
  const scheduler = await startProcess('scheduler', { ...poolEnv, PORT: String(apiPort), DIRSYNC_API_HOST: '127.0.0.1', DIRSYNC_METRICS_PORT: String(schedulerPort) }, `http://127.0.0.1:${schedulerPort}/healthz`);
  await waitFor(() => scheduler.output().includes('api disabled: PORT not bound'), { what: 'the scheduler to say it left PORT alone' });
  const sql = postgres(`${testPgServerUrl}/postgres`, { max: 1, onnotice: () => {} });
  try {
    // Several concurrent readiness checks: a pool without a bound would open one connection each.
    await Promise.all(Array.from({ length: 6 }, () => fetch(`http://127.0.0.1:${workerOps}/readyz`)));
    await Promise.all(Array.from({ length: 6 }, () => fetch(`http://127.0.0.1:${apiPort}/readyz`)));
    await Promise.all(Array.from({ length: 6 }, () => fetch(`http://127.0.0.1:${schedulerPort}/readyz`)));
    const byRole = await waitFor(
      async () => {
        const rows = await sql<{ application_name: string; connections: number }[]>`
          select application_name, count(*)::int as connections from pg_stat_activity
          where datname = ${cli.database.name} group by application_name`;
        const found = Object.fromEntries(rows.map((r) => [r.application_name, r.connections]));
        return found['dirsync-worker'] !== undefined && found['dirsync-api'] !== undefined && found['dirsync-scheduler'] !== undefined ? found : undefined;
      },
      { what: 'every process to connect' },
    );
    expect(Object.keys(byRole).filter((name) => name.startsWith('dirsync')).sort()).toEqual(['dirsync-api', 'dirsync-scheduler', 'dirsync-worker']);
    expect(byRole['dirsync-scheduler']).toBeLessThanOrEqual(2);
    expect(byRole['dirsync-worker']).toBeLessThanOrEqual(2);
    expect(byRole['dirsync-api']).toBeLessThanOrEqual(2);
  } finally {
    await sql.end({ timeout: 5 });
    await Promise.all([worker.stop(), api.stop(), scheduler.stop()]);
  }
}, 120_000);

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

test('a worker whose Redis answers MOVED to every queue command backs off: a few log lines, little CPU, /readyz 503', async () => {
  const broken = await startBrokenRedis();
  const ops = await freePort();
  const worker = await startProcess('worker', { REDIS_URL: broken.url, DIRSYNC_METRICS_PORT: String(ops) }, `http://127.0.0.1:${ops}/healthz`);
  try {
    await waitFor(() => worker.output().includes('MOVED'), { what: 'the first error line', timeoutMs: 15_000 });
    const pid = worker.child.pid ?? 0;
    // Measured over a window: what a process stuck like this costs.
    const windowMs = 6_000;
    const linesBefore = worker.output().split('\n').length;
    const commandsBefore = broken.failed();
    const cpuBefore = cpuSeconds(pid);
    const started = performance.now();
    await waitFor(() => performance.now() - started >= windowMs, { intervalMs: 250, timeoutMs: windowMs + 5_000, what: 'the measuring window' });
    const seconds = (performance.now() - started) / 1000;
    const linesPerSecond = (worker.output().split('\n').length - linesBefore) / seconds;
    const commandsPerSecond = (broken.failed() - commandsBefore) / seconds;
    const cpuShare = (cpuSeconds(pid) - cpuBefore) / seconds;
    // Identical errors are summarised every 30 s and each failure pauses fetching for a doubling
    // pause: a handful of lines and commands where an unguarded loop writes thousands.
    expect(linesPerSecond).toBeLessThan(2);
    expect(commandsPerSecond).toBeLessThan(30);
    expect(cpuShare).toBeLessThan(0.3);
    const ready = await fetch(`http://127.0.0.1:${ops}/readyz`);
    expect(ready.status).toBe(503);
    const report = (await ready.json()) as { checks: Record<string, { ok: boolean; detail?: string }> };
    expect(report.checks['redis']).toEqual({ ok: false, detail: expect.stringMatching(/MOVED/) });

    // SIGTERM: BullMQ's graceful close would wait for commands that keep failing; the worker
    // exits once its queue has refused every command for 15 s.
    const exited = once(worker.child, 'exit');
    const stopped = performance.now();
    worker.child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect(code).toBe(1);
    expect(performance.now() - stopped).toBeLessThan(60_000);
    expect(worker.output()).toContain('worker stopped without a graceful close');
  } finally {
    if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
    await broken.close();
  }
}, 120_000);
