import type { SyncMode } from '@dirsync/contracts';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { close, connect, createAccount, createIntegration, createKeyRing, ensureDatabase, generateSecretKey, getRun, migrate, type Db, type KeyRing, type Run } from '@dirsync/db';
import { createEnqueueClient, createQueueClient } from '@dirsync/jobs';
import { requestSync } from '@dirsync/scheduler';
import { startSlapd, waitFor, type SlapdServer } from '@dirsync/testkit';
import { directoryHostOf } from '@dirsync/worker';
import { startService, table, type ChildService } from '@dirsync/cli';
import { ldapIntegrationSettings } from '../local-directory.ts';

/** Shape of the fairness scenario and where results go. */
export interface FairnessBenchOptions {
  /** Users in the directory every big full sync reads. */
  readonly bigUsers: number;
  /** Accounts sharing the installation. */
  readonly accounts: number;
  /** Big full syncs per account, queued first. */
  readonly fullsPerAccount: number;
  /** Small delta syncs per account, queued behind the fulls. */
  readonly deltasPerAccount: number;
  /** Worker processes, and sync slots of each. */
  readonly workers: number;
  readonly concurrency: number;
  /** Limits of the second pass (the first runs without any). */
  readonly limits: { readonly accountConcurrency: number; readonly accountFullConcurrency: number; readonly hostConcurrency: number; readonly retrySeconds: number };
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly resultsDir: string;
  readonly log: (line: string) => void;
}

/** Figures of one pass of the scenario. */
export interface FairnessFigures {
  readonly limits: Record<string, string>;
  /** Enqueue to start of the small deltas, milliseconds. */
  readonly deltaWaitMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** Enqueue to start of the big fulls, milliseconds. */
  readonly fullWaitMs: { readonly p50: number; readonly max: number };
  /** How long the deltas and the fulls ran once started (p50), milliseconds. */
  readonly runMs: { readonly deltaP50: number; readonly fullP50: number };
  /** First enqueue to last finish, milliseconds. */
  readonly makespanMs: number;
  /** Most syncs running at once against each directory server (`big` or `small` → count). */
  readonly maxConcurrentPerHost: Record<string, number>;
  /** Most syncs, and most full syncs, of one account running at once. */
  readonly maxConcurrentPerAccount: number;
  readonly maxConcurrentFullsPerAccount: number;
  readonly failedRuns: number;
}

/** Everything `bench/results/fairness-latest.json` holds. */
export interface FairnessResults {
  readonly date: string;
  readonly scenario: Omit<FairnessBenchOptions, 'databaseUrl' | 'redisUrl' | 'resultsDir' | 'log'> & { readonly smallUsers: number };
  readonly withoutLimits: FairnessFigures;
  readonly withLimits: FairnessFigures;
}

const smallUsers = 200;

/** The value below which `fraction` of the sorted values lie (nearest rank). */
function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank]!;
}

/** The most runs whose [started, finished] intervals overlap at one instant. */
function maxOverlap(runs: readonly Run[]): number {
  const events = runs.flatMap((run) =>
    run.startedAt && run.finishedAt ? [{ at: run.startedAt.getTime(), step: 1 }, { at: run.finishedAt.getTime(), step: -1 }] : [],
  );
  events.sort((a, b) => a.at - b.at || a.step - b.step);
  let now = 0;
  let max = 0;
  for (const event of events) {
    now += event.step;
    max = Math.max(max, now);
  }
  return max;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    groups.set(k, [...(groups.get(k) ?? []), item]);
  }
  return groups;
}

interface Planned {
  readonly integrationId: string;
  readonly accountId: string;
  readonly host: string;
  readonly mode: SyncMode;
}

/**
 * One pass: fresh accounts and integrations, worker processes started with `limitEnv`, the
 * small integrations' first (full) syncs to give them cursors, then the measured burst: every
 * big full queued first, every small delta behind them, all with the same trigger so that only
 * the limits tell them apart.
 */
