import type { Db } from '../src/client.ts';
import { type AccountRunFilter, listAccountRuns } from '../src/api-reads.ts';
import { countActiveRuns } from '../src/metrics.ts';
import { withReconcileLock } from '../src/run-lifecycle.ts';
import { createRun, listRuns } from '../src/runs.ts';
import { newIntegration, newTenant, useTestDatabase } from './support/database.ts';
import { planReads } from './support/plans.ts';

let db: Db;
let databaseUrl: string;
useTestDatabase('runs_listing', 2, (ready, database) => {
  db = ready;
  databaseUrl = database.url;
});

/**
 * `count` runs of each integration, one a minute back from now, the integrations' k-th runs
 * queued at the same instant (their ids decide their order), with statuses and triggers that vary.
 */
async function history(integrationIds: readonly string[], count: number): Promise<void> {
  await db.$client`
    insert into sync_runs (integration_id, mode_requested, trigger, status, queued_at)
    select i.id, 'delta',
      case when k % 5 = 0 then 'manual' else 'schedule' end,
      case when k % 7 = 0 then 'failed' else 'succeeded' end,
      date_trunc('second', now()) - make_interval(mins => k)
    from unnest(${integrationIds}::uuid[]) as i(id), generate_series(1, ${count}) k`;
  await db.$client`analyze sync_runs`;
}

/** An account with two integrations and `mineRuns` runs of each, and another with `theirRuns`. */
async function twoAccounts(mineRuns: number, theirRuns: number) {
  const mine = await newTenant(db);
  const second = await newIntegration(db, mine.accountId);
  const theirs = await newTenant(db);
  await history([mine.integrationId, second], mineRuns);
  await history([theirs.integrationId], theirRuns);
  return { mine, second, theirs };
}

async function readAll(accountId: string, filter: Omit<AccountRunFilter, 'limit' | 'cursor'>, limit: number): Promise<string[]> {
  const seen: string[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await listAccountRuns(db, accountId, { ...filter, limit, ...(cursor === undefined ? {} : { cursor }) });
    seen.push(...page.items.map((row) => row.id));
    if (page.nextCursor === null) return seen;
    cursor = page.nextCursor;
  }
}

/** The account's runs straight from its integrations, newest first. */
async function expected(accountId: string, where: { integrationId?: string; status?: string; trigger?: string; since?: string } = {}): Promise<string[]> {
  const rows = await db.$client<{ id: string }[]>`
    select r.id from sync_runs r join integrations i on i.id = r.integration_id
    where i.account_id = ${accountId}
      and (${where.integrationId ?? null}::uuid is null or r.integration_id = ${where.integrationId ?? null}::uuid)
      and (${where.status ?? null}::text is null or r.status = ${where.status ?? null}::text)
      and (${where.trigger ?? null}::text is null or r.trigger = ${where.trigger ?? null}::text)
      and (${where.since ?? null}::timestamptz is null or r.queued_at >= ${where.since ?? null}::timestamptz)
    order by r.queued_at desc, r.id desc`;
  return rows.map((row) => row.id);
}

test("an account's runs page newest first across its integrations, with each filter, and none of another account's", async () => {
  const { mine, second, theirs } = await twoAccounts(60, 90);
  const all = await expected(mine.accountId);
  expect(all).toHaveLength(120);
  expect(await readAll(mine.accountId, {}, 7)).toEqual(all);

  const since = (await db.$client<{ at: string }[]>`select (now() - interval '30 minutes')::text as at`)[0]!.at;
  const filters = [{ integrationId: second }, { status: 'failed' }, { trigger: 'manual' }, { since }, { integrationId: second, status: 'failed', since }];
  for (const filter of filters) {
    const want = await expected(mine.accountId, filter);
    expect(want.length).toBeGreaterThan(0);
    expect(want.length).toBeLessThan(all.length);
    expect(await readAll(mine.accountId, filter, 4)).toEqual(want);
  }
  // Another account's integration named as the filter, or another account's cursor, shows nothing of it.
  expect(await readAll(mine.accountId, { integrationId: theirs.integrationId }, 10)).toEqual([]);
  const theirPage = await listAccountRuns(db, theirs.accountId, { limit: 5 });
  const fromTheirCursor = await listAccountRuns(db, mine.accountId, { limit: 200, cursor: theirPage.nextCursor ?? undefined });
  const theirIds = new Set(await expected(theirs.accountId));
  expect(fromTheirCursor.items.length).toBeGreaterThan(0);
  expect(fromTheirCursor.items.filter((row) => theirIds.has(row.id))).toEqual([]);
});

