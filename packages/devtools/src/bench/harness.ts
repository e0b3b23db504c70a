import type { SyncMode } from '@dirsync/contracts';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { flushCompileCache } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import {
  close,
  connect,
  createKeyRing,
  ensureDatabase,
  generateSecretKey,
  getRun,
  migrate,
  type Db,
  type KeyRing,
  type Run,
} from '@dirsync/db';
import { createEnqueueClient, createQueueClient, type EnqueueClient } from '@dirsync/jobs';
import { requestSync } from '@dirsync/scheduler';
import { waitFor } from '@dirsync/testkit';
import { startService, warmCompileCache, type ChildService } from '@dirsync/cli';

/** What every benchmark runs against: a clean database, its own queues and a real worker process. */
export interface BenchHarness {
  readonly db: Db;
  readonly ring: KeyRing;
  readonly worker: ChildService;
  /**
   * Runs `fn` and returns, beside its value, the CPU seconds (user and system, read from `/proc`;
   * NaN where it cannot tell) the worker, PostgreSQL and the directory (the process `directoryPid`)
   * used meanwhile: they share the machine's cores, so the wall-clock time is bound by their sum.
   * PostgreSQL's is its backends serving the benchmark's database and the server's own processes
   * (WAL writer, checkpointer), which other work on the same server also keeps busy.
   */
  cpuDuring<T>(directoryPid: number | undefined, fn: () => Promise<T>): Promise<{ value: T; worker: number; postgres: number; directory: number }>;
  /**
   * The C allocator the worker runs with: `jemalloc` and its settings (`MALLOC_CONF`) when the
   * library is mapped into the process, else `glibc`. Its memory depends on it (docker/Dockerfile).
   */
  workerAllocator(): Promise<string>;
  /** Enqueues a sync like any other service would and waits for its run to succeed. */
  runSync(integrationId: string, mode: SyncMode): Promise<Run>;
  /** Writes `<prefix><date>.json` and `<prefix>latest.json` into the results folder. */
  writeResults(prefix: string, results: { date: string }): Promise<string>;
  close(): Promise<void>;
}

/** Where and how a benchmark runs. */
export interface BenchHarnessOptions {
  label: string;
  databaseUrl: string;
  redisUrl: string;
  resultsDir: string;
}

/**
 * Resets the benchmark database (the figures must not depend on an earlier run), migrates it and
 * starts one `dirsync worker` child process on a queue prefix of its own.
 */
