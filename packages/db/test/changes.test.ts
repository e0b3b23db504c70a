import { randomUUID } from 'node:crypto';
import { changeHead, changeRangeOfRun, type ChangeRow, pruneChanges, readChanges } from '../src/changes.ts';
import { pruneHistory } from '../src/retention.ts';
import type { Db } from '../src/client.ts';
import {
  applyMembershipChanges,
  deleteObjects,
  insertMemberships,
  insertObjects,
  type ObjectWrite,
  replaceMemberships,
  sweepUnseenObjects,
  writeObjects,
} from '../src/objects.ts';
import { linkArrivedObjects, linkManagers } from '../src/references.ts';
import { hashOf, newIntegration, newTenant, useTestDatabase } from './support/database.ts';
import { planReads } from './support/plans.ts';

let db: Db;
let databaseUrl: string;
useTestDatabase('changes', 4, (ready, database) => {
  db = ready;
  databaseUrl = database.url;
});

function user(externalId: string, attributes: Record<string, unknown> = { name: externalId }): ObjectWrite {
  return { externalId, type: 'user', dn: `uid=${externalId},dc=x`, attributesJson: JSON.stringify(attributes), contentHash: `h-${JSON.stringify(attributes)}` };
}

function group(externalId: string): ObjectWrite {
  return { ...user(externalId), type: 'group', dn: `cn=${externalId},dc=x` };
}

async function feed(accountId: string, after = '0'): Promise<ChangeRow[]> {
  const page = await readChanges(db, accountId, after, 1000);
  if ('refused' in page) throw new Error(`refused: ${page.refused}`);
  return page.items;
}

/** Entries in a compact form: `type id [+added] [-removed]`. */
function summary(rows: readonly ChangeRow[]): string[] {
  return rows.map((row) => {
    if (row.type !== 'membership.changed') return `${row.type} ${row.externalId}`;
    return `${row.type} ${row.externalId} +${[...row.added].sort().join(',')} -${[...row.removed].sort().join(',')}`;
  });
}

function expectDense(rows: readonly ChangeRow[], from = 1): void {
  expect(rows.map((row) => row.cursor)).toEqual(rows.map((_, i) => String(from + i)));
}

