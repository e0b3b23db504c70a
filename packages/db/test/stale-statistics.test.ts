import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import type { TestDatabase } from '@dirsync/testkit';
import type { Db } from '../src/client.ts';
import { insertObjects, loadObjectStates, type ObjectWrite, resolveDns, stampObjects } from '../src/objects.ts';
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

const fullScan = /Seq Scan on directory_objects|Bitmap Index Scan on directory_objects_integration_(updated|external|dn)/;

test('member DNs resolve by index probes while the statistics predate the integration', async () => {
  const { integrationId, runId } = await outgrownStatistics();
  const wanted = Array.from({ length: 3_000 }, (_, k) => dnOf(k * 10));
  const { result, plans } = await withPlans((sql) => resolveDns(sql, integrationId, runId, wanted));

  expect(result.size).toBe(3_000);
  expect(result.get(dnOf(29_990))).toBe('id-29990');
  const plan = plans.find((text) => text.includes('directory_objects'));
  expect(plan).toBeDefined();
  expect(plan).toContain('directory_objects_integration_dn_idx');
  expect(plan).not.toMatch(fullScan);
});

test('a batch of objects is stamped and read by index while the statistics predate the integration', async () => {
  const { integrationId } = await outgrownStatistics();
  const ids = Array.from({ length: 3_000 }, (_, k) => `id-${k * 10}`);
  const { result, plans } = await withPlans(async (sql) => ({
    stamped: await stampObjects(sql, integrationId, randomUUID(), ids),
    loaded: await loadObjectStates(sql, integrationId, ids),
  }));
  expect(result.stamped.size).toBe(3_000);
  expect(result.loaded.size).toBe(3_000);
  const statements = plans.filter((text) => text.includes('directory_objects'));
  expect(statements).toHaveLength(2);
  for (const plan of statements) expect(plan).not.toMatch(fullScan);
});
