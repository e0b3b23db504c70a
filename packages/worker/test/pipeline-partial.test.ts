import { randomUUID } from 'node:crypto';
import { close, connect, type Db } from '@dirsync/db';
import type { CanonicalObject, ConnectionReport, Cursor, FetchPage, MapResult, Provider } from '@dirsync/providers';
import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { runSync, type SyncReport } from '../src/pipeline/index.ts';
import { createIntegrationRow } from './support/harness.ts';

// Partial objects (a delta record with only some attributes) and repeats (an object a round lists
// twice) through the pipeline, across batches, for any provider that sends them: the source here
// is a list of pages of canonical objects, given whole per test.

let database: TestDatabase;
let db: Db;

/** Serves the pages it is given, full or delta alike; the objects are the entries. */
class PagesProvider implements Provider<CanonicalObject> {
  readonly kind = 'pages';
  readonly pages: readonly FetchPage<CanonicalObject>[];
  constructor(pages: readonly FetchPage<CanonicalObject>[]) {
    this.pages = pages;
  }
  async testConnection(): Promise<ConnectionReport> {
    return { ok: true, checks: [] };
  }
  async *fetchFull(): AsyncIterable<FetchPage<CanonicalObject>> {
    yield* this.pages;
  }
  async *fetchDelta(): AsyncIterable<FetchPage<CanonicalObject>> {
    yield* this.pages;
  }
  map(entry: CanonicalObject): MapResult {
    return { ok: true, object: entry };
  }
  async close(): Promise<void> {}
}

const cursor: Cursor = { version: 1 };

async function sync(integrationId: string, mode: 'full' | 'delta', pages: FetchPage<CanonicalObject>[], dryRun = false): Promise<SyncReport> {
  return runSync({
    db,
    provider: new PagesProvider([...pages, { entries: [], cursor }]),
    integration: { id: integrationId, cursor: mode === 'delta' ? cursor : null, deleteThresholdCount: 1000, deleteThresholdPercent: 100 },
    run: { id: randomUUID(), modeRequested: mode, dryRun },
    signal: new AbortController().signal,
    // Two objects a batch: the records of one object land in different batches.
    batchSize: 2,
  });
}

async function stored(integrationId: string): Promise<Record<string, unknown>> {
  const rows = await db.$client<{ external_id: string; attributes: unknown }[]>`
    select external_id, attributes from directory_objects where integration_id = ${integrationId} order by external_id`;
  return Object.fromEntries(rows.map((row) => [row.external_id, row.attributes]));
}

const user = (id: string, attributes: CanonicalObject['attributes'], flags: Partial<Pick<CanonicalObject, 'partial' | 'repeat'>> = {}): CanonicalObject => ({
  externalId: id,
  type: 'user',
  attributes,
  ...flags,
});

beforeAll(async () => {
  database = await createTestDatabase('pipelinepartial');
  db = connect(database.url, { max: 4 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

test('a repeat in a later batch is written if it differs and counted once, in a first and a later sync', async () => {
  const integrationId = await createIntegrationRow(db);
  const pages = (title: string) => [
    { entries: [user('a', { title: 'one' }), user('b', { title: 'one' }), user('c', { title: 'one' })] },
    // `a` again, later and different; `b` again, the same.
    { entries: [user('a', { title }, { repeat: true }), user('b', { title: 'one' }, { repeat: true }), user('d', { title: 'one' })] },
  ];
  const first = await sync(integrationId, 'full', pages('two'));
  expect(first).toMatchObject({ status: 'succeeded', fetched: 4, created: 4, updated: 0, unchanged: 0 });
  expect((await stored(integrationId))['a']).toEqual({ title: 'two' });
  const again = await sync(integrationId, 'full', pages('two'));
  expect(again).toMatchObject({ status: 'succeeded', fetched: 4, created: 0, updated: 1, unchanged: 3, deleted: 0 });
  expect((await stored(integrationId))['a']).toEqual({ title: 'two' });
});

test('partial records merge over what is stored, also over what an earlier batch of the run wrote', async () => {
  const integrationId = await createIntegrationRow(db);
  await sync(integrationId, 'full', [{ entries: [user('a', { name: 'A', dept: 'x', title: 't' }), user('b', { name: 'B', dept: 'y' })] }]);
  const delta = [
    {
      entries: [
        // Changes `title`, leaves the rest: kept.
        user('a', { title: 'u' }, { partial: { cleared: [] } }),
        // Clears `dept` explicitly.
        user('b', {}, { partial: { cleared: ['dept'] } }),
        user('c', { name: 'C' }, { partial: { cleared: ['dept'] } }),
      ],
    },
    // `a` again in a later batch, another property changed: merged over the first record's write.
    { entries: [user('x', { name: 'X' }), user('a', { name: 'A2' }, { partial: { cleared: [] }, repeat: true })] },
    // Carries what is stored already: unchanged.
    { entries: [user('b', { name: 'B' }, { partial: { cleared: [] }, repeat: true })] },
  ];
  const dry = await sync(integrationId, 'delta', delta, true);
  const report = await sync(integrationId, 'delta', delta);
  // `a` and `b` updated once each, `c` and `x` (not stored yet) created with what they carry.
  expect(report).toMatchObject({ status: 'succeeded', mode: 'delta', fetched: 4, created: 2, updated: 2, unchanged: 0 });
  expect(dry).toMatchObject({ status: 'dry_run', created: 2, updated: 2, unchanged: 0 });
  expect(await stored(integrationId)).toEqual({
    a: { name: 'A2', dept: 'x', title: 'u' },
    b: { name: 'B' },
    c: { name: 'C' },
    x: { name: 'X' },
  });
  // The same changes again change nothing.
  const replay = await sync(integrationId, 'delta', delta);
  expect(replay).toMatchObject({ status: 'succeeded', created: 0, updated: 0, unchanged: 4 });
});
