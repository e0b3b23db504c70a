/**
 * The generic LDAP provider and the pipeline in one process against a throwaway slapd: where the
 * time of a sync goes, without the queue and child process of `dirsync bench`. Usage:
 *   node --max-semi-space-size=16 --heap-growing-percent=50 packages/worker/bench/ldap-pipeline-bench.ts [--users 100000]
 *     [--groups 5000] [--members 100] [--batch 2000] [--member-refs 25000] [--parallelism 2]
 *     [--read-only | --skip-read] [--statements] [--fenced]
 * Prints the provider's read (fetch + map + hash, no database) and a first, an unchanged and a
 * delta sync, each with wall time, this process's CPU time and the peak RSS. `--statements`
 * prints the time spent per statement shape; `--fenced` runs each sync as a fenced attempt, as a
 * worker does. Needs PostgreSQL at `--server`; it works in a
 * database of its own, dropped at the end.
 */
import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Attribute, Change } from 'ldapts';
import { close, connect, type Db, ensureDatabase, migrate } from '@dirsync/db';
import { createGenericLdapProvider, type Cursor, genericLdapSettingsSchema } from '@dirsync/providers';
import { startSlapd, testDestinations, userDn } from '@dirsync/testkit';
import { runSync } from '../src/pipeline/index.ts';
import { prepareObject } from '../src/pipeline/objects.ts';
import { statementTimes, timed } from './statement-timer.ts';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    groups: { type: 'string', default: '5000' },
    members: { type: 'string', default: '100' },
    changes: { type: 'string', default: '100' },
    batch: { type: 'string' },
    'member-refs': { type: 'string' },
    parallelism: { type: 'string' },
    'read-only': { type: 'boolean', default: false },
    'skip-read': { type: 'boolean', default: false },
    statements: { type: 'boolean', default: false },
    fenced: { type: 'boolean', default: false },
    server: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432' },
  },
});

const users = Number(values.users);
const groups = Number(values.groups);
const databaseName = `dirsync_bench_ldap_pipeline_${process.pid}`;
const url = `${values.server}/${databaseName}`;

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
sampler.unref();

/**
 * CPU seconds used so far by slapd and by the PostgreSQL backends serving this benchmark's
 * database (their process title names it), from Linux /proc; other databases' work is left out.
 */
