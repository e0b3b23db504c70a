import type { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config.ts';
import { UserError } from '../errors.ts';
import { runLdapBench } from '../bench/ldap-bench.ts';
import { runEntraBench } from '../bench/entra-bench.ts';

const resultsDir = fileURLToPath(new URL('../../../../bench/results', import.meta.url));

function positive(name: string, value: string): number {
  const n = Number(value.replaceAll('_', ''));
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${name} must be a positive integer`);
  return n;
}

/** `dirsync bench`: the throughput benchmark behind `pnpm bench`. */
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
    .action(async (options: { objects: string; groups: string; members: string; changes: string; database: string; entra?: boolean }) => {
      const config = loadConfig();
      if (!/\/dirsync_bench[\w-]*$/.test(options.database)) {
        throw new UserError('the benchmark drops its database: --database must name a database called dirsync_bench…');
      }
      const run = options.entra ? runEntraBench : runLdapBench;
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
