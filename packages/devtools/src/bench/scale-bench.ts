import { mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import postgres from 'postgres';
import {
  close,
  connect,
  createAccount,
  createIntegration,
  createKeyRing,
  ensureDatabase,
  generateSecretKey,
  migrate,
  type Db,
  type KeyRing,
} from '@dirsync/db';
import { createEnqueueClient, type EnqueueClient, openRedis } from '@dirsync/jobs';
import { requestSync } from '@dirsync/scheduler';
import { startSlapd, waitFor, type SlapdServer } from '@dirsync/testkit';
import { startService, table, type ChildService } from '@dirsync/cli';
import { ldapIntegrationSettings } from '../local-directory.ts';
import { seconds } from './harness.ts';

/**
 * `dirsync bench --scale`: many integrations, several `dirsync worker` processes and scheduler
 * replicas (real `dirsync scheduler` processes), measuring what an installation of thousands of
 * integrations cares about: each replica's tick time and CPU, how long syncs wait between
 * enqueue and start per priority class, objects per second, and the Redis and PostgreSQL
 * connections the processes hold.
 */
export interface ScaleBenchOptions {
  /** Integrations to create (spread over a few slapd servers and several accounts). */
  integrations: number;
  /** `dirsync worker` processes (0 with `ticksOnly`). */
  workers: number;
  /** Concurrency of each worker. */
  workerConcurrency: number;
  /** `dirsync scheduler` replicas. */
  schedulers: number;
  /** Scheduler replicas only, no worker and no directory: the tick figures at 10,000 integrations. */
  ticksOnly: boolean;
  /** Seconds of steady state after the first full syncs are done (scheduled deltas, manual syncs). */
  steadySeconds: number;
  databaseUrl: string;
  redisUrl: string;
  resultsDir: string;
  log: (line: string) => void;
}

/** Scheduler replicas tick every 5 seconds in the benchmark (30 in a deployment) to keep it short. */
const BENCH_TICK = '*/5 * * * * *';
const ACCOUNTS = 20;
/** Ticks with nothing due measured per replica in `--ticks-only`. */
const QUIET_TICKS = 4;
const SLAPD_SERVERS = 3;
const directory = { users: 40, groups: 4, membersPerGroup: 10 };

interface TickLine {
  considered: number;
  enqueued: number;
  failed: number;
  durationMs: number;
  cpuMs: number;
}

interface Processes {
  schedulers: ChildService[];
  workers: ChildService[];
  logs: { schedulers: string[]; workers: string[] };
}

/** CPU seconds (user + system) a child process has used, from /proc/<pid>/stat. */
async function cpuSeconds(service: ChildService): Promise<number> {
  const stat = await readFile(`/proc/${service.child.pid}/stat`, 'utf8').catch(() => '');
  // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The scheduler's `tick done` lines so far (pino JSON). */
async function tickLines(logFile: string): Promise<TickLine[]> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const ticks: TickLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('"tick done"')) continue;
    try {
      const entry = JSON.parse(line) as Partial<TickLine>;
      if (typeof entry.durationMs === 'number' && typeof entry.cpuMs === 'number') {
        ticks.push({ considered: entry.considered ?? 0, enqueued: entry.enqueued ?? 0, failed: entry.failed ?? 0, durationMs: entry.durationMs, cpuMs: entry.cpuMs });
      }
    } catch {
      // A line cut by a process still writing: read again next time.
    }
  }
  return ticks;
}

async function logHas(logFile: string, message: string): Promise<boolean> {
  return (await readFile(logFile, 'utf8').catch(() => '')).includes(`"msg":"${message}"`);
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

/** Resets the benchmark database (figures must not depend on an earlier run) and migrates it. */
async function freshDatabase(url: string): Promise<void> {
  await ensureDatabase(url);
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  await admin.unsafe('drop schema if exists public cascade; drop schema if exists drizzle cascade; create schema public;');
  await admin.end();
  await migrate(url);
}

/** Removes every key of the benchmark's queue prefix (whatever queues and shards live under it). */
async function wipeQueues(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

/** Socket inodes each process holds (from /proc/<pid>/fd). */
async function socketInodes(pid: number): Promise<Set<string>> {
  const inodes = new Set<string>();
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  for (const fd of fds) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode) inodes.add(inode);
  }
  return inodes;
}