async function serverCpu(): Promise<{ postgres: number; slapd: number }> {
  const totals = { postgres: 0, slapd: 0 };
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = (await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')).trim();
    const match = /^\d+ \((.*)\) (.*)$/.exec(stat);
    if (!match) continue;
    const name = match[1] as string;
    if (name !== 'slapd' && name !== 'postgres') continue;
    if (name === 'postgres' && !(await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes(databaseName)) continue;
    const fields = (match[2] as string).split(' ');
    // utime and stime are fields 14 and 15 of the stat line (clock ticks, 100 per second here).
    totals[name] += (Number(fields[11]) + Number(fields[12])) / 100;
  }
  return totals;
}

/** WAL written by the whole server so far (other databases' work included): bytes and full-page images. */
async function walWritten(): Promise<{ bytes: number; fpi: number }> {
  if (walSql === undefined) return { bytes: 0, fpi: 0 };
  const [row] = await walSql<{ bytes: string; fpi: string }[]>`select wal_bytes::text as bytes, wal_fpi::text as fpi from pg_stat_wal`;
  return { bytes: Number(row?.bytes ?? 0), fpi: Number(row?.fpi ?? 0) };
}
let walSql: Db['$client'] | undefined;

async function measure<T>(label: string, fn: () => Promise<T>, describe: (value: T) => string): Promise<T> {
  const wal = await walWritten();
  const servers = await serverCpu();
  const start = performance.now();
  const cpu = process.cpuUsage();
  const value = await fn();
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  const after = await serverCpu();
  const walAfter = await walWritten();
  const objects = users + groups;
  console.log(
    `${label.padEnd(22)} ${seconds.toFixed(2).padStart(6)} s  cpu ${((used.user + used.system) / 1e6).toFixed(2).padStart(5)} s  ` +
      `postgres ${(after.postgres - servers.postgres).toFixed(2).padStart(5)} s  slapd ${(after.slapd - servers.slapd).toFixed(2).padStart(5)} s  ` +
      `${Math.round(objects / seconds).toString().padStart(7)} objects/s  ${describe(value)}`,
  );
  if (walSql !== undefined) {
    console.log(`   WAL ${((walAfter.bytes - wal.bytes) / 1048576).toFixed(0)} MB, ${walAfter.fpi - wal.fpi} full-page images`);
  }
  for (const [shape, t] of statementTimes) console.log(`   ${t.ms.toFixed(0).padStart(6)} ms ${String(t.count).padStart(4)}× ${shape}`);
  statementTimes.clear();
  return value;
}

const server = await startSlapd({
  data: { users, groups, membersPerGroup: Number(values.members), timestamp: new Date(Date.now() - 86_400_000) },
});
try {
  const settings = genericLdapSettingsSchema.parse({
    url: server.url,
    bindDn: server.readerDn,
    tls: { mode: 'none', allowInsecure: true },
    users: { baseDns: [`ou=people,${server.suffix}`] },
    groups: { baseDns: [`ou=groups,${server.suffix}`] },
  });
  const provider = createGenericLdapProvider(settings, server.readerPassword, { destinations: testDestinations });
  console.log(`ldap pipeline benchmark: ${users} users, ${groups} groups × ${values.members} members`);

  if (!values['skip-read']) await measure(
    'provider read',
    async () => {
      let entries = 0;
      for await (const page of provider.fetchFull(new AbortController().signal)) {
        for (const entry of page.entries) {
          const result = provider.map(entry);
          if (result.ok) prepareObject(result.object);
          entries += 1;
        }
      }
      return entries;
    },
    (entries) => `${entries} entries`,
  );

  if (!values['read-only']) {
    await ensureDatabase(url);
    await migrate(url);
    const db = connect(url, { max: 4 });
    walSql = db.$client;
    try {
      const sql = db.$client;
      const [account] = await sql<{ id: string }[]>`insert into accounts (name) values ('bench') returning id`;
      const [integration] = await sql<{ id: string }[]>`
        insert into integrations (account_id, kind, name, settings) values (${account!.id}, 'ldap', 'bench', '{}') returning id`;
      let cursor: Cursor | null = null;
      const sync = (label: string, mode: 'full' | 'delta') =>
        measure(
          label,
          async () => {
            const started = performance.now();
            let usersDoneAt: number | undefined;
            const runId = randomUUID();
            const fence = values.fenced ? randomUUID() : undefined;
            if (fence !== undefined) {
              await sql`update integrations set sync_fence = ${fence} where id = ${integration!.id}`;
              await sql`
                insert into sync_runs (id, integration_id, mode_requested, trigger, status, fence)
                values (${runId}, ${integration!.id}, ${mode}, 'manual', 'running', ${fence})`;
            }
            const report = await runSync({
              fence,
              onProgress: ({ processed }) => {
                if (usersDoneAt === undefined && processed >= users) usersDoneAt = performance.now();
              },
              db: values.statements ? Object.assign(Object.create(db) as Db, { $client: timed(db.$client) }) : db,
              provider,
              integration: { id: integration!.id, cursor, deleteThresholdCount: 500, deleteThresholdPercent: 20 },
              run: { id: runId, modeRequested: mode, dryRun: false },
              signal: new AbortController().signal,
              batchSize: values.batch === undefined ? undefined : Number(values.batch),
              batchMemberRefs: values['member-refs'] === undefined ? undefined : Number(values['member-refs']),
              parallelism: values.parallelism === undefined ? undefined : Number(values.parallelism),
            });
            if (report.cursor) cursor = report.cursor;
            if (usersDoneAt !== undefined) console.log(`   users written after ${((usersDoneAt - started) / 1000).toFixed(2)} s`);
            return report;
          },
          (r) =>
            `created ${r.created} updated ${r.updated} unchanged ${r.unchanged} edges +${r.membershipsAdded}/-${r.membershipsRemoved} issues ${r.issueCount} ${r.status}`,
        );
      await sync('first full sync', 'full');
      await sync('unchanged full sync', 'full');
      const client = await server.client();
      try {
        const changes = Number(values.changes);
        const step = Math.max(1, Math.floor(users / changes));
        for (let i = 0; i < changes; i++) {
          await client.modify(
            userDn(i * step, server.suffix),
            new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: [`Bench ${Date.now()}`] }) }),
          );
        }
      } finally {
        await client.unbind();
      }
      await sync(`delta`, 'delta');
    } finally {
      await close(db);
      const admin = connect(`${values.server}/postgres`, { max: 1 });
      await admin.$client.unsafe(`drop database if exists "${databaseName}" with (force)`);
      await close(admin);
    }
  }
  await provider.close();
  console.log(`peak RSS ${(peakRss / 1024 / 1024).toFixed(0)} MB (${peakDetail})`);
} finally {
  clearInterval(sampler);
  await server.stop();
}