test('a run is listed under its integration’s account whatever account its writer names', async () => {
  const mine = await newTenant(db);
  const theirs = await newTenant(db);
  // A writer naming another account, on insert or later, is overruled by the trigger.
  const [forged] = await db.$client<{ id: string; account_id: string }[]>`
    insert into sync_runs (integration_id, account_id, mode_requested, trigger)
    values (${mine.integrationId}, ${theirs.accountId}, 'full', 'api') returning id, account_id`;
  expect(forged!.account_id).toBe(mine.accountId);
  const created = await createRun(db, { integrationId: mine.integrationId, modeRequested: 'delta', trigger: 'schedule' });
  const [moved] = await db.$client<{ account_id: string }[]>`
    update sync_runs set account_id = ${theirs.accountId} where id = ${created.id} returning account_id`;
  expect(moved!.account_id).toBe(mine.accountId);
  // A session's temporary table named like the integrations does not stand in for them.
  const session = await db.$client.reserve();
  let shadowed: { id: string; account_id: string } | undefined;
  try {
    await session`create temporary table integrations (id uuid, account_id uuid)`;
    await session`insert into integrations values (${mine.integrationId}, ${theirs.accountId})`;
    [shadowed] = await session<{ id: string; account_id: string }[]>`
      insert into sync_runs (integration_id, mode_requested, trigger) values (${mine.integrationId}, 'full', 'api') returning id, account_id`;
  } finally {
    await session`drop table if exists pg_temp.integrations`;
    session.release();
  }
  expect(shadowed!.account_id).toBe(mine.accountId);
  expect((await listAccountRuns(db, theirs.accountId, { limit: 10 })).items).toEqual([]);
  expect((await readAll(mine.accountId, {}, 10)).sort()).toEqual([forged!.id, created.id, shadowed!.id].sort());
});

test('a page reads the runs it shows, not the account’s history, whichever plan PostgreSQL picks', async () => {
  const { mine, second, theirs } = await twoAccounts(1500, 3000);
  const rare = (
    await db.$client<{ id: string }[]>`
      insert into sync_runs (integration_id, mode_requested, trigger, status, queued_at)
      select ${second}, 'full', 'schedule', 'blocked', now() - make_interval(days => 30 + k) from generate_series(1, 5) k
      returning id`
  ).map((row) => row.id);
  await db.$client`analyze sync_runs`;
  const first = await listAccountRuns(db, mine.accountId, { limit: 50 });
  let cursor = first.nextCursor ?? undefined;
  for (let page = 1; page < 20; page += 1) cursor = (await listAccountRuns(db, mine.accountId, { limit: 50, cursor })).nextCursor ?? undefined;
  expect(cursor).toBeDefined();
  for (const plan of ['custom', 'generic'] as const) {
    for (const filter of [{}, { cursor }, { integrationId: second, cursor }]) {
      const { value, reads } = await planReads(databaseUrl, 'from sync_runs r', (handle) => listAccountRuns(handle, mine.accountId, { limit: 50, ...filter }), plan);
      expect(value.items).toHaveLength(50);
      // The page and the row that tells whether there is more, from each status present
      // (succeeded and failed), or from the integration's index; the account's 3,000 runs and the
      // other account's 3,000 stay unread.
      expect(reads.get('sync_runs')?.rows ?? 0).toBeLessThanOrEqual(120);
    }
    // Runs of a rare status, older than all the others: read alone, not behind the 3,000.
    const blocked = await planReads(databaseUrl, 'from sync_runs r', (handle) => listAccountRuns(handle, mine.accountId, { limit: 50, status: 'blocked' }), plan);
    expect(blocked.value.items.map((row) => row.id).sort()).toEqual([...rare].sort());
    expect(blocked.reads.get('sync_runs')?.rows ?? 0).toBeLessThanOrEqual(rare.length);
  }
});

