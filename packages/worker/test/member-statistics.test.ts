import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { close, connect, type Db, type ObjectSql } from '@dirsync/db';
import { MemberSync } from '../src/pipeline/members.ts';
import type { Tally } from '../src/pipeline/context.ts';
import { zeroCounts } from '../src/pipeline/report.ts';
import { createIntegrationRow, PipelineHarness, syncContext } from './support/harness.ts';
import { ScriptedProvider, user, userDn } from './support/scripted-provider.ts';

// MemberSync against the database. A run that has written many objects refreshes the objects
// table's statistics, once, between two steps: when it resolves member DNs in the database (for
// the rest of the run), or at its end (for the next runs), so that statements are planned for the
// table as it is. New groups' edges are inserted on the step's own connection, in one statement.

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase('member_statistics');
  db = connect(database.url, { max: 4 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

/** Manual ANALYZE runs of the objects table so far. */
async function analyses(): Promise<number> {
  const [row] = await db.$client<{ n: string }[]>`select analyze_count as n from pg_stat_user_tables where relname = 'directory_objects'`;
  return Number(row?.n ?? 0);
}

test('after enough writes the table is analyzed once per run: after a resolution in the database, or at the end; fewer writes or a dry run never', async () => {
  const integrationId = await createIntegrationRow(db);
  await new PipelineHarness(db, new ScriptedProvider().put(user('a'), user('b'), user('c')), integrationId).sync('full');
  const context = (pool: ObjectSql | undefined, written: number) => syncContext(db, integrationId, { pool, counts: { ...zeroCounts(), created: written } });
  const before = await analyses();

  // No DN cache: every DN is resolved in the database.
  const members = new MemberSync(context(db.$client, 10), 0, 10);
  await members.refreshStatistics();
  expect(await analyses()).toBe(before);
  expect([...(await members.resolveDns([userDn('a')]))]).toEqual([[userDn('a'), 'a']]);
  await members.refreshStatistics();
  expect(await analyses()).toBe(before + 1);
  expect([...(await members.resolveDns([userDn('b')]))]).toEqual([[userDn('b'), 'b']]);
  await members.refreshStatistics();
  expect(await analyses()).toBe(before + 1);

  await members.refreshStatistics(true);
  expect(await analyses()).toBe(before + 1);

  for (const other of [new MemberSync(context(db.$client, 9), 0, 10), new MemberSync(context(undefined, 10), 0, 10)]) {
    await other.resolveDns([userDn('c')]);
    await other.refreshStatistics();
    await other.refreshStatistics(true);
  }
  expect(await analyses()).toBe(before + 1);

  // Enough writes and no resolution in the database: at the end of the run.
  const quiet = new MemberSync(context(db.$client, 10), 0, 10);
  await quiet.refreshStatistics();
  expect(await analyses()).toBe(before + 1);
  await quiet.refreshStatistics(true);
  expect(await analyses()).toBe(before + 2);
});

test('a fenced step inserts the edges of new groups in one statement of its own transaction, and compares stored groups across lanes', async () => {
  const integrationId = await createIntegrationRow(db);
  const ids = Array.from({ length: 8 }, (_, i) => `m${i}`);
  await new PipelineHarness(db, new ScriptedProvider().put(...ids.map((id) => user(id))), integrationId).sync('full');
  let forks = 0;
  async function fork<R>(fn: (sql: ObjectSql, tally: Tally) => Promise<R>): Promise<R> {
    forks += 1;
    let value!: R;
    await db.$client.begin(async (tx) => {
      value = await fn(tx, zeroCounts());
    });
    return value;
  }
  const refs = ids.map((id) => ({ by: 'dn' as const, value: userDn(id) }));
  // Eight groups: laneOf spreads them over both lanes, as the stored ones below show.
  const ctx = syncContext(db, integrationId, { parallelism: 2, fork });
  await new MemberSync(ctx).syncGroups(ids.map((id) => ({ externalId: `g-${id}`, members: refs, storedMembersHash: null, isNew: true })));
  expect(forks).toBe(0);
  expect(ctx.counts.membershipsAdded).toBe(ids.length * ids.length);
  const stored = async () => {
    const [row] = await db.$client<{ n: number }[]>`select count(*)::int as n from memberships where integration_id = ${integrationId} and deleted_at is null`;
    return row?.n;
  };
  expect(await stored()).toBe(ids.length * ids.length);

  // The same groups, stored now, with one member fewer: compared with what is stored, by lane.
  const fewer = ids.map((id) => ({ externalId: `g-${id}`, members: refs.slice(1), storedMembersHash: 'stale', isNew: false }));
  await new MemberSync(syncContext(db, integrationId, { parallelism: 2, fork })).syncGroups(fewer);
  expect(forks).toBe(1);
  expect(await stored()).toBe(ids.length * (ids.length - 1));
});