async function runPass(
  options: FairnessBenchOptions,
  context: { db: Db; ring: KeyRing; secretKey: string; big: SlapdServer; small: SlapdServer; dir: string; hostLabels: Record<string, string> },
  label: string,
  limitEnv: Record<string, string>,
): Promise<FairnessFigures> {
  const { db, ring } = context;
  const prefix = `dirsync-fairness-${label}-${process.pid}`;
  const enqueue = createEnqueueClient({ connection: options.redisUrl, prefix });
  const workers: ChildService[] = [];
  try {
    for (let i = 0; i < options.workers; i += 1) {
      workers.push(
        startService(
          `worker-${i}`,
          ['worker'],
          {
            DATABASE_URL: options.databaseUrl,
            REDIS_URL: options.redisUrl,
            DIRSYNC_SECRET_KEY: context.secretKey,
            DIRSYNC_QUEUE_PREFIX: prefix,
            DIRSYNC_WORKER_CONCURRENCY: String(options.concurrency),
            DIRSYNC_WORKER_ID: `fairness-${label}-${i}`,
            DIRSYNC_METRICS_PORT: '0',
            DIRSYNC_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128',
            LOG_LEVEL: 'warn',
            ...limitEnv,
          },
          join(context.dir, `${label}-worker-${i}.log`),
        ),
      );
    }
    const planned: Planned[] = [];
    for (let a = 0; a < options.accounts; a += 1) {
      const accountId = (await createAccount(db, { name: `fairness-${label}-${a}` })).id;
      for (const [server, count, mode] of [
        [context.big, options.fullsPerAccount, 'full'],
        [context.small, options.deltasPerAccount, 'delta'],
      ] as const) {
        const settings = { ...ldapIntegrationSettings(server), pageSize: 500 };
        for (let i = 0; i < count; i += 1) {
          const integration = await createIntegration(
            db,
            { accountId, kind: 'ldap', name: `${mode}-${a}-${i}`, settings: settings as unknown as Record<string, unknown> },
            { ring, plaintext: server.readerPassword },
          );
          planned.push({ integrationId: integration.id, accountId, host: directoryHostOf(settings as unknown as Record<string, unknown>) ?? server.url, mode });
        }
      }
    }
    const request = (item: Planned, mode: SyncMode) =>
      requestSync({ db, enqueue }, { integrationId: item.integrationId, mode, trigger: 'manual', requestedBy: 'bench' });
    const ended = async (runIds: readonly string[], what: string) =>
      waitFor(
        async () => {
          const dead = workers.find((worker) => worker.child.exitCode !== null || worker.child.signalCode !== null);
          if (dead) throw new Error(`${dead.name} exited; see its log in ${context.dir}`);
          const runs = await Promise.all(runIds.map((id) => getRun(db, id)));
          return runs.every((run) => run && ['succeeded', 'failed', 'blocked'].includes(run.status)) ? (runs as Run[]) : undefined;
        },
        { timeoutMs: 60 * 60_000, intervalMs: 200, what },
      );

    // Cursors for the small integrations: their first sync reads everything.
    const smalls = planned.filter((item) => item.mode === 'delta');
    await ended(await Promise.all(smalls.map(async (item) => (await request(item, 'delta')).runId)), 'the small integrations\' first syncs');

    const started = Date.now();
    const fullIds: string[] = [];
    for (const item of planned.filter((p) => p.mode === 'full')) fullIds.push((await request(item, 'full')).runId);
    const deltaIds: string[] = [];
    for (const item of smalls) deltaIds.push((await request(item, 'delta')).runId);
    const runs = await ended([...fullIds, ...deltaIds], 'the measured syncs');
    const byRun = new Map(runs.map((run) => [run.id, run]));
    const itemOf = new Map(runs.map((run) => [run.id, planned.find((p) => p.integrationId === run.integrationId)!]));
    const wait = (ids: readonly string[]) =>
      ids
        .map((id) => byRun.get(id)!)
        .map((run) => (run.startedAt ? run.startedAt.getTime() - run.queuedAt.getTime() : Number.NaN))
        .filter((ms) => Number.isFinite(ms))
        .sort((a, b) => a - b);
    const took = (ids: readonly string[]) =>
      ids
        .map((id) => byRun.get(id)!)
        .map((run) => (run.startedAt && run.finishedAt ? run.finishedAt.getTime() - run.startedAt.getTime() : Number.NaN))
        .filter((ms) => Number.isFinite(ms))
        .sort((a, b) => a - b);
    const deltaWaits = wait(deltaIds);
    const fullWaits = wait(fullIds);
    const perHost = groupBy(runs, (run) => itemOf.get(run.id)!.host);
    const perAccount = groupBy(runs, (run) => itemOf.get(run.id)!.accountId);
    return {
      limits: limitEnv,
      deltaWaitMs: { p50: percentile(deltaWaits, 0.5), p99: percentile(deltaWaits, 0.99), max: deltaWaits.at(-1) ?? 0 },
      fullWaitMs: { p50: percentile(fullWaits, 0.5), max: fullWaits.at(-1) ?? 0 },
      runMs: { deltaP50: percentile(took(deltaIds), 0.5), fullP50: percentile(took(fullIds), 0.5) },
      makespanMs: Math.max(...runs.map((run) => run.finishedAt?.getTime() ?? started)) - started,
      maxConcurrentPerHost: Object.fromEntries([...perHost].map(([host, hostRuns]) => [context.hostLabels[host] ?? host, maxOverlap(hostRuns)])),
      maxConcurrentPerAccount: Math.max(...[...perAccount.values()].map(maxOverlap)),
      maxConcurrentFullsPerAccount: Math.max(...[...perAccount.values()].map((accountRuns) => maxOverlap(accountRuns.filter((run) => run.mode === 'full')))),
      failedRuns: runs.filter((run) => run.status !== 'succeeded').length,
    };
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()));
    await enqueue.close();
    const queues = createQueueClient({ connection: options.redisUrl, prefix });
    for (const queue of queues.allQueues()) await queue.obliterate({ force: true }).catch(() => undefined);
    await queues.close();
  }
}