export async function startBenchHarness(options: BenchHarnessOptions): Promise<BenchHarness> {
  const dir = await mkdtemp(join(tmpdir(), `dirsync-${options.label}-`));
  const prefix = `dirsync-${options.label}-${process.pid}`;
  await ensureDatabase(options.databaseUrl);
  const admin = postgres(options.databaseUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe('drop schema if exists public cascade; drop schema if exists drizzle cascade; create schema public;');
  await admin.end();
  await migrate(options.databaseUrl);
  const db = connect(options.databaseUrl, { max: 2 });
  const secretKey = generateSecretKey();
  const ring = createKeyRing({ current: secretKey });
  const enqueue: EnqueueClient = createEnqueueClient({ connection: options.redisUrl, prefix });
  // The worker starts from the compile cache, as a deployed one does from the cache its image's
  // build warmed: this process's modules (the entry and its commands, which it writes only at
  // exit) and every command's packages. Otherwise the first run after a change would measure a
  // worker that loads Node's type stripper (about 18 MB).
  flushCompileCache();
  await warmCompileCache();
  const worker = startService(
    'worker',
    ['worker'],
    {
      DATABASE_URL: options.databaseUrl,
      REDIS_URL: options.redisUrl,
      DIRSYNC_SECRET_KEY: secretKey,
      DIRSYNC_QUEUE_PREFIX: prefix,
      DIRSYNC_WORKER_CONCURRENCY: '1',
      DIRSYNC_METRICS_PORT: '0',
      // The benchmark's directories listen on loopback: allowed explicitly.
      DIRSYNC_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128',
      LOG_LEVEL: 'warn',
    },
    join(dir, 'worker.log'),
  );
  return {
    db,
    ring,
    worker,
    async cpuDuring(directoryPid, fn) {
      const database = new URL(options.databaseUrl).pathname.slice(1);
      const read = () => Promise.all([processCpuSeconds(worker.child.pid), postgresCpu(database), processCpuSeconds(directoryPid)] as const);
      const [workerBefore, postgresBefore, directoryBefore] = await read();
      const value = await fn();
      const [workerAfter, postgresAfter, directoryAfter] = await read();
      return {
        value,
        worker: round2(workerAfter - workerBefore),
        postgres: round2(postgresCpuBetween(postgresBefore, postgresAfter)),
        directory: round2(directoryAfter - directoryBefore),
      };
    },
    async workerAllocator() {
      const maps = await readFile(`/proc/${worker.child.pid}/maps`, 'utf8');
      if (!maps.includes('/libjemalloc.so')) return 'glibc';
      const environ = (await readFile(`/proc/${worker.child.pid}/environ`, 'utf8')).split('\0');
      const settings = environ.find((entry) => entry.startsWith('MALLOC_CONF='))?.slice('MALLOC_CONF='.length);
      return settings ? `jemalloc ${settings}` : 'jemalloc';
    },
    async runSync(integrationId, mode) {
      const job = await requestSync({ db, enqueue }, { integrationId, mode, trigger: 'manual', requestedBy: 'bench' });
      return waitFor(
        async () => {
          // A worker that died leaves the run queued for ever: fail now instead of waiting.
          if (worker.child.exitCode !== null || worker.child.signalCode !== null) {
            throw new Error(`the worker process exited (${worker.child.exitCode ?? worker.child.signalCode}); see its log`);
          }
          const run = await getRun(db, job.runId);
          if (run?.status === 'failed') throw new Error(`${mode} sync failed: ${run.error ?? 'unknown error'}`);
          return run?.status === 'succeeded' || run?.status === 'blocked' ? run : undefined;
        },
        { timeoutMs: 30 * 60_000, intervalMs: 100, what: `${mode} sync` },
      );
    },
    async writeResults(resultPrefix, results) {
      await mkdir(options.resultsDir, { recursive: true });
      const body = `${JSON.stringify(results, null, 2)}\n`;
      await writeFile(join(options.resultsDir, `${resultPrefix}${results.date.slice(0, 10)}.json`), body);
      const latest = join(options.resultsDir, `${resultPrefix}latest.json`);
      await writeFile(latest, body);
      return latest;
    },
    async close() {
      await worker.stop();
      await enqueue.close();
      await close(db);
      await rm(dir, { recursive: true, force: true });
      // Leave no benchmark queue keys behind.
      const queues = createQueueClient({ connection: options.redisUrl, prefix });
      for (const queue of queues.allQueues()) await queue.obliterate({ force: true }).catch(() => undefined);
      await queues.close();
    },
  };
}

// Linux reports a process's times in clock ticks of 1/100 s (USER_HZ, the same on every architecture).
const ticksPerSecond = 100;

/** CPU seconds (user and system) process `pid` used so far, read from `/proc`; NaN where it cannot tell. */
export async function processCpuSeconds(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Fields after the command name (which may hold spaces, hence the last parenthesis): utime is
  // the 14th field of the line, stime the 15th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const user = Number(fields[11]);
  const system = Number(fields[12]);
  return Number.isFinite(user) && Number.isFinite(system) ? (user + system) / ticksPerSecond : Number.NaN;
}

/**
 * Runs `fn` and returns, beside its value, the CPU seconds PostgreSQL used meanwhile for the
 * database `databaseUrl` names: its backends and the server's own processes (WAL writer,
 * checkpointer), which work for every database (see {@link BenchHarness.cpuDuring}).
 */
export async function postgresCpuDuring<T>(databaseUrl: string, fn: () => Promise<T>): Promise<{ value: T; postgres: number }> {
  const database = new URL(databaseUrl).pathname.slice(1);
  const before = await postgresCpu(database);
  const value = await fn();
  return { value, postgres: round2(postgresCpuBetween(before, await postgresCpu(database))) };
}

// A backend names itself `postgres: <cluster>: <user> <database> <client>(<port>) <state>`; the
// server's own processes (`postgres: <cluster>: walwriter`) name no client.
const backendTitle = /^postgres: \S+: \S+ (\S+) (?:\[local\]|\S+\(\d+\))/;

/** CPU seconds used so far by each PostgreSQL process serving `database` (see above), by pid. */
async function postgresCpu(database: string): Promise<Map<string, number>> {
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((name) => /^\d+$/.test(name));
  const used = new Map<string, number>();
  for (const pid of pids) {
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
    if (comm !== 'postgres') continue;
    const title = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
    const backend = backendTitle.exec(title);
    if (backend !== null && backend[1] !== database) continue;
    const cpu = await processCpuSeconds(Number(pid));
    if (Number.isFinite(cpu)) used.set(pid, cpu);
  }
  return used;
}

/**
 * What the `postgres` processes used between two reads: a process that started in between counts
 * whole; one that ended takes its time with it (never a negative sum). NaN when none was seen.
 */
function postgresCpuBetween(before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): number {
  if (after.size === 0) return Number.NaN;
  let total = 0;
  for (const [pid, cpu] of after) total += cpu - (before.get(pid) ?? 0);
  return total;
}

/** Runs `fn` and returns its value with the milliseconds it took. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

/** Seconds with millisecond precision. */
export const seconds = (ms: number) => Math.round(ms) / 1000;

/** A number rounded to two decimals. */
export const round2 = (value: number) => Math.round(value * 100) / 100;
