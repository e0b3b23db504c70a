import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { accountAuditStatement, close, connect, createAccount, createIntegration, listAccountAudit, type AccountAuditFilter, type Db } from '../src/index.ts';
import { planReads } from './support/plans.ts';

// GET /v1/audit reads an account's log a page at a time, newest first. Over a few thousand events
// of two accounts, PostgreSQL's plan of the repository's own statement reads each branch from its
// index in the page's order (no Seq Scan, no Sort under the page's limit), and the pages, walked
// by cursor, hold exactly the account's events in order.

let database: TestDatabase;
let db: Db;
let accountA: string;
let accountB: string;
let integrationA: string;

const perAccount = 3000;
const integrationOnly = 40;

beforeAll(async () => {
  database = await createTestDatabase('audit_index');
  db = connect(database.url, { max: 2 });
  accountA = (await createAccount(db, { name: 'audit-a' })).id;
  accountB = (await createAccount(db, { name: 'audit-b' })).id;
  integrationA = (await createIntegration(db, { accountId: accountA, kind: 'ldap', name: 'directory a', settings: {} })).id;
  const integrationB = (await createIntegration(db, { accountId: accountB, kind: 'ldap', name: 'directory b', settings: {} })).id;
  // Seconds apart, every fifth pair at the same instant (the id breaks the tie).
  for (const [account, integration] of [[accountA, integrationA], [accountB, integrationB]] as const) {
    await db.$client`
      insert into audit_events (account_id, integration_id, actor, action, details, created_at)
      select ${account}::uuid, case when g % 10 = 0 then ${integration}::uuid end, 'api:key-' || (g % 7),
             (array['integration.updated', 'webhook.created', 'run.approved'])[1 + g % 3], '{}'::jsonb,
             now() - make_interval(secs => g - g % 5 / 4)
      from generate_series(1, ${perAccount}) g`;
  }
  // Recorded with the integration alone (a worker's): account A's too.
  await db.$client`
    insert into audit_events (account_id, integration_id, actor, action, details, created_at)
    select null, ${integrationA}::uuid, 'worker', 'connector.consent.revoked', '{}'::jsonb, now() - make_interval(secs => g * 77)
    from generate_series(1, ${integrationOnly}) g`;
  await db.$client`analyze audit_events`;
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

async function planOf(filter: AccountAuditFilter): Promise<PlanNode> {
  const statement = accountAuditStatement(accountA, filter);
  const [row] = await db.$client.unsafe<{ 'QUERY PLAN': [{ Plan: PlanNode }] }[]>(`explain (format json) ${statement.text}`, statement.params);
  return row!['QUERY PLAN'][0].Plan;
}

/** Every node of the plan with the chain of its ancestors' types. */
function nodes(plan: PlanNode, ancestors: string[] = []): { node: PlanNode; ancestors: string[] }[] {
  return [{ node: plan, ancestors }, ...(plan.Plans ?? []).flatMap((child) => nodes(child, [...ancestors, plan['Node Type']]))];
}

test.each<[string, AccountAuditFilter]>([
  ['the first page', { limit: 50 }],
  ['a page after a cursor, with an action prefix and a time range', { limit: 50, action: 'integration.*', since: '2000-01-01T00:00:00Z', until: '2999-01-01T00:00:00Z' }],
  ['a page after a cursor, with an actor', { limit: 20, actor: 'KEY-3' }],
])('%s: the account\'s events are read from its index in the page order, never a Seq Scan and Sort of audit_events', async (_what, filter) => {
  const first = await listAccountAudit(db, accountA, { limit: 50 });
  const plan = await planOf(filter.since === undefined && filter.actor === undefined ? filter : { ...filter, cursor: first.nextCursor ?? undefined });
  const all = nodes(plan);
  expect(all.filter(({ node }) => node['Relation Name'] === 'audit_events').map(({ node }) => node['Node Type'])).not.toContain('Seq Scan');
  const account = all.filter(({ node }) => node['Index Name'] === 'audit_events_account_idx');
  expect(account.map(({ node }) => node['Node Type'])).toEqual(['Index Scan']);
  // Read in order and cut at the page's size: no Sort between the scan and its Limit.
  expect(account[0]!.ancestors.at(-1)).toBe('Limit');
  expect(account[0]!.ancestors).not.toContain('Sort');
  // Events recorded with an integration alone come from the partial index, not the whole table.
  expect(all.some(({ node }) => node['Index Name'] === 'audit_events_integration_only_idx')).toBe(true);
});

test('with an integration filter as well, no Seq Scan of audit_events either', async () => {
  const all = nodes(await planOf({ limit: 20, actor: 'KEY-3', integrationId: integrationA }));
  expect(all.filter(({ node }) => node['Relation Name'] === 'audit_events').map(({ node }) => node['Node Type'])).not.toContain('Seq Scan');
  expect(all.some(({ node }) => node['Index Name'] === 'audit_events_integration_only_idx')).toBe(true);
});

test("pages walked by cursor hold exactly the account's events, newest first, ties broken by id", async () => {
  const expected = (
    await db.$client<{ id: string }[]>`
      select id::text as id from audit_events
      where account_id = ${accountA} or (account_id is null and integration_id = ${integrationA})
      order by created_at desc, id desc`
  ).map((row) => row.id);
  expect(expected).toHaveLength(perAccount + integrationOnly);
  const seen: string[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await listAccountAudit(db, accountA, { limit: 250, ...(cursor === undefined ? {} : { cursor }) });
    seen.push(...page.items.map((item) => item.id));
    if (page.nextCursor === null) break;
    cursor = page.nextCursor;
  }
  expect(seen).toEqual(expected);

  const prefixed = await listAccountAudit(db, accountA, { limit: 1000, action: 'integration.*', actor: 'key-3' });
  const oracle = (
    await db.$client<{ id: string }[]>`
      select id::text as id from audit_events
      where account_id = ${accountA} and action like 'integration.%' and actor like '%key-3%'
      order by created_at desc, id desc`
  ).map((row) => row.id);
  expect(oracle.length).toBeGreaterThan(0);
  expect(prefixed.items.map((item) => item.id)).toEqual(oracle);
  const worker = await listAccountAudit(db, accountA, { limit: 1000, actor: 'worker' });
  expect(worker.items).toHaveLength(integrationOnly);
  expect(worker.items.every((item) => item.integrationId === integrationA && item.action === 'connector.consent.revoked')).toBe(true);
  expect((await listAccountAudit(db, accountB, { limit: 1000, actor: 'worker' })).items).toEqual([]);
});

test('a page deep in the log, or inside a time range, reads about its own events, with a custom plan or a generic one', async () => {
  let cursor: string | undefined;
  for (let page = 0; page < 40; page += 1) cursor = (await listAccountAudit(db, accountA, { limit: 50, ...(cursor === undefined ? {} : { cursor }) })).nextCursor ?? undefined;
  expect(cursor).toBeDefined();
  const [range] = await db.$client<{ since: string; until: string }[]>`
    select (now() - interval '2500 seconds')::text as since, (now() - interval '2000 seconds')::text as until`;
  for (const plan of ['custom', 'generic'] as const) {
    for (const filter of [{ limit: 50, cursor }, { limit: 50, since: range!.since, until: range!.until }]) {
      const { value, reads } = await planReads(database.url, 'from audit_events a', (handle) => listAccountAudit(handle, accountA, filter), plan);
      expect(value.items).toHaveLength(50);
      // Each branch reads its page and one row more from its index; account A's 3,000 events and
      // account B's stay unread (a cursor the plan only filters by reads the 2,000 newer ones).
      expect(reads.get('audit_events')?.rows ?? 0).toBeLessThanOrEqual(120);
    }
  }
});