/**
 * `dirsync bench --fairness`: big full syncs queued ahead of many small deltas across a few
 * accounts, run by several worker processes twice — without limits, then with the default
 * per-account, per-account-full and per-server limits — printing how long the deltas waited
 * and how many syncs each directory server served at once.
 */
export async function runFairnessBench(options: FairnessBenchOptions): Promise<FairnessResults> {
  const { log } = options;
  const dir = await mkdtemp(join(tmpdir(), 'dirsync-fairness-'));
  await ensureDatabase(options.databaseUrl);
  const admin = postgres(options.databaseUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe('drop schema if exists public cascade; drop schema if exists drizzle cascade; create schema public;');
  await admin.end();
  await migrate(options.databaseUrl);
  const db = connect(options.databaseUrl, { max: 4 });
  const secretKey = generateSecretKey();
  const ring = createKeyRing({ current: secretKey });
  // Stamped an hour ago: a delta's overlap window then finds nothing changed, as for a quiet customer.
  const timestamp = new Date(Date.now() - 3_600_000);
  let big: SlapdServer | undefined;
  let small: SlapdServer | undefined;
  try {
    log(`starting slapd: ${options.bigUsers} users for the full syncs, ${smallUsers} for the deltas`);
    big = await startSlapd({ data: { users: options.bigUsers, groups: 50, membersPerGroup: 50, timestamp } });
    small = await startSlapd({ data: { users: smallUsers, groups: 10, membersPerGroup: 20, timestamp } });
    const hostLabels = { [new URL(big.url).host]: 'big', [new URL(small.url).host]: 'small' };
    const context = { db, ring, secretKey, big, small, dir, hostLabels };
    log('pass 1: no limits');
    const withoutLimits = await runPass(options, context, 'unlimited', {
      DIRSYNC_ACCOUNT_CONCURRENCY: '0',
      DIRSYNC_ACCOUNT_FULL_CONCURRENCY: '0',
      DIRSYNC_HOST_CONCURRENCY: '0',
    });
    const { limits } = options;
    log(`pass 2: limits account ${limits.accountConcurrency}, full ${limits.accountFullConcurrency}, server ${limits.hostConcurrency}, retry ${limits.retrySeconds} s`);
    const withLimits = await runPass(options, context, 'limited', {
      DIRSYNC_ACCOUNT_CONCURRENCY: String(limits.accountConcurrency),
      DIRSYNC_ACCOUNT_FULL_CONCURRENCY: String(limits.accountFullConcurrency),
      DIRSYNC_HOST_CONCURRENCY: String(limits.hostConcurrency),
      DIRSYNC_LIMIT_RETRY_SECONDS: String(limits.retrySeconds),
    });
    const row = (name: string, figures: FairnessFigures) => [
      name,
      `${figures.deltaWaitMs.p50} ms`,
      `${figures.deltaWaitMs.p99} ms`,
      `${figures.fullWaitMs.max} ms`,
      `${figures.runMs.deltaP50} / ${figures.runMs.fullP50} ms`,
      `${figures.makespanMs} ms`,
      Object.entries(figures.maxConcurrentPerHost)
        .map(([host, count]) => `${host}=${count}`)
        .join(' '),
      `${figures.maxConcurrentPerAccount} (${figures.maxConcurrentFullsPerAccount} full)`,
      figures.failedRuns,
    ];
    log(
      `\n${table(
        ['limits', 'delta wait p50', 'delta wait p99', 'full wait max', 'delta / full run p50', 'makespan', 'max syncs per server', 'max per account', 'failed'],
        [row('none', withoutLimits), row('limited', withLimits)],
      )}\n`,
    );
    const { databaseUrl: _d, redisUrl: _r, resultsDir: _o, log: _l, ...scenario } = options;
    const results: FairnessResults = { date: new Date().toISOString(), scenario: { ...scenario, smallUsers }, withoutLimits, withLimits };
    await mkdir(options.resultsDir, { recursive: true });
    const body = `${JSON.stringify(results, null, 2)}\n`;
    await writeFile(join(options.resultsDir, `fairness-${results.date.slice(0, 10)}.json`), body);
    await writeFile(join(options.resultsDir, 'fairness-latest.json'), body);
    log(`results written to ${join(options.resultsDir, 'fairness-latest.json')}`);
    return results;
  } finally {
    await close(db);
    await big?.stop();
    await small?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