describe('entries written with the changes', () => {
  test('creates, updates, restores and deletes, with dense cursors and the run', async () => {
    const { accountId, integrationId } = await newTenant(db);
    const run1 = randomUUID();
    const run2 = randomUUID();
    expect(await insertObjects(db, integrationId, run1, [user('a'), user('b')])).toBe(2);
    await deleteObjects(db, integrationId, ['b'], hashOf, run1);
    expect(
      await writeObjects(db, integrationId, run2, [
        { ...user('a', { name: 'A' }), change: 'update' },
        { ...user('b'), change: 'restore' },
        user('c'),
      ]),
    ).toBe(3);
    const rows = await feed(accountId);
    expect(summary(rows.slice(0, 3))).toEqual(['object.created a', 'object.created b', 'object.deleted b']);
    // One statement's entries come grouped by what they did, in no particular order of groups.
    expect(summary(rows.slice(3)).sort()).toEqual(['object.created c', 'object.restored b', 'object.updated a']);
    expectDense(rows);
    expect(rows.map((row) => row.runId)).toEqual([run1, run1, run1, run2, run2, run2]);
    expect(rows.every((row) => row.integrationId === integrationId)).toBe(true);
    // The object is joined as it stands now.
    expect(rows[0]?.object).toMatchObject({ externalId: 'a', type: 'user', attributes: { name: 'A' }, deleted: false });
    expect(rows[2]?.object).toBeNull();
    expect(rows[2]?.objectType).toBe('user');
    expect(await changeHead(db, accountId)).toEqual({ head: '6', prunedThrough: '0' });
    expect(await changeRangeOfRun(db, run1)).toEqual({ cursorFrom: '1', cursorTo: '3', count: 3 });
    expect(await changeRangeOfRun(db, run2)).toEqual({ cursorFrom: '4', cursorTo: '6', count: 3 });
    expect(await changeRangeOfRun(db, randomUUID())).toBeNull();
  });

  test('an upsert without a decided change logs what it did: created or updated', async () => {
    const { accountId, integrationId } = await newTenant(db);
    const run = randomUUID();
    await writeObjects(db, integrationId, run, [user('a')]);
    await writeObjects(db, integrationId, run, [user('a', { name: 'A2' }), user('b')]);
    expect(summary(await feed(accountId))).toEqual(['object.created a', 'object.updated a', 'object.created b']);
  });

  test('membership writes log one entry per group with the members added and removed', async () => {
    const { accountId, integrationId } = await newTenant(db);
    const run = randomUUID();
    await insertObjects(db, integrationId, run, [user('u1'), user('u2'), user('u3'), group('g1'), group('g2')]);
    const before = (await changeHead(db, accountId)).head;
    expect(
      await insertMemberships(db, integrationId, run, [
        { groupExternalId: 'g1', memberExternalIds: ['u2', 'u1'], membersHash: 'x' },
        { groupExternalId: 'g2', memberExternalIds: ['u3'], membersHash: 'y' },
      ]),
    ).toBe(3);
    expect(
      await replaceMemberships(db, integrationId, run, [
        { groupExternalId: 'g1', memberExternalIds: ['u1', 'u3'], membersHash: 'x2' },
        // Unchanged: no entry.
        { groupExternalId: 'g2', memberExternalIds: ['u3'], membersHash: 'y' },
      ]),
    ).toEqual({ added: 1, removed: 1 });
    expect(
      await applyMembershipChanges(db, integrationId, run, {
        added: [{ groupExternalId: 'g2', memberExternalId: 'u1' }],
        removed: [
          { groupExternalId: 'g1', memberExternalId: 'u1' },
          // Not a live edge: nothing to log.
          { groupExternalId: 'g2', memberExternalId: 'u2' },
        ],
      }),
    ).toEqual({ added: 1, removed: 1 });
    const rows = await feed(accountId, before);
    // One statement's groups come in no particular order.
    expect(summary(rows.slice(0, 3))).toEqual(['membership.changed g1 +u1,u2 -', 'membership.changed g2 +u3 -', 'membership.changed g1 +u3 -u2']);
    expect(summary(rows.slice(3)).sort()).toEqual(['membership.changed g1 + -u1', 'membership.changed g2 +u1 -']);
    expectDense(rows, Number(before) + 1);
    expect(rows.every((row) => row.object === null && row.objectType === null)).toBe(true);
  });

  test('a deletion logs the edges it removed, the managers it cleared and the objects deleted', async () => {
    const { accountId, integrationId } = await newTenant(db);
    const run = randomUUID();
    await insertObjects(db, integrationId, run, [user('boss'), user('report', { name: 'r', manager: 'boss' }), group('g')]);
    await insertMemberships(db, integrationId, run, [{ groupExternalId: 'g', memberExternalIds: ['boss', 'report'], membersHash: 'h' }]);
    const before = (await changeHead(db, accountId)).head;
    const sweepRun = randomUUID();
    await writeObjects(db, integrationId, sweepRun, [user('report', { name: 'r', manager: 'boss' }), group('g')]);
    const mid = (await changeHead(db, accountId)).head;
    const counts = await sweepUnseenObjects(db, integrationId, sweepRun, hashOf);
    expect(counts).toEqual({ deleted: 1, membershipsRemoved: 1, managersCleared: 1 });
    const rows = await feed(accountId, mid);
    expect(summary(rows)).toEqual(['membership.changed g + -boss', 'object.updated report', 'object.deleted boss']);
    expect(rows.every((row) => row.runId === sweepRun)).toBe(true);
    expect(rows[1]?.object?.attributes).toEqual({ name: 'r' });
    expect(Number(mid)).toBeGreaterThan(Number(before));
    // The manager comes back: its report gets it again, logged as an update.
    await writeObjects(db, integrationId, sweepRun, [{ ...user('boss'), change: 'restore' }]);
    expect(await linkManagers(db, integrationId, [{ holderExternalId: 'report', managerExternalId: 'boss' }], hashOf, sweepRun)).toBe(1);
    expect(summary(await feed(accountId, String(Number(mid) + 3)))).toEqual(['object.restored boss', 'object.updated report']);
  });

  test('edges made for arrived objects are logged', async () => {
    const { accountId, integrationId } = await newTenant(db);
    const run = randomUUID();
    await insertObjects(db, integrationId, run, [group('g')]);
    await db.$client`insert into dangling_references (integration_id, attribute, target, source_external_id) values (${integrationId}, 'member', 'uid=late,dc=x', 'g')`;
    await insertObjects(db, integrationId, run, [user('late')]);
    expect(await linkArrivedObjects(db, integrationId, run, [{ externalId: 'late', dn: 'uid=late,dc=x', link: true }])).toBe(1);
    expect(summary(await feed(accountId))).toEqual(['object.created g', 'object.created late', 'membership.changed g +late -']);
  });

  test('an object updated and then deleted: the update entry shows the stored, soft-deleted state', async () => {
    const { accountId, integrationId } = await newTenant(db);
    const run = randomUUID();
    await insertObjects(db, integrationId, run, [user('a')]);
    await writeObjects(db, integrationId, run, [{ ...user('a', { name: 'A' }), change: 'update' }]);
    await deleteObjects(db, integrationId, ['a'], hashOf, run);
    const rows = await feed(accountId);
    expect(summary(rows)).toEqual(['object.created a', 'object.updated a', 'object.deleted a']);
    expect(rows[1]?.object).toMatchObject({ deleted: true, attributes: { name: 'A' } });
    expect(rows[1]?.object?.deletedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
  });
});

describe('cursors', () => {
  test('two accounts count independently; one integration of an account shares its stream', async () => {
    const a = await newTenant(db);
    const b = await newTenant(db);
    const a2 = await newIntegration(db, a.accountId);
    await insertObjects(db, a.integrationId, randomUUID(), [user('x')]);
    await insertObjects(db, b.integrationId, randomUUID(), [user('y'), user('z')]);
    await insertObjects(db, a2, randomUUID(), [user('x')]);
    const rowsA = await feed(a.accountId);
    const rowsB = await feed(b.accountId);
    expectDense(rowsA);
    expectDense(rowsB);
    expect(rowsA.map((row) => row.integrationId)).toEqual([a.integrationId, a2]);
    expect(summary(rowsB)).toEqual(['object.created y', 'object.created z']);
  });

  test('a cursor of another account reveals nothing, and one beyond the head is refused', async () => {
    const a = await newTenant(db);
    const b = await newTenant(db);
    await insertObjects(db, a.integrationId, randomUUID(), [user('1'), user('2'), user('3')]);
    await insertObjects(db, b.integrationId, randomUUID(), [user('q')]);
    // B's head is 1: A's cursor 2 was never handed to B.
    expect(await readChanges(db, b.accountId, '2', 10)).toEqual({ refused: 'beyond-head', head: '1' });
    const page = await readChanges(db, b.accountId, '0', 10);
    expect('items' in page && summary(page.items)).toEqual(['object.created q']);
  });

  test('a rolled-back transaction leaves no entry and no counter bump; the next commit continues densely', async () => {
    const { accountId, integrationId } = await newTenant(db);
    await insertObjects(db, integrationId, randomUUID(), [user('a')]);
    await expect(
      db.$client.begin(async (tx) => {
        await insertObjects(tx, integrationId, randomUUID(), [user('b'), user('c')]);
        await writeObjects(tx, integrationId, randomUUID(), [{ ...user('a', { v: 1 }), change: 'update' }]);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    // A statement that fails leaves nothing either (a unique violation: 'a' exists).
    await expect(insertObjects(db, integrationId, randomUUID(), [user('d'), user('a')])).rejects.toMatchObject({ code: '23505' });
    expect(await changeHead(db, accountId)).toEqual({ head: '1', prunedThrough: '0' });
    const batches = await db.$client`select 1 from change_batches where account_id = ${accountId}`;
    expect(batches).toHaveLength(1);
    await insertObjects(db, integrationId, randomUUID(), [user('e')]);
    const rows = await feed(accountId);
    expect(summary(rows)).toEqual(['object.created a', 'object.created e']);
    expectDense(rows);
  });

  test('entries of one transaction are numbered at commit, in commit order, so a reader never sees a gap fill later', async () => {
    const { accountId, integrationId } = await newTenant(db);
    const other = await newIntegration(db, accountId);
    const { promise: gate, resolve: release } = Promise.withResolvers<void>();
    const { promise: wrote, resolve: written } = Promise.withResolvers<void>();
    // A long transaction writes first but commits last; another commits meanwhile without
    // waiting for it (no lock held by the open transaction blocks it).
    const slow = db.$client.begin(async (tx) => {
      await insertObjects(tx, integrationId, randomUUID(), [user('slow1'), user('slow2')]);
      written();
      await gate;
      await insertObjects(tx, integrationId, randomUUID(), [user('slow3')]);
    });
    await wrote;
    await insertObjects(db, other, randomUUID(), [user('fast')]);
    const meanwhile = await feed(accountId);
    expect(summary(meanwhile)).toEqual(['object.created fast']);
    expectDense(meanwhile);
    release();
    await slow;
    const rows = await feed(accountId);
    expect(summary(rows)).toEqual(['object.created fast', 'object.created slow1', 'object.created slow2', 'object.created slow3']);
    expectDense(rows);
  });

  test('a transaction rolled back (a dry run) writes nothing and takes no counter lock while open', async () => {
    const { accountId, integrationId } = await newTenant(db);
    const { promise: gate, resolve: release } = Promise.withResolvers<void>();
    const { promise: wrote, resolve: written } = Promise.withResolvers<void>();
    const dry = db.$client
      .begin(async (tx) => {
        await insertObjects(tx, integrationId, randomUUID(), [user('dry')]);
        written();
        await gate;
        throw new Error('dry run');
      })
      .catch(() => undefined);
    await wrote;
    const other = await newIntegration(db, accountId);
    // Counter bumps of the same account commit while the dry run is open.
    await insertObjects(db, other, randomUUID(), [user('real')]);
    release();
    await dry;
    expect(summary(await feed(accountId))).toEqual(['object.created real']);
    expect((await changeHead(db, accountId)).head).toBe('1');
  });
});

describe('readChanges', () => {
  /** The whole feed, read in pages of `limit`: `cursor:externalId` per entry. */
  async function readPaged(accountId: string, limit: number): Promise<string[]> {
    const seen: string[] = [];
    let after = '0';
    for (;;) {
      const page = await readChanges(db, accountId, after, limit);
      if ('refused' in page) throw new Error(page.refused);
      seen.push(...page.items.map((row) => `${row.cursor}:${row.externalId}`));
      expect(page.cursor).toBe(page.items.at(-1)?.cursor ?? after);
      after = page.cursor;
      if (!page.hasMore) return seen;
    }
  }

  test('pages in cursor order, across batches, with hasMore', async () => {
    const { accountId, integrationId } = await newTenant(db);
    const run = randomUUID();
    await insertObjects(db, integrationId, run, [user('a'), user('b'), user('c')]);
    await insertObjects(db, integrationId, run, [user('d'), user('e')]);
    expect(await readPaged(accountId, 2)).toEqual(['1:a', '2:b', '3:c', '4:d', '5:e']);
    const empty = await readChanges(db, accountId, '5', 2);
    expect(empty).toEqual({ items: [], cursor: '5', hasMore: false });
  });

  test('a page reads only the batches that hold it, wherever the cursor is', async () => {
    const { accountId, integrationId } = await newTenant(db);
    const run = randomUUID();
    // 40 batches of 5 entries: cursors 1–200, batch n holding 5n-4 to 5n.
    const ids = Array.from({ length: 40 }, (_, b) => Array.from({ length: 5 }, (_, i) => `u${String(b * 5 + i + 1).padStart(3, '0')}`));
    for (const batch of ids) await insertObjects(db, integrationId, run, batch.map((id) => user(id)));
    expect(await readPaged(accountId, 7)).toEqual(ids.flat().map((id, i) => `${i + 1}:${id}`));

    // The page statement, run again under EXPLAIN ANALYZE: from cursor 12 (inside the third
    // batch), 8 entries (one more than asked) lie in the third and the fourth batch, so the
    // entries of two batches are read, not those of every batch up to the limit.
    const { value: page, reads } = await planReads(databaseUrl, 'cross join lateral', (probe) => readChanges(probe, accountId, '12', 7));
    if ('refused' in page) throw new Error(page.refused);
    expect(page.items.map((row) => row.externalId)).toEqual(ids.flat().slice(12, 19));
    expect(reads.get('changes')?.loops).toBe(2);
  });

  test('refuses malformed cursors and limits out of range', async () => {
    const { accountId } = await newTenant(db);
    await expect(readChanges(db, accountId, '-1', 10)).rejects.toThrow(RangeError);
    await expect(readChanges(db, accountId, '01', 10)).rejects.toThrow(RangeError);
    await expect(readChanges(db, accountId, '99999999999999999999', 10)).rejects.toThrow(RangeError);
    await expect(readChanges(db, accountId, '0', 0)).rejects.toThrow(RangeError);
    await expect(readChanges(db, accountId, '0', 1001)).rejects.toThrow(RangeError);
    expect(await readChanges(db, accountId, '0', 1000)).toEqual({ items: [], cursor: '0', hasMore: false });
  });
});

describe('retention', () => {
  test('prunes old entries in bounded batches and tells a consumer behind them to resync', async () => {
    const { accountId, integrationId } = await newTenant(db);
    const other = await newTenant(db);
    const run = randomUUID();
    await insertObjects(db, integrationId, run, [user('a'), user('b')]);
    await insertObjects(db, integrationId, run, [user('c')]);
    await insertObjects(db, integrationId, run, [user('d'), user('e')]);
    await insertObjects(db, other.integrationId, run, [user('z')]);
    // The first two batches of the account are 10 days old; the rest, and the other account, new.
    await db.$client`
      update change_batches set published_at = now() - interval '10 days'
      where account_id = ${accountId} and last_seq <= 3`;
    expect(await pruneChanges(db, { hours: 0 })).toBe(0);
    expect(await pruneChanges(db, { hours: 24 * 30 })).toBe(0);
    // One batch of two entries fits a statement of 2; the next is left for the next statement.
    expect(await pruneChanges(db, { hours: 168, batchSize: 2 })).toBe(2);
    expect(await changeHead(db, accountId)).toEqual({ head: '5', prunedThrough: '2' });
    expect(await readChanges(db, accountId, '1', 10)).toEqual({ refused: 'expired', head: '5' });
    const page = await readChanges(db, accountId, '2', 10);
    expect('items' in page && summary(page.items)).toEqual(['object.created c', 'object.created d', 'object.created e']);
    const result = await pruneHistory(db, { runs: { days: 0, keep: 1 }, audit: { days: 0 }, changes: { hours: 168 } });
    expect(result).toEqual({ runs: 0, auditEvents: 0, changes: 1, more: false });
    expect(await readChanges(db, accountId, '2', 10)).toEqual({ refused: 'expired', head: '5' });
    const rest = await readChanges(db, accountId, '3', 10);
    expect('items' in rest && summary(rest.items)).toEqual(['object.created d', 'object.created e']);
    // Only the old entries went: the other account's stream is whole.
    expect(summary(await feed(other.accountId))).toEqual(['object.created z']);
    expect(await changeHead(db, other.accountId)).toEqual({ head: '1', prunedThrough: '0' });
    const [kept] = await db.$client<{ n: number }[]>`select sum(span)::int as n from changes c join change_batches b on b.id = c.batch_id where b.account_id = ${accountId}`;
    expect(kept?.n).toBe(2);
    // The pruned batches' entries went with them.
    const [orphans] = await db.$client<{ n: number }[]>`select count(*)::int as n from changes c where not exists (select 1 from change_batches b where b.id = c.batch_id)`;
    expect(orphans?.n).toBe(0);
  });
});
