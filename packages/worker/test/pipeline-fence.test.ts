import { randomUUID } from 'node:crypto';
import { close, connect, type Db, FencedOutError } from '@dirsync/db';
import type { FetchPage } from '@dirsync/providers';
import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { runSync } from '../src/pipeline/index.ts';
import { createIntegrationRow } from './support/harness.ts';
import { group, ScriptedProvider, type ScriptedEntry, user, userDn } from './support/scripted-provider.ts';

// Batches this large spread their rows over two connections, each in a fenced transaction.
const users = 1_500;
const groups = 12;
const membersPerGroup = 200;

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase('pipeline_fence');
  db = connect(database.url, { max: 6 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

function directory(): ScriptedProvider {
  const entries = Array.from({ length: users }, (_, i) => user(`u${i}`));
  for (let g = 0; g < groups; g += 1) {
    entries.push(group(`g${g}`, Array.from({ length: membersPerGroup }, (_, i) => userDn(`u${(g * 97 + i) % users}`))));
  }
  const provider = new ScriptedProvider().put(...entries);
  provider.pageSize = 500;
  return provider;
}

/** Starts an attempt as the worker does: the integration's fence is its token, the run row holds it. */
async function attempt(integrationId: string, mode: 'full' | 'delta'): Promise<{ runId: string; fence: string }> {
  const runId = randomUUID();
  const fence = randomUUID();
  await db.$client`update integrations set sync_fence = ${fence} where id = ${integrationId}`;
  await db.$client`
    insert into sync_runs (id, integration_id, mode_requested, trigger, status, fence)
    values (${runId}, ${integrationId}, ${mode}, 'manual', 'running', ${fence})`;
  return { runId, fence };
}

function sync(integrationId: string, provider: ScriptedProvider, run: { runId: string; fence: string }) {
  return runSync({
    db,
    provider,
    integration: { id: integrationId, cursor: null, deleteThresholdCount: 100_000, deleteThresholdPercent: 100 },
    run: { id: run.runId, modeRequested: 'full', dryRun: false },
    signal: new AbortController().signal,
    fence: run.fence,
    batchSize: 1_000,
    parallelism: 2,
  });
}

async function storedCounts(runId: string) {
  const [row] = await db.$client<{ created: number; updated: number; restored: number; memberships_added: number; memberships_removed: number }[]>`
    select created, updated, restored, memberships_added, memberships_removed from sync_runs where id = ${runId}`;
  return row;
}

test('a fenced run spread over two connections records exactly what it wrote', async () => {
  const integrationId = await createIntegrationRow(db);
  const provider = directory();

  const first = await attempt(integrationId, 'full');
  const report = await sync(integrationId, provider, first);
  expect(report).toMatchObject({ status: 'succeeded', created: users + groups, membershipsAdded: groups * membersPerGroup });
  expect(await storedCounts(first.runId)).toEqual({
    created: users + groups,
    updated: 0,
    restored: 0,
    memberships_added: groups * membersPerGroup,
    memberships_removed: 0,
  });
  const [edges] = await db.$client<{ n: number }[]>`
    select count(*)::int as n from memberships where integration_id = ${integrationId} and deleted_at is null`;
  expect(edges?.n).toBe(groups * membersPerGroup);
  // Every group's members hash landed with its edges, so an unchanged sync resolves nothing.
  const [unhashed] = await db.$client<{ n: number }[]>`
    select count(*)::int as n from directory_objects where integration_id = ${integrationId} and type = 'group' and members_hash is null`;
  expect(unhashed?.n).toBe(0);

  for (let i = 0; i < users; i += 3) provider.change(`u${i}`, { title: 'changed' });
  const second = await attempt(integrationId, 'full');
  const changed = await sync(integrationId, provider, second);
  expect(changed).toMatchObject({ status: 'succeeded', created: 0, updated: users / 3, membershipsAdded: 0 });
  expect(await storedCounts(second.runId)).toEqual({ created: 0, updated: users / 3, restored: 0, memberships_added: 0, memberships_removed: 0 });
});

test('an attempt whose fence moved while it ran writes nothing more, on any connection', async () => {
  const integrationId = await createIntegrationRow(db);
  const provider = directory();
  const stale = await attempt(integrationId, 'full');
  // The newer attempt claims the integration once the stale one has sent its first pages.
  let pages = 0;
  const fetchFull = provider.fetchFull.bind(provider);
  provider.fetchFull = async function* (signal: AbortSignal): AsyncIterable<FetchPage<ScriptedEntry>> {
    for await (const page of fetchFull(signal)) {
      pages += 1;
      if (pages === 3) await db.$client`update integrations set sync_fence = ${randomUUID()} where id = ${integrationId}`;
      yield page;
    }
  };
  await expect(sync(integrationId, provider, stale)).rejects.toBeInstanceOf(FencedOutError);
  const [stored] = await db.$client<{ objects: number; edges: number }[]>`
    select (select count(*)::int from directory_objects where integration_id = ${integrationId}) as objects,
           (select count(*)::int from memberships where integration_id = ${integrationId}) as edges`;
  // Only the first batch (1,000 entries, fetched before the claim) may have landed.
  expect(stored?.objects).toBeLessThanOrEqual(1_000);
  expect(stored?.edges).toBe(0);
  const counts = await storedCounts(stale.runId);
  expect(counts?.created).toBe(stored?.objects);
});
