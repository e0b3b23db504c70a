import type { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { loadConfig, UserError } from '@dirsync/cli';

const resultsDir = fileURLToPath(new URL('../../../../bench/results', import.meta.url));

function positive(name: string, value: string): number {
  const n = Number(value.replaceAll('_', ''));
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${name} must be a positive integer`);
  return n;
}

interface BenchOptions {
  objects: string;
  groups: string;
  members: string;
  changes: string;
  database: string;
  entra?: boolean;
  fairness?: boolean;
  accounts: string;
  fulls: string;
  deltas: string;
  workers: string;
  concurrency: string;
  scale?: boolean;
  integrations?: string;
  schedulers?: string;
  ticksOnly?: boolean;
  steady: string;
}

/**
 * `dirsync bench`: the throughput benchmark behind `pnpm bench`; `--fairness` and `--scale` for the
 * scale-out scenarios. The benchmarks (and the testkit's directories they start) load only when
 * this command runs: every other command of `bin/dirsync`, the worker it measures above all, would
 * otherwise carry them in memory.
 */
export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description('benchmark a full, an unchanged full and a delta sync of a generated slapd directory')
    .option('--objects <n>', 'users in the directory', '100000')
    .option('--groups <n>', 'groups', '5000')
    .option('--members <n>', 'members per group', '100')
    .option('--changes <n>', 'users changed before the delta', '100')
    .option('--database <url>', 'database to use (dropped and recreated)', 'postgres://postgres@127.0.0.1:5432/dirsync_bench')
    .option('--entra', 'benchmark an emulated Microsoft Entra ID tenant (Graph delta over HTTPS) instead of slapd')
    .option('--fairness', 'big full syncs queued ahead of many small deltas across accounts, without and with the sync limits (--objects: users of the big directory, default 20000)')
    .option('--accounts <n>', 'with --fairness: accounts', '3')
    .option('--fulls <n>', 'with --fairness: big full syncs per account, queued first', '2')
    .option('--deltas <n>', 'with --fairness: small delta syncs per account, queued behind', '10')
    .option('--workers <n>', 'with --fairness or --scale: worker processes (default 2, 3 with --scale)', '2')
    .option('--concurrency <n>', 'with --fairness or --scale: sync slots per worker (default 3, 4 with --scale)', '3')
    .option('--scale', 'many integrations on a few small slapd servers, synced by several worker processes and scheduled by scheduler replicas')
    .option('--integrations <n>', 'with --scale: integrations (default 1000, 10000 with --ticks-only)')
    .option('--schedulers <n>', 'with --scale: scheduler replicas (default 2, 3 with --ticks-only)')
    .option('--ticks-only', 'with --scale: scheduler replicas only, no worker or directory (tick time and CPU per replica)')
    .option('--steady <seconds>', 'with --scale: steady state measured after the first full syncs', '60')
    .action(async (options: BenchOptions, command: Command) => {
      const config = loadConfig();
      if (!/\/dirsync_bench[\w-]*$/.test(options.database)) {
        throw new UserError('the benchmark drops its database: --database must name a database called dirsync_bench…');
      }
      if (options.scale) {
        const { runScaleBench } = await import('../bench/scale-bench.ts');
        const ticksOnly = options.ticksOnly === true;
        const given = (name: string) => command.getOptionValueSource(name) !== 'default';
        await runScaleBench({
          integrations: positive('--integrations', options.integrations ?? (ticksOnly ? '10000' : '1000')),
          workers: given('workers') ? positive('--workers', options.workers) : 3,
          workerConcurrency: given('concurrency') ? positive('--concurrency', options.concurrency) : 4,
          schedulers: positive('--schedulers', options.schedulers ?? (ticksOnly ? '3' : '2')),
          ticksOnly,
          steadySeconds: positive('--steady', options.steady),
          databaseUrl: options.database,
          redisUrl: config.REDIS_URL,
          resultsDir,
          log: (line) => console.log(line),
        });
        return;
      }
      if (options.fairness) {
        const { runFairnessBench } = await import('../bench/fairness-bench.ts');
        await runFairnessBench({
          bigUsers: command.getOptionValueSource('objects') === 'default' ? 20_000 : positive('--objects', options.objects),
          accounts: positive('--accounts', options.accounts),
          fullsPerAccount: positive('--fulls', options.fulls),
          deltasPerAccount: positive('--deltas', options.deltas),
          workers: positive('--workers', options.workers),
          concurrency: positive('--concurrency', options.concurrency),
          // The limited pass runs with the limits this environment configures (the defaults when unset).
          limits: {
            accountConcurrency: config.DIRSYNC_ACCOUNT_CONCURRENCY,
            accountFullConcurrency: config.DIRSYNC_ACCOUNT_FULL_CONCURRENCY,
            hostConcurrency: config.DIRSYNC_HOST_CONCURRENCY,
            retrySeconds: config.DIRSYNC_LIMIT_RETRY_SECONDS,
          },
          databaseUrl: options.database,
          redisUrl: config.REDIS_URL,
          resultsDir,
          log: (line) => console.log(line),
        });
        return;
      }
      const run = options.entra ? (await import('../bench/entra-bench.ts')).runEntraBench : (await import('../bench/ldap-bench.ts')).runLdapBench;
      await run({
        users: positive('--objects', options.objects),
        groups: positive('--groups', options.groups),
        membersPerGroup: positive('--members', options.members),
        changes: positive('--changes', options.changes),
        databaseUrl: options.database,
        redisUrl: config.REDIS_URL,
        resultsDir,
        log: (line) => console.log(line),
      });
    });
}
