/**
 * Pipeline throughput with a generated in-process source (no directory server): how fast the
 * worker turns pages into PostgreSQL rows. Usage:
 *   node packages/worker/bench/pipeline-bench.ts [--users 100000] [--groups 5000] [--members 100]
 *     [--batch 2000] [--member-refs 25000] [--parallelism 2] [--statements]
 * `--statements` prints the time spent per statement shape (deletions excluded).
 * Needs PostgreSQL at `--server` (default postgres://postgres@127.0.0.1:5432); it works in a
 * database of its own, dropped at the end.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { close, connect, type Db, ensureDatabase, migrate } from '@dirsync/db';
import type { Cursor } from '@dirsync/providers';
import { runSync } from '../src/pipeline/index.ts';
import { GeneratedProvider } from './generated-provider.ts';
import { statementTimes, timed } from './statement-timer.ts';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    groups: { type: 'string', default: '5000' },
    members: { type: 'string', default: '100' },
    batch: { type: 'string', default: '2000' },
    parallelism: { type: 'string', default: '2' },
    'member-refs': { type: 'string', default: '25000' },
    statements: { type: 'boolean', default: false },
    server: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432' },
  },
});

const users = Number(values.users);
const groups = Number(values.groups);
const server = values.server;
const name = `dirsync_bench_pipeline_${process.pid}`;
const url = `${server}/${name}`;

let peakRss = 0;
let peakDetail = '';
const sampler = setInterval(() => {
  const usage = process.memoryUsage();
  if (usage.rss > peakRss) {
    peakRss = usage.rss;
    const mb = (n: number) => `${Math.round(n / 1024 / 1024)}`;
    peakDetail = `heap ${mb(usage.heapUsed)}/${mb(usage.heapTotal)} MB, external ${mb(usage.external)} MB, array buffers ${mb(usage.arrayBuffers)} MB`;
  }
}, 20);

await ensureDatabase(url);
await migrate(url);
const db = connect(url, { max: 4 });
try {
  const sql = db.$client;
  const [account] = await sql<{ id: string }[]>`insert into accounts (name) values ('bench') returning id`;
  const [integration] = await sql<{ id: string }[]>`
    insert into integrations (account_id, kind, name, settings) values (${account!.id}, 'ldap', 'bench', '{}') returning id`;
  const provider = new GeneratedProvider({ users, groups, membersPerGroup: Number(values.members) });
  let cursor: Cursor | null = null;

  const run = async (label: string, mode: 'full' | 'delta') => {
    const start = performance.now();
    statementTimes.clear();
    const report = await runSync({
      db: values.statements ? Object.assign(Object.create(db) as Db, { $client: timed(db.$client) }) : db,
      provider,
      integration: { id: integration!.id, cursor, deleteThresholdCount: 500, deleteThresholdPercent: 20 },
      run: { id: randomUUID(), modeRequested: mode, dryRun: false },
      signal: new AbortController().signal,
      batchSize: Number(values.batch),
      parallelism: Number(values.parallelism),
      batchMemberRefs: Number(values['member-refs']),
    });
    const seconds = (performance.now() - start) / 1000;
    if (report.cursor) cursor = report.cursor;
    const objects = report.fetched;
    console.log(
      `${label.padEnd(22)} ${seconds.toFixed(2).padStart(7)} s  ${Math.round(objects / seconds).toString().padStart(7)} objects/s  ` +
        `created ${report.created} updated ${report.updated} unchanged ${report.unchanged} edges +${report.membershipsAdded}/-${report.membershipsRemoved} status ${report.status}`,
    );
    for (const [shape, t] of statementTimes) {
      console.log(`   ${t.ms.toFixed(0).padStart(6)} ms ${String(t.count).padStart(4)}× ${shape}`);
    }
    return seconds;
  };

  globalThis.gc?.();
  const startRss = process.memoryUsage().rss;
  peakRss = 0;
  console.log(`RSS before the first sync ${(startRss / 1024 / 1024).toFixed(0)} MB`);
  console.log(`pipeline benchmark: ${users} users, ${groups} groups × ${values.members} members, batch ${values.batch}`);
  await run('first full sync', 'full');
  await run('unchanged full sync', 'full');
  provider.change(100);
  await run('delta (100 changes)', 'delta');
  console.log(`peak RSS ${(peakRss / 1024 / 1024).toFixed(0)} MB (${peakDetail})`);
} finally {
  clearInterval(sampler);
  await close(db);
  const admin = connect(`${server}/postgres`, { max: 1 });
  await admin.$client.unsafe(`drop database if exists "${name}" with (force)`);
  await close(admin);
}
