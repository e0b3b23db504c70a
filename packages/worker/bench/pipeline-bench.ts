/**
 * Pipeline throughput with a generated in-process source (no directory server): how fast the
 * worker turns pages into PostgreSQL rows. Usage:
 *   node packages/worker/bench/pipeline-bench.ts [--users 100000] [--groups 5000] [--members 100] [--batch 2000]
 * Needs PostgreSQL at DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432).
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { close, connect, ensureDatabase, migrate } from '@dirsync/db';
import { runSync, type SyncReport } from '../src/pipeline/index.ts';
import { GeneratedProvider } from './generated-provider.ts';
import { profiled, timings } from './profile.tmp.ts';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    groups: { type: 'string', default: '5000' },
    members: { type: 'string', default: '100' },
    batch: { type: 'string', default: '2000' },
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
  let cursor: SyncReport['cursor'] | null = null;

  const run = async (label: string, mode: 'full' | 'delta') => {
    const start = performance.now();
    timings.clear();
    const report = await runSync({
      db: Object.assign(Object.create(db), { $client: profiled(db.$client) }),
      provider,
      integration: { id: integration!.id, cursor, deleteThresholdCount: 500, deleteThresholdPercent: 20 },
      run: { id: randomUUID(), modeRequested: mode, dryRun: false },
      signal: new AbortController().signal,
      batchSize: Number(values.batch),
    });
    const seconds = (performance.now() - start) / 1000;
    if (report.cursor) cursor = report.cursor;
    const objects = report.fetched;
    console.log(
      `${label.padEnd(22)} ${seconds.toFixed(2).padStart(7)} s  ${Math.round(objects / seconds).toString().padStart(7)} objects/s  ` +
        `created ${report.created} updated ${report.updated} unchanged ${report.unchanged} edges +${report.membershipsAdded}/-${report.membershipsRemoved} status ${report.status}`,
    );
    for (const [k, t] of timings) console.log(`   ${t.ms.toFixed(0).padStart(6)} ms ${String(t.n).padStart(4)}× ${k}`);
    return seconds;
  };

  global.gc?.();
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
  const admin = postgres(`${server}/postgres`, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists "${name}" with (force)`);
  await admin.end();
}