/** Local TCP port → socket inode, from /proc/net/tcp and tcp6. */
async function tcpInodesByLocalPort(): Promise<Map<number, string[]>> {
  const byPort = new Map<number, string[]>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      const inode = fields[9];
      if (!local || !inode) continue;
      const port = parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
      byPort.set(port, [...(byPort.get(port) ?? []), inode]);
    }
  }
  return byPort;
}

/**
 * Redis connections per benchmark process: each `CLIENT LIST` entry's client port is matched to
 * the process holding that socket, so connections of anything else using the same Redis are
 * counted apart (`other`).
 */
async function redisConnections(redis: Redis, services: readonly ChildService[]): Promise<{ total: number; ours: number; byProcess: Record<string, number> }> {
  const list = String(await redis.call('CLIENT', 'LIST'));
  const byPort = await tcpInodesByLocalPort();
  const owners = await Promise.all(
    [...services.map((service) => ({ name: service.name, pid: service.child.pid })), { name: 'bench', pid: process.pid }].map(async (owner) => ({
      name: owner.name,
      inodes: owner.pid === undefined ? new Set<string>() : await socketInodes(owner.pid),
    })),
  );
  const byProcess: Record<string, number> = {};
  let total = 0;
  let ours = 0;
  for (const line of list.split('\n')) {
    const port = /(?:^| )addr=\S+:(\d+)(?: |$)/.exec(line)?.[1];
    if (port === undefined) continue;
    total += 1;
    const inodes = byPort.get(Number(port)) ?? [];
    const owner = owners.find((candidate) => inodes.some((inode) => candidate.inodes.has(inode)))?.name ?? 'other';
    // One line per role: scheduler-0 and scheduler-1 are both "scheduler".
    const role = owner.replace(/-\d+$/, '');
    if (owner !== 'other') ours += 1;
    byProcess[role] = (byProcess[role] ?? 0) + 1;
  }
  return { total, ours, byProcess };
}

/** Backends on the benchmark database per `application_name`. */
async function pgConnections(sql: postgres.Sql, database: string): Promise<{ total: number; byApplication: Record<string, number> }> {
  const rows = await sql<{ application_name: string; n: number }[]>`
    select application_name, count(*)::int as n from pg_stat_activity where datname = ${database} group by application_name`;
  const byApplication = Object.fromEntries(rows.map((row) => [row.application_name || '(none)', row.n]));
  return { total: rows.reduce((sum, row) => sum + row.n, 0), byApplication };
}

/** Enqueue-to-start latency per (trigger, requested mode) of the runs that started. */
async function latencies(sql: postgres.Sql): Promise<Array<{ class: string; runs: number; p50Seconds: number; p99Seconds: number }>> {
  const rows = await sql<{ trigger: string; mode_requested: string; runs: number; p50: number; p99: number }[]>`
    select trigger, mode_requested, count(*)::int as runs,
      percentile_cont(0.5) within group (order by extract(epoch from started_at - queued_at))::float8 as p50,
      percentile_cont(0.99) within group (order by extract(epoch from started_at - queued_at))::float8 as p99
    from sync_runs where started_at is not null
    group by trigger, mode_requested order by trigger, mode_requested`;
  return rows.map((row) => ({
    class: `${row.trigger} ${row.mode_requested}`,
    runs: row.runs,
    p50Seconds: Math.round(row.p50 * 1000) / 1000,
    p99Seconds: Math.round(row.p99 * 1000) / 1000,
  }));
}

interface TickFigures {
  replica: number;
  ticks: number;
  /** The tick that took the first wave (every integration seen for the first time). */
  firstWave: { considered: number; enqueued: number; seconds: number; cpuSeconds: number } | null;
  /** Ticks with nothing due for this replica. */
  quiet: { ticks: number; maxMs: number; maxCpuMs: number };
  /** Ticks with something due, after the first wave. */
  busy: { ticks: number; considered: number; enqueued: number; p50Ms: number; maxMs: number; cpuMs: number };
  /** The busy tick that enqueued the most (the delta wave of `--ticks-only`). */
  largestBusy: TickLine | null;
  processCpuSeconds: number;
}

