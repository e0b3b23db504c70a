import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import type { TestDatabase } from '@dirsync/testkit';
import type { Db } from '../src/client.ts';
import { analyzeObjects, insertObjects, loadObjectStates, type ObjectWrite, resolveDns, stampObjects } from '../src/objects.ts';
import { newTenant, useTestDatabase } from './support/database.ts';

// A first sync writes an integration's objects faster than autovacuum analyzes the table (and
// some servers run with autovacuum off): the statements the sync runs meanwhile must keep their
// index plans when the statistics describe a far smaller table. The plans are read back with
// auto_explain (shipped with PostgreSQL), sent to the client as notices.

let db: Db;
let database: TestDatabase;
useTestDatabase('stale_statistics', 2, (ready, created) => {
  db = ready;
  database = created;
});

const dnOf = (i: number) => `uid=user${i},ou=people,dc=example`;

function users(from: number, count: number): ObjectWrite[] {
  return Array.from({ length: count }, (_, k) => ({
    externalId: `id-${from + k}`,
    type: 'user',
    dn: dnOf(from + k),
    attributesJson: '{}',
    contentHash: 'h',
  }));
}

/** Runs `fn` on a connection of its own that receives the plan of every statement it runs. */
async function withPlans<T>(fn: (sql: postgres.Sql) => Promise<T>): Promise<{ result: T; plans: string[] }> {
  const plans: string[] = [];
  const sql = postgres(database.url, {
    max: 1,
    onnotice: (notice) => {
      if (typeof notice.message === 'string' && notice.message.includes('plan:')) plans.push(notice.message);
    },
  });
  try {
    await sql`load 'auto_explain'`;
    await sql`set auto_explain.log_min_duration = 0`;
    await sql`set auto_explain.log_level = 'notice'`;
    await sql`set auto_explain.log_nested_statements = on`;
    const result = await fn(sql);
    return { result, plans };
  } finally {
    await sql.end();
  }
}

/** An integration of 30,050 objects, on a table last analyzed when it held 50. */
async function outgrownStatistics(): Promise<{ integrationId: string; runId: string }> {
  const { integrationId } = await newTenant(db);
  const runId = randomUUID();
  await insertObjects(db, integrationId, runId, users(0, 50));
  await db.$client`analyze directory_objects`;
  for (let from = 50; from < 30_050; from += 5_000) await insertObjects(db, integrationId, runId, users(from, 5_000));
  return { integrationId, runId };
}

/**
 * Whether a plan reads every object of the integration: a sequential scan, or an index searched
 * by the integration alone (the bitmap scans the stale plans used) rather than by DN or id.
 */
function readsWholeIntegration(plan: string): boolean {
  if (plan.includes('Seq Scan on directory_objects')) return true;
  return plan.split('\n').some((line) => line.includes('Index Cond:') && !/\b(dn|external_id)\b/.test(line));
}

test('member DNs resolve by index probes while the statistics predate the integration', async () => {
  const { integrationId, runId } = await outgrownStatistics();
  const wanted = Array.from({ length: 3_000 }, (_, k) => dnOf(k * 10));
  const { result, plans } = await withPlans((sql) => resolveDns(sql, integrationId, runId, wanted));

  expect(result.size).toBe(3_000);
  expect(result.get(dnOf(29_990))).toBe('id-29990');
  const plan = plans.find((text) => text.includes('directory_objects'));
  expect(plan).toBeDefined();
  expect(plan).toContain('directory_objects_integration_dn_idx');
  expect(readsWholeIntegration(plan as string)).toBe(false);
});

test('a batch of objects is stamped and read through the whole integration while the statistics predate it, by id once analyzed', async () => {
  // Why a run that wrote many objects analyzes the table (worker/test/member-statistics.test.ts).
  const { integrationId } = await outgrownStatistics();
  // A batch as a large integration's full sync stamps it: a small share of the objects.
  const ids = Array.from({ length: 300 }, (_, k) => `id-${k * 100}`);
  const stampAndRead = () =>
    withPlans(async (sql) => ({
      stamped: await stampObjects(sql, integrationId, randomUUID(), ids),
      loaded: await loadObjectStates(sql, integrationId, ids),
    }));
  const stale = await stampAndRead();
  expect(stale.result.stamped.size).toBe(300);
  expect(stale.plans.filter((text) => text.includes('directory_objects')).some(readsWholeIntegration)).toBe(true);

  await analyzeObjects(db);
  const fresh = await stampAndRead();
  expect(fresh.result.stamped.size).toBe(300);
  expect(fresh.result.loaded.size).toBe(300);
  const statements = fresh.plans.filter((text) => text.includes('directory_objects'));
  expect(statements).toHaveLength(2);
  for (const plan of statements) expect(readsWholeIntegration(plan)).toBe(false);
});
