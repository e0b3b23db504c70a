import type postgres from 'postgres';
import { close, connect, listAccountRuns } from '../src/index.ts';
import { usePartlyMigratedDatabase } from './support/migrations.ts';

// Migration 0021 gives every run its integration's account. This applies the migrations up to
// 0020 to an empty database, stores runs as they were then, applies 0021 and reads them back
// through the account's run list.

let url: string;
let sql: postgres.Sql;
let migrateRest: () => Promise<void>;
usePartlyMigratedDatabase('mig0021', 21, (database) => {
  ({ url, sql, migrateRest } = database);
});

it("fills in each stored run's account from its integration, and the account's run list shows its runs and no other's", async () => {
  const accounts = await sql<{ id: string }[]>`insert into accounts (name) values ('contoso'), ('fabrikam') returning id`;
  const [a, b] = accounts.map((row) => row.id) as [string, string];
  const integrations = await sql<{ id: string; account_id: string }[]>`
    insert into integrations (account_id, kind, name, settings)
    values (${a}, 'ldap', 'one', '{}'), (${a}, 'ldap', 'two', '{}'), (${b}, 'ldap', 'three', '{}')
    returning id, account_id`;
  await sql`
    insert into sync_runs (integration_id, mode_requested, trigger, status, queued_at)
    select i.id, 'delta', 'schedule', case when k = 1 then 'running' else 'succeeded' end, now() - make_interval(mins => k)
    from unnest(${integrations.map((row) => row.id)}::uuid[]) as i(id), generate_series(1, 30) k`;

  await migrateRest();

  const stored = await sql<{ run_account: string | null; integration_account: string }[]>`
    select r.account_id as run_account, i.account_id as integration_account from sync_runs r join integrations i on i.id = r.integration_id`;
  expect(stored).toHaveLength(90);
  expect(stored.filter((row) => row.run_account !== row.integration_account)).toEqual([]);

  const db = connect(url, { max: 1 });
  try {
    const own = new Set(
      (await sql<{ id: string }[]>`select r.id from sync_runs r join integrations i on i.id = r.integration_id where i.account_id = ${a}`).map((row) => row.id),
    );
    const page = await listAccountRuns(db, a, { limit: 100 });
    expect(page.items).toHaveLength(60);
    expect(page.items.every((run) => own.has(run.id))).toBe(true);
    // A run written after the migration gets its account from the trigger.
    const [later] = await sql<{ account_id: string }[]>`
      insert into sync_runs (integration_id, mode_requested, trigger) values (${integrations[2]!.id}, 'full', 'api') returning account_id`;
    expect(later!.account_id).toBe(b);
  } finally {
    await close(db);
  }
});