function tickFigures(replica: number, ticks: TickLine[], processCpuSeconds: number): TickFigures {
  const firstIndex = ticks.findIndex((tick) => tick.considered > 0);
  const first = firstIndex < 0 ? undefined : ticks[firstIndex];
  // Ticks before the first wave ran while the process was starting (connections, compilation).
  const rest = firstIndex < 0 ? [] : ticks.slice(firstIndex + 1);
  const quiet = rest.filter((tick) => tick.considered === 0);
  const busy = rest.filter((tick) => tick.considered > 0);
  return {
    replica,
    ticks: ticks.length,
    firstWave: first
      ? { considered: first.considered, enqueued: first.enqueued, seconds: seconds(first.durationMs), cpuSeconds: seconds(first.cpuMs) }
      : null,
    quiet: {
      ticks: quiet.length,
      maxMs: Math.max(0, ...quiet.map((tick) => tick.durationMs)),
      maxCpuMs: Math.max(0, ...quiet.map((tick) => tick.cpuMs)),
    },
    busy: {
      ticks: busy.length,
      considered: busy.reduce((sum, tick) => sum + tick.considered, 0),
      enqueued: busy.reduce((sum, tick) => sum + tick.enqueued, 0),
      p50Ms: percentile(busy.map((tick) => tick.durationMs), 50),
      maxMs: Math.max(0, ...busy.map((tick) => tick.durationMs)),
      cpuMs: busy.reduce((sum, tick) => sum + tick.cpuMs, 0),
    },
    largestBusy: busy.reduce<TickLine | null>((max, tick) => (max === null || tick.enqueued > max.enqueued ? tick : max), null),
    processCpuSeconds: Math.round(processCpuSeconds * 100) / 100,
  };
}

