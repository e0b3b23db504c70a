/**
 * Measures the retention pass: a scratch database with many integrations, each with a history
 * of finished runs spread over the last `--days-of-history` days (as 5-minute deltas leave them),
 * then `pruneHistory` calls as the reconciler makes them until nothing is due, timing each call
 * and a call with nothing due.
 *
 *   node packages/db/bench/retention.ts [--integrations 2000] [--runs 150] [--days-of-history 60]
 *     [--database postgres://postgres@127.0.0.1:5432/dirsync_sizes_retention]
 *
 * The database is dropped and created again: its name must start with `dirsync_sizes`.
 */
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import {
  close,
  connect,
  createAccount,
  defaultRunRetentionDays,
  defaultRunRetentionKeep,
  ensureDatabase,
  migrate,
  pruneHistory,
} from '../src/index.ts';

const { values } = parseArgs({
  options: {
    integrations: { type: 'string', default: '2000' },
    runs: { type: 'string', default: '150' },
    'days-of-history': { type: 'string', default: '60' },
    database: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/dirsync_sizes_retention' },
  },
});
const integrations = Number(values.integrations);
const runsPer = Number(values.runs);
const historyDays = Number(values['days-of-history']);
const databaseUrl = values.database;
if (!/\/dirsync_sizes[\w-]*$/.test(databaseUrl)) throw new Error('--database must name a database called dirsync_sizes…');

await ensureDatabase(databaseUrl);
const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
await admin.unsafe('drop schema if exists public cascade; drop schema if exists drizzle cascade; create schema public;');
await migrate(databaseUrl);
const db = connect(databaseUrl, { max: 2 });
try {
  const account = await createAccount(db, { name: 'retention' });
  // Generated in SQL: the history, not its writing, is what is measured.
  await admin`
    insert into integrations (account_id, kind, name, settings)
    select ${account.id}, 'ldap', 'tenant-' || n, '{}'::jsonb from generate_series(1, ${integrations}) n`;
  await admin`
    insert into sync_runs (integration_id, mode_requested, mode, trigger, status, queued_at, started_at, finished_at)
    select i.id, 'delta', 'delta', 'schedule', 'succeeded',
      now() - make_interval(secs => (k * ${(historyDays * 86_400) / runsPer})::float8),
      now() - make_interval(secs => (k * ${(historyDays * 86_400) / runsPer})::float8),
      now() - make_interval(secs => (k * ${(historyDays * 86_400) / runsPer})::float8 - 2)
    from integrations i, generate_series(1, ${runsPer}) k`;
  await admin`vacuum analyze sync_runs`;
  const [before] = await admin<{ n: number }[]>`select count(*)::int as n from sync_runs`;
  const retention = { runs: { days: defaultRunRetentionDays, keep: defaultRunRetentionKeep }, audit: { days: 365 } };
  const calls: { seconds: number; runs: number }[] = [];
  for (;;) {
    const start = performance.now();
    const pruned = await pruneHistory(db, retention);
    calls.push({ seconds: Math.round(performance.now() - start) / 1000, runs: pruned.runs });
    if (!pruned.more) break;
  }
  const start = performance.now();
  await pruneHistory(db, retention);
  const idleSeconds = Math.round(performance.now() - start) / 1000;
  const [after] = await admin<{ n: number }[]>`select count(*)::int as n from sync_runs`;
  const deleted = calls.reduce((a, c) => a + c.runs, 0);
  const busySeconds = calls.reduce((a, c) => a + c.seconds, 0);
  console.log(
    JSON.stringify(
      {
        integrations,
        runsBefore: before?.n,
        runsAfter: after?.n,
        deleted,
        calls: calls.length,
        runsDeletedPerSecond: Math.round(deleted / Math.max(busySeconds, 0.001)),
        slowestCallSeconds: Math.max(...calls.map((c) => c.seconds)),
        callWithNothingDueSeconds: idleSeconds,
      },
      null,
      2,
    ),
  );
} finally {
  await close(db);
  await admin.end({ timeout: 5 });
}
