import type { Db } from '../src/client.ts';
import { listMemberships } from '../src/api-reads.ts';
import { InvalidCursorError } from '../src/errors.ts';
import { newTenant, useTestDatabase } from './support/database.ts';
import { planReads } from './support/plans.ts';

let db: Db;
let databaseUrl: string;
useTestDatabase('memberships_listing', 2, (ready, database) => {
  db = ready;
  databaseUrl = database.url;
});

const cursorOf = (parts: readonly string[]) => Buffer.from(JSON.stringify(parts)).toString('base64url');

async function readAll(integrationId: string, limit: number): Promise<string[]> {
  const seen: string[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await listMemberships(db, integrationId, { limit, ...(cursor === undefined ? {} : { cursor }) });
    seen.push(...page.items.map((edge) => `${edge.groupExternalId}>${edge.memberExternalId}`));
    if (page.nextCursor === null) return seen;
    cursor = page.nextCursor;
  }
}

test('edges written at one instant are paged by the edge itself: every edge once, in order', async () => {
  const { integrationId } = await newTenant(db);
  // One statement: every edge has the same updated_at, so only the edge orders them.
  await db.$client`
    insert into memberships (integration_id, group_external_id, member_external_id)
    select ${integrationId}, 'g' || (n % 3), 'm' || n from generate_series(1, 10) as n`;
  const expected = (await db.$client<{ e: string }[]>`
    select group_external_id || '>' || member_external_id as e from memberships where integration_id = ${integrationId}
    order by group_external_id, member_external_id`).map((row) => row.e);
  expect(expected).toHaveLength(10);
  for (const limit of [1, 3, 4, 10]) expect(await readAll(integrationId, limit)).toEqual(expected);
});

test('a cursor from before edges had no row number resumes at its instant; a malformed one is refused', async () => {
  const { integrationId } = await newTenant(db);
  await db.$client`
    insert into memberships (integration_id, group_external_id, member_external_id, updated_at)
    values (${integrationId}, 'g', 'a', '2030-01-01T00:00:00Z'), (${integrationId}, 'g', 'b', '2030-01-01T00:00:00Z'),
           (${integrationId}, 'g', 'c', '2030-01-02T00:00:00Z')`;
  const legacy = await listMemberships(db, integrationId, { limit: 10, cursor: cursorOf(['2030-01-01T00:00:00.000000Z', '12']) });
  // Repeats the edges of that instant rather than skip any.
  expect(legacy.items.map((edge) => edge.memberExternalId)).toEqual(['a', 'b', 'c']);
  const after = await listMemberships(db, integrationId, { limit: 10, cursor: cursorOf(['2030-01-01T00:00:00.000000Z', 'g', 'a']) });
  expect(after.items.map((edge) => edge.memberExternalId)).toEqual(['b', 'c']);
  for (const bad of [['2030-01-01T00:00:00.000000Z', 'x'], ['2030-01-01T00:00:00.000000Z', 'g', 7], ['yesterday', 'g', 'a'], ['2030-01-01T00:00:00.000000Z', 'g', 'x'.repeat(9000)]]) {
    await expect(listMemberships(db, integrationId, { limit: 10, cursor: cursorOf(bad as string[]) })).rejects.toThrow(InvalidCursorError);
  }
});