/** Runs the scale benchmark, prints its figures and writes the JSON results. */
export async function runScaleBench(options: ScaleBenchOptions): Promise<Record<string, unknown>> {
  const { log } = options;
  const label = options.ticksOnly ? 'scale-ticks' : 'scale';
  const dir = await mkdtemp(join(tmpdir(), `dirsync-${label}-`));
  const prefix = `dirsync-${label}-${process.pid}`;
  const database = new URL(options.databaseUrl).pathname.slice(1);
  const secretKey = generateSecretKey();
  const ring: KeyRing = createKeyRing({ current: secretKey });
  const servers: SlapdServer[] = [];
  let succeeded = false;
  const processes: Processes = { schedulers: [], workers: [], logs: { schedulers: [], workers: [] } };
  let db: Db | undefined;
  let sql: postgres.Sql | undefined;
  let enqueue: EnqueueClient | undefined;
  const redis = openRedis(options.redisUrl, 'inspector', { extra: { lazyConnect: true } }) as Redis;
  const env = {
    DATABASE_URL: options.databaseUrl,
    REDIS_URL: options.redisUrl,
    DIRSYNC_SECRET_KEY: secretKey,
    DIRSYNC_QUEUE_PREFIX: prefix,
    DIRSYNC_METRICS_PORT: '0',
    DIRSYNC_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128',
  };
  try {
    await redis.connect();
    log(`fresh database ${database}…`);
    await freshDatabase(options.databaseUrl);
    db = connect(options.databaseUrl, { max: 4 });
    sql = postgres(options.databaseUrl, { max: 2, onnotice: () => {} });
    enqueue = createEnqueueClient({ connection: options.redisUrl, prefix });

    if (!options.ticksOnly) {
      log(`starting ${SLAPD_SERVERS} slapd servers (${directory.users} users, ${directory.groups} groups each)…`);
      servers.push(...(await Promise.all(Array.from({ length: SLAPD_SERVERS }, () => startSlapd({ data: directory })))));
    }
    const accounts: Array<{ id: string }> = [];
    for (let i = 0; i < ACCOUNTS; i++) accounts.push(await createAccount(db, { name: `scale-${i}` }));

    log(`creating ${options.integrations.toLocaleString('en-US')} integrations (disabled until every replica runs)…`);
    const createStarted = performance.now();
    if (options.ticksOnly) {
      // No directory is ever read: the rows need their schedule only.
      await sql`
        insert into integrations (account_id, kind, name, settings, enabled)
        select a.id, 'ldap', 'scale-' || g, '{}'::jsonb, false
        from generate_series(1, ${options.integrations}) g
        join (select id, (row_number() over (order by id) - 1)::int as k from accounts) a on a.k = g % ${ACCOUNTS}`;
    } else {
      let next = 0;
      const lanes = Array.from({ length: 8 }, async () => {
        while (next < options.integrations) {
          const i = next++;
          const server = servers[i % servers.length]!;
          await createIntegration(
            db!,
            {
              accountId: accounts[i % ACCOUNTS]!.id,
              kind: 'ldap',
              name: `scale-${i}`,
              settings: ldapIntegrationSettings(server),
              enabled: false,
              // Deltas every minute so a short run sees scheduled deltas as well as the first fulls.
              deltaCron: '* * * * *',
            },
            { ring, plaintext: server.readerPassword },
          );
        }
      });
      await Promise.all(lanes);
    }
    log(`  ${seconds(performance.now() - createStarted)}s`);

    const baseline = { redis: await redisConnections(redis, []), postgres: await pgConnections(sql, database) };
    for (let i = 0; i < (options.ticksOnly ? 0 : options.workers); i++) {
      const logFile = join(dir, `worker-${i}.log`);
      processes.logs.workers.push(logFile);
      processes.workers.push(
        startService(`worker-${i}`, ['worker'], { ...env, DIRSYNC_WORKER_CONCURRENCY: String(options.workerConcurrency), DIRSYNC_WORKER_ID: `bench-worker-${i}`, LOG_LEVEL: 'warn' }, logFile),
      );
    }
    for (let i = 0; i < options.schedulers; i++) {
      const logFile = join(dir, `scheduler-${i}.log`);
      processes.logs.schedulers.push(logFile);
      processes.schedulers.push(
        startService(
          `scheduler-${i}`,
          ['scheduler'],
          { ...env, DIRSYNC_SCHEDULER_TICK: BENCH_TICK, DIRSYNC_SCHEDULER_API: 'false', PORT: '0', LOG_LEVEL: 'debug' },
          logFile,
        ),
      );
    }
    log(`starting ${processes.workers.length} workers (concurrency ${options.workerConcurrency}) and ${processes.schedulers.length} scheduler replicas…`);
    const services = () => [...processes.schedulers, ...processes.workers];
    const alive = () => {
      for (const service of [...processes.schedulers, ...processes.workers]) {
        if (service.child.exitCode !== null || service.child.signalCode !== null) {
          throw new Error(`${service.name} exited (${service.child.exitCode ?? service.child.signalCode}); its log is in ${dir}`);
        }
      }
    };
    await waitFor(
      async () => {
        alive();
        return (await Promise.all(processes.logs.schedulers.map((file) => logHas(file, 'tick done')))).every(Boolean);
      },
      { timeoutMs: 60_000, intervalMs: 200, what: 'every scheduler replica to tick once' },
    );
    const cpuBefore = await Promise.all(processes.schedulers.map(cpuSeconds));

    // Enabled in one statement, so the replicas meet the whole first wave on the same tick.
    const started = performance.now();
    await sql`update integrations set enabled = true`;
    log('integrations enabled: first wave (a full sync each)…');
    const runCount = async (where: postgres.PendingQuery<postgres.Row[]>) => (await sql!<{ n: number }[]>`select count(*)::int as n from sync_runs where ${where}`)[0]!.n;
    await waitFor(
      async () => {
        alive();
        return (await runCount(sql!`trigger = 'schedule'`)) >= options.integrations;
      },
      { timeoutMs: 10 * 60_000, intervalMs: 250, what: 'the first wave to be enqueued' },
    );
    const firstWaveEnqueuedSeconds = seconds(performance.now() - started);
    log(`  enqueued in ${firstWaveEnqueuedSeconds}s`);

    let deltaWave: { enqueuedSeconds: number } | undefined;
    let manualRequested = 0;
    let connections: { redis: Awaited<ReturnType<typeof redisConnections>>; postgres: Awaited<ReturnType<typeof pgConnections>> } | undefined;
    if (options.ticksOnly) {
      // Every delta due at once, as they all were before jitter: the queue emptied as if workers
      // had taken the fulls, and every integration's delta slot put back by one interval.
      await waitFor(async () => (await Promise.all(processes.logs.schedulers.map(tickLines))).every((ticks) => ticks.length >= 3), {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: 'a few quiet ticks',
      });
      connections = { redis: await redisConnections(redis, services()), postgres: await pgConnections(sql, database) };
      await sql`update sync_runs set status = 'failed', error = 'benchmark reset', finished_at = now() where status = 'queued'`;
      await wipeQueues(redis, prefix);
      const before = await runCount(sql`trigger = 'schedule'`);
      const waveStarted = performance.now();
      await sql`update integrations set delta_scheduled_for = delta_scheduled_for - interval '5 minutes'`;
      log('every delta slot due at once…');
      await waitFor(async () => (await runCount(sql!`trigger = 'schedule'`)) >= before + options.integrations, {
        timeoutMs: 10 * 60_000,
        intervalMs: 250,
        what: 'the delta wave to be enqueued',
      });
      deltaWave = { enqueuedSeconds: seconds(performance.now() - waveStarted) };
      log(`  enqueued in ${deltaWave.enqueuedSeconds}s`);
      // Nothing due at all: daily schedules twelve hours away (the change makes every row due for
      // one look, which re-times it), then ticks that find nothing.
      const ticksBefore = (await Promise.all(processes.logs.schedulers.map(tickLines))).map((replicaTicks) => replicaTicks.length);
      const farCron = `0 ${(new Date().getUTCHours() + 12) % 24} * * *`;
      await sql`update integrations set delta_cron = ${farCron}, full_cron = ${farCron}`;
      log('nothing due: quiet ticks…');
      await waitFor(
        async () => {
          alive();
          const now = await Promise.all(processes.logs.schedulers.map(tickLines));
          return now.every((replicaTicks, i) => replicaTicks.length >= (ticksBefore[i] ?? 0) + QUIET_TICKS + 1);
        },
        { timeoutMs: 120_000, intervalMs: 500, what: 'quiet ticks' },
      );
    } else {
      // Manual syncs now and then while the fulls are queued: the class that must not wait behind them.
      const integrationIds = (await sql<{ id: string }[]>`select id from integrations order by name limit 40`).map((row) => row.id);
      const manual = setInterval(() => {
        for (const integrationId of integrationIds.splice(0, 5)) {
          manualRequested += 1;
          void requestSync({ db: db!, enqueue: enqueue! }, { integrationId, mode: 'delta', trigger: 'manual', requestedBy: 'bench' }).catch(
            (error: unknown) => log(`manual sync refused: ${String(error)}`),
          );
        }
      }, 5_000);
      try {
        await waitFor(
          async () => {
            alive();
            return (await runCount(sql!`trigger = 'schedule' and mode_requested = 'full' and finished_at is not null`)) >= options.integrations;
          },
          { timeoutMs: 20 * 60_000, intervalMs: 500, what: 'the first full syncs to finish' },
        );
        log(`  first fulls done after ${seconds(performance.now() - started)}s; ${options.steadySeconds}s of steady state…`);
        connections = { redis: await redisConnections(redis, services()), postgres: await pgConnections(sql, database) };
        const steadyUntil = Date.now() + options.steadySeconds * 1000;
        await waitFor(
          () => {
            alive();
            return Date.now() >= steadyUntil;
          },
          { timeoutMs: options.steadySeconds * 1000 + 60_000, intervalMs: 500, what: 'the steady state' },
        );
      } finally {
        clearInterval(manual);
      }
    }
    const elapsedSeconds = seconds(performance.now() - started);
    const cpuAfter = await Promise.all(processes.schedulers.map(cpuSeconds));
    const workerCpu = await Promise.all(processes.workers.map(cpuSeconds));
    const ticks = await Promise.all(processes.logs.schedulers.map(tickLines));
    const replicas = ticks.map((replicaTicks, i) => tickFigures(i + 1, replicaTicks, (cpuAfter[i] ?? 0) - (cpuBefore[i] ?? 0)));
    const [objects] = await sql<{ objects: number; runs: number; first: string | null; last: string | null; failed: number }[]>`
      select coalesce(sum(fetched), 0)::int as objects, count(*)::int as runs,
        count(*) filter (where status = 'failed')::int as failed,
        min(started_at)::text as first, max(finished_at)::text as last
      from sync_runs where finished_at is not null and started_at is not null and error is distinct from 'benchmark reset'`;
    const busySeconds = objects?.first && objects.last ? (new Date(objects.last).getTime() - new Date(objects.first).getTime()) / 1000 : 0;

    const results = {
      date: new Date().toISOString(),
      mode: options.ticksOnly ? 'ticks-only' : 'full',
      integrations: options.integrations,
      accounts: ACCOUNTS,
      schedulers: options.schedulers,
      workers: processes.workers.length,
      workerConcurrency: options.workerConcurrency,
      tick: BENCH_TICK,
      machine: { cpus: cpus().length, node: process.version },
      elapsedSeconds,
      firstWave: { enqueuedSeconds: firstWaveEnqueuedSeconds },
      ...(deltaWave ? { deltaWave } : {}),
      replicas,
      latency: await latencies(sql),
      ...(options.ticksOnly
        ? {}
        : {
            syncs: {
              finished: objects?.runs ?? 0,
              failed: objects?.failed ?? 0,
              manualRequested,
              objects: objects?.objects ?? 0,
              objectsPerSecond: busySeconds > 0 ? Math.round((objects?.objects ?? 0) / busySeconds) : 0,
              workerCpuSeconds: workerCpu.map((s) => Math.round(s * 100) / 100),
            },
            directories: { servers: SLAPD_SERVERS, ...directory },
          }),
      connections: { baseline, during: connections },
    };

    const rows: unknown[][] = replicas.map((r) => [
      `scheduler ${r.replica}`,
      r.firstWave ? `${r.firstWave.enqueued} in ${r.firstWave.seconds}s / ${r.firstWave.cpuSeconds} CPU-s` : '-',
      `${r.busy.ticks} ticks, ${r.busy.enqueued} enq., p50 ${r.busy.p50Ms} ms, max ${r.busy.maxMs} ms`,
      `${r.quiet.ticks} ticks, max ${r.quiet.maxMs} ms / ${r.quiet.maxCpuMs} CPU-ms`,
      `${r.processCpuSeconds}s`,
    ]);
    log(`\n${table(['replica', 'first wave tick', 'busy ticks', 'quiet ticks', 'process CPU'], rows)}\n`);
    if (options.ticksOnly) {
      const waves = replicas.map((r) => [`scheduler ${r.replica}`, r.largestBusy ? `${r.largestBusy.enqueued} in ${seconds(r.largestBusy.durationMs)}s / ${seconds(r.largestBusy.cpuMs)} CPU-s` : '-']);
      log(`${table(['replica', 'every delta due at once'], waves)}\n`);
    }
    log(table(['priority class', 'runs', 'p50 wait', 'p99 wait'], results.latency.map((l) => [l.class, l.runs, `${l.p50Seconds}s`, `${l.p99Seconds}s`])));
    if (results.syncs) log(`\nsyncs finished ${results.syncs.finished} (failed ${results.syncs.failed}), ${results.syncs.objects} objects, ${results.syncs.objectsPerSecond} objects/s`);
    if (connections) {
      const perProcess = (count: number, of: number) => (of > 0 ? `${count} (${Math.round((count / of) * 10) / 10} per process)` : String(count));
      const redisBy = connections.redis.byProcess;
      const pgBy = connections.postgres.byApplication;
      log(
        `Redis connections: schedulers ${perProcess(redisBy['scheduler'] ?? 0, options.schedulers)}, workers ${perProcess(redisBy['worker'] ?? 0, processes.workers.length)}, ` +
          `bench ${redisBy['bench'] ?? 0}; others on this Redis ${redisBy['other'] ?? 0}`,
      );
      log(
        `PostgreSQL connections on ${database}: schedulers ${perProcess(pgBy['dirsync-scheduler'] ?? 0, options.schedulers)}, ` +
          `workers ${perProcess(pgBy['dirsync-worker'] ?? 0, processes.workers.length)}, bench ${connections.postgres.total - (pgBy['dirsync-scheduler'] ?? 0) - (pgBy['dirsync-worker'] ?? 0)}`,
      );
    }
    await mkdir(options.resultsDir, { recursive: true });
    const body = `${JSON.stringify(results, null, 2)}\n`;
    await writeFile(join(options.resultsDir, `${label}-${results.date.slice(0, 10)}.json`), body);
    const latest = join(options.resultsDir, `${label}-latest.json`);
    await writeFile(latest, body);
    log(`results written to ${latest}`);
    succeeded = true;
    return results;
  } finally {
    await Promise.all([...processes.schedulers, ...processes.workers].map((service) => service.stop()));
    await wipeQueues(redis, prefix).catch(() => undefined);
    redis.disconnect();
    await enqueue?.close();
    await sql?.end({ timeout: 5 });
    if (db) await close(db);
    await Promise.all(servers.map((server) => server.stop()));
    // The processes' logs stay for a run that failed.
    if (succeeded) await rm(dir, { recursive: true, force: true });
    else log(`process logs kept in ${dir}`);
  }
}
