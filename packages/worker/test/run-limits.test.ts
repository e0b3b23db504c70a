import { randomUUID } from 'node:crypto';
import { close, connect, type Db } from '@dirsync/db';
import { createProvider, type Provider } from '@dirsync/providers';
import { createTestDatabase, type HostileLdapServer, startHostileLdap, type TestDatabase, testDestinations } from '@dirsync/testkit';
import { RunLimitError, runSync } from '../src/pipeline/index.ts';
import { createIntegrationRow } from './support/harness.ts';

// A directory that answers every page quickly, each with new entries and a new cookie, would
// otherwise fill the shared database and hold a worker for ever: one run is bounded in entries
// and in wall-clock time, pipeline time included, and ends as a failure that deletes nothing.

let server: HostileLdapServer;
let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  server = await startHostileLdap({ users: 5, groups: 1 });
  database = await createTestDatabase('runlimits');
  db = connect(database.url, { max: 4 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
  await server.close();
});

function provider(): Provider<unknown> {
  return createProvider('ldap', server.settings(), server.password, { destinations: testDestinations });
}

async function liveObjects(integrationId: string): Promise<number> {
  const [row] = await db.$client<{ n: number }[]>`select count(*)::int as n from directory_objects where integration_id = ${integrationId} and deleted_at is null`;
  return row?.n ?? 0;
}

async function limitedSync(integrationId: string, limits: { maxObjects?: number; maxDurationMs?: number }): Promise<unknown> {
  const p = provider();
  try {
    return await runSync({
      db,
      provider: p,
      integration: { id: integrationId, cursor: null, deleteThresholdCount: 1000, deleteThresholdPercent: 100 },
      run: { id: randomUUID(), modeRequested: 'full', dryRun: false },
      signal: new AbortController().signal,
      limits,
    }).catch((error: unknown) => error);
  } finally {
    server.behave('normal');
    await p.close();
  }
}

test('a run stops past its entry limit, keeps what it stored and deletes nothing', async () => {
  const integrationId = await createIntegrationRow(db);
  // A first, normal run stores the directory.
  expect(await limitedSync(integrationId, {})).toMatchObject({ status: 'succeeded', created: 6 });
  server.behave('pages-forever');
  const error = await limitedSync(integrationId, { maxObjects: 40 });
  expect(error).toBeInstanceOf(RunLimitError);
  expect((error as RunLimitError).retryable).toBe(false);
  expect((error as Error).message).toBe("the directory sent more than 40 entries in one run, this installation's limit for one run; nothing was deleted");
  // At most one batch past the limit reached the database; nothing of the first run was swept.
  const live = await liveObjects(integrationId);
  expect(live).toBeGreaterThanOrEqual(6);
  expect(live).toBeLessThanOrEqual(6 + 41);
});

test('a run stops at its wall-clock limit however the server paces its answers', async () => {
  const integrationId = await createIntegrationRow(db);
  server.behave('pages-forever');
  const started = Date.now();
  const error = await limitedSync(integrationId, { maxDurationMs: 1_500 });
  expect(error).toBeInstanceOf(RunLimitError);
  expect((error as Error).message).toBe("the run took longer than 2 s, this installation's limit for one run; nothing was deleted");
  // Stopped by the limit, not by a server-side bound (the search time limit is 600 s here).
  expect(Date.now() - started).toBeLessThan(30_000);
});