test('a page reads the edges of the instant its cursor is in, not every edge of the integration', async () => {
  const { integrationId } = await newTenant(db);
  // 20 instants of 1,000 edges each, as 20 write statements leave them (each stamps its edges
  // with its transaction's time); edge n is g<n/100>>m<n>, so the expected order is n's.
  const edge = (n: number) => `g${String(Math.floor(n / 100)).padStart(3, '0')}>m${String(n).padStart(5, '0')}`;
  await db.$client`
    insert into memberships (integration_id, group_external_id, member_external_id, updated_at)
    select ${integrationId}, 'g' || lpad((n / 100)::text, 3, '0'), 'm' || lpad(n::text, 5, '0'),
      timestamptz '2030-01-01T00:00:00Z' + (n / 1000) * interval '1 minute'
    from generate_series(0, 19999) as n`;
  await db.$client`analyze memberships`;
  const first = await listMemberships(db, integrationId, { limit: 1500 });
  expect(first.items.map((row) => `${row.groupExternalId}>${row.memberExternalId}`)).toEqual(Array.from({ length: 1500 }, (_, n) => edge(n)));
  const cursor = first.nextCursor;
  if (cursor === null) throw new Error('the first page said there was no more');

  // From the middle of the second instant: its 1,000 edges are read (the first 500 passed over by
  // the cursor) and, to see the instant end, one edge of the third, not 20,000 edges sorted.
  const { value: page, reads } = await planReads(databaseUrl, 'from memberships m', (probe) =>
    listMemberships(probe, integrationId, { limit: 100, cursor }),
  );
  expect(page.items.map((row) => `${row.groupExternalId}>${row.memberExternalId}`)).toEqual(Array.from({ length: 100 }, (_, n) => edge(1500 + n)));
  const read = reads.get('memberships')?.rows ?? 0;
  expect(read).toBeGreaterThanOrEqual(600);
  expect(read).toBeLessThanOrEqual(1100);
});

test('with updatedSince, pages start at that time, and a cursor from before it does not reach back', async () => {
  const { integrationId } = await newTenant(db);
  await db.$client`
    insert into memberships (integration_id, group_external_id, member_external_id, updated_at)
    select ${integrationId}, 'g' || (n / 10), 'm' || lpad(n::text, 3, '0'), timestamptz '2030-01-01T00:00:00Z' + (n / 10) * interval '1 minute'
    from generate_series(0, 99) as n`;
  const expected = Array.from({ length: 50 }, (_, i) => `g${Math.floor((50 + i) / 10)}>m${String(50 + i).padStart(3, '0')}`);
  const since = '2030-01-01T00:05:00Z';
  const seen: string[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await listMemberships(db, integrationId, { limit: 7, updatedSince: since, ...(cursor === undefined ? {} : { cursor }) });
    seen.push(...page.items.map((edge) => `${edge.groupExternalId}>${edge.memberExternalId}`));
    if (page.nextCursor === null) break;
    cursor = page.nextCursor;
  }
  expect(seen).toEqual(expected);
  // A cursor inside the second minute, with the fifth minute as the floor: the floor wins.
  const early = await listMemberships(db, integrationId, { limit: 3, updatedSince: since, cursor: cursorOf(['2030-01-01T00:01:00.000000Z', 'g1', 'm012']) });
  expect(early.items.map((edge) => edge.memberExternalId)).toEqual(['m050', 'm051', 'm052']);
  // A cursor past the floor wins: the page continues after it.
  const later = await listMemberships(db, integrationId, { limit: 3, updatedSince: since, cursor: cursorOf(['2030-01-01T00:07:00.000000Z', 'g7', 'm074']) });
  expect(later.items.map((edge) => edge.memberExternalId)).toEqual(['m075', 'm076', 'm077']);
});

test("another integration's cursor only positions the page: every edge comes from the integration asked for", async () => {
  const mine = await newTenant(db);
  const theirs = await newTenant(db);
  // The same edges in both, theirs an hour later: their cursor lies after all of mine.
  for (const [integrationId, hour] of [[mine.integrationId, 0], [theirs.integrationId, 1]] as const) {
    await db.$client`
      insert into memberships (integration_id, group_external_id, member_external_id, updated_at)
      select ${integrationId}, 'g' || (n / 10), 'm' || lpad(n::text, 3, '0'), timestamptz '2030-01-01T00:00:00Z' + ${hour} * interval '1 hour'
      from generate_series(0, 49) as n`;
  }
  const page = await listMemberships(db, theirs.integrationId, { limit: 10 });
  const cursor = page.nextCursor;
  if (cursor === null) throw new Error('their first page said there was no more');
  expect(await listMemberships(db, mine.integrationId, { limit: 100, cursor })).toEqual({ items: [], nextCursor: null });
  expect(await readAll(mine.integrationId, 100)).toHaveLength(50);
});
