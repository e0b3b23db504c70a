import { randomUUID } from 'node:crypto';
import type { Db } from '../src/client.ts';
import { listObjects } from '../src/api-reads.ts';
import { insertObjects, type ObjectWrite } from '../src/objects.ts';
import { newTenant, useTestDatabase } from './support/database.ts';
import { planReads } from './support/plans.ts';

let db: Db;
let databaseUrl: string;
useTestDatabase('objects_listing', 2, (ready, database) => {
  db = ready;
  databaseUrl = database.url;
});

function objects(type: 'user' | 'group' | 'contact', prefix: string, count: number): ObjectWrite[] {
  return Array.from({ length: count }, (_, i) => ({
    externalId: `${prefix}${String(i).padStart(5, '0')}`,
    type,
    dn: `cn=${prefix}${i},dc=x`,
    attributesJson: '{}',
    contentHash: 'h',
  }));
}

/**
 * An integration written as a sync writes one: statements of 1,000 users, then the groups, more
 * users and the contacts, each statement's rows stamped with its own time.
 */
async function directory(): Promise<string> {
  const { integrationId } = await newTenant(db);
  const run = randomUUID();
  for (const batch of ['a', 'b', 'c']) await insertObjects(db, integrationId, run, objects('user', `u${batch}`, 1000));
  await insertObjects(db, integrationId, run, objects('group', 'g', 60));
  await insertObjects(db, integrationId, run, objects('user', 'ud', 500));
  await insertObjects(db, integrationId, run, objects('contact', 'c', 40));
  await db.$client`analyze directory_objects`;
  return integrationId;
}

async function readAll(integrationId: string, type: 'user' | 'group' | 'contact' | undefined, limit: number, updatedSince?: string): Promise<string[]> {
  const seen: string[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await listObjects(db, integrationId, type, { limit, ...(cursor === undefined ? {} : { cursor }), ...(updatedSince === undefined ? {} : { updatedSince }) });
    seen.push(...page.items.map((row) => row.externalId));
    if (page.nextCursor === null) return seen;
    cursor = page.nextCursor;
  }
}

/** What the listing must return, straight from the table: live rows in order of change. */
async function expected(integrationId: string, since: string | null): Promise<string[]> {
  const rows = await db.$client<{ external_id: string }[]>`
    select external_id from directory_objects
    where integration_id = ${integrationId} and (${since}::timestamptz is null or updated_at >= ${since}::timestamptz)
    order by updated_at, id`;
  return rows.map((row) => row.external_id);
}

test('every type is listed in order of change across pages, from the start or from a time', async () => {
  const integrationId = await directory();
  const all = await expected(integrationId, null);
  expect(all).toHaveLength(3600);
  expect(await readAll(integrationId, undefined, 450)).toEqual(all);
  const [since] = await db.$client<{ at: string }[]>`
    select to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at
    from directory_objects where integration_id = ${integrationId} and external_id = 'g00000'`;
  const fromGroups = await expected(integrationId, since!.at);
  expect(fromGroups.slice(0, 3)).toEqual(['g00000', 'g00001', 'g00002']);
  expect(await readAll(integrationId, undefined, 37, since!.at)).toEqual(fromGroups);
  expect(await readAll(integrationId, 'group', 7)).toEqual(all.filter((id) => id.startsWith('g')));
  expect(await readAll(integrationId, 'contact', 1000)).toEqual(all.filter((id) => id.startsWith('c')));
});

test('a page of one type reads rows of that type only: the groups behind 3,000 users', async () => {
  const integrationId = await directory();
  const { value: page, reads } = await planReads(databaseUrl, 'from directory_objects o', (probe) => listObjects(probe, integrationId, 'group', { limit: 10 }));
  expect(page.items.map((row) => row.externalId)).toEqual(Array.from({ length: 10 }, (_, i) => `g${String(i).padStart(5, '0')}`));
  // The 60 groups share one time: all of them are read to order them by id, no user is.
  const read = reads.get('directory_objects')?.rows ?? 0;
  expect(read).toBeGreaterThanOrEqual(11);
  expect(read).toBeLessThanOrEqual(61);
});

test("another integration's cursor only positions the page: every row comes from the integration asked for", async () => {
  const mine = await directory();
  const theirs = await directory();
  const ours = await expected(mine, null);
  // Their first page's cursor, replayed against mine with a different page size. Their rows were
  // all written after mine, so none of mine lies after it; their 3,100 later rows must not show.
  const page = await listObjects(db, theirs, undefined, { limit: 500 });
  const cursor = page.nextCursor;
  if (cursor === null) throw new Error('their first page said there was no more');
  expect(await listObjects(db, mine, undefined, { limit: 1000, cursor })).toEqual({ items: [], nextCursor: null });
  // And mine, from the start, is mine alone, however it is paged.
  expect(await readAll(mine, undefined, 1000)).toEqual(ours);
});