test('the reconciler and the metrics find the unfinished runs without reading the finished ones', async () => {
  const mine = await newTenant(db);
  await history([mine.integrationId], 3000);
  await db.$client`
    insert into sync_runs (integration_id, mode_requested, trigger, status)
    select ${mine.integrationId}, 'delta', 'schedule', s from unnest(array['queued', 'queued', 'running', 'retrying']) s`;
  await db.$client`analyze sync_runs`;
  const [stored] = await db.$client<{ queued: number; running: number; unfinished: number }[]>`
    select count(*) filter (where status = 'queued')::int as queued, count(*) filter (where status = 'running')::int as running,
      count(*) filter (where status in ('queued', 'running', 'retrying'))::int as unfinished
    from sync_runs`;
  expect(stored!.unfinished).toBeGreaterThanOrEqual(4);
  for (const plan of ['custom', 'generic'] as const) {
    const counted = await planReads(databaseUrl, 'as n', countActiveRuns, plan);
    expect(new Map(counted.value.map((row) => [row.status, row.n]))).toEqual(new Map([['queued', stored!.queued], ['running', stored!.running]]));
    expect(counted.reads.get('sync_runs')?.rows ?? 0).toBeLessThanOrEqual(stored!.unfinished);
    const listed = await planReads(databaseUrl, 'from sync_runs\n', async (handle) => {
      const pass = await withReconcileLock(handle, (session) => session.listUnfinishedRuns(100));
      return pass.acquired ? pass.value : [];
    }, plan);
    expect(listed.value).toHaveLength(stored!.unfinished);
    expect(listed.reads.get('sync_runs')?.rows ?? 0).toBeLessThanOrEqual(stored!.unfinished);
  }
});

test('the installation-wide run list reads the newest runs of each account and status, not every run kept', async () => {
  const mine = await newTenant(db);
  const theirs = await newTenant(db);
  await history([mine.integrationId], 2000);
  await history([theirs.integrationId], 2000);
  await db.$client`analyze sync_runs`;
  const newest = async (status: string | null, limit: number) =>
    (
      await db.$client<{ id: string }[]>`
        select id from sync_runs where (${status}::text is null or status = ${status}::text) order by queued_at desc, id desc limit ${limit}`
    ).map((row) => row.id);
  expect((await listRuns(db, { limit: 30 })).map((run) => run.id)).toEqual(await newest(null, 30));
  expect((await listRuns(db, { limit: 30, status: 'failed' })).map((run) => run.id)).toEqual(await newest('failed', 30));
  expect((await listRuns(db, { limit: 1000, status: 'blocked' })).map((run) => run.id)).toEqual(await newest('blocked', 1000));
  const [counted] = await db.$client<{ accounts: number; statuses: number }[]>`
    select (select count(*) from accounts)::int as accounts, (select count(distinct status) from sync_runs)::int as statuses`;
  for (const plan of ['custom', 'generic'] as const) {
    const { value, reads } = await planReads(databaseUrl, 'from accounts a', (handle) => listRuns(handle, { limit: 30 }), plan);
    expect(value).toHaveLength(30);
    // At most a page per account and status present; the 4,000 runs of these two accounts stay unread.
    expect(reads.get('sync_runs')?.rows ?? 0).toBeLessThanOrEqual(counted!.accounts * counted!.statuses * 30);
    expect(counted!.accounts * counted!.statuses * 30).toBeLessThan(4000);
  }
});
