import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { changeHead, type ChangeRow, maxChangePageBytes, pruneChanges, readChanges } from '../src/changes.ts';
import { close, connect, type Db } from '../src/client.ts';
import { removeIntegration } from '../src/integrations.ts';
import { deleteObjects, insertMemberships, insertObjects, type ObjectWrite, writeObjects } from '../src/objects.ts';

let database: TestDatabase;
let db: Db;

const hashOf = (type: string, attributes: Record<string, unknown>) => `${type}:${JSON.stringify(attributes)}`;

beforeAll(async () => {
  database = await createTestDatabase('changes_attack');
  db = connect(database.url, { max: 8 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

async function newAccount(): Promise<{ accountId: string; integrations: string[] }> {
  const sql = db.$client;
  const [account] = await sql<{ id: string }[]>`insert into accounts (name) values (${randomUUID()}) returning id`;
  const integrations: string[] = [];
  for (let i = 0; i < 2; i++) {
    const [row] = await sql<{ id: string }[]>`
      insert into integrations (account_id, kind, name, settings) values (${account!.id}, 'ldap', ${randomUUID()}, '{}') returning id`;
    integrations.push(row!.id);
  }
  return { accountId: account!.id, integrations };
}

function user(externalId: string, version = 0): ObjectWrite {
  const attributes = { name: externalId, version };
  return { externalId, type: 'user', dn: `uid=${externalId},dc=x`, attributesJson: JSON.stringify(attributes), contentHash: hashOf('user', attributes) };
}

describe('retention pruning racing a reader', () => {
  test('entries pruned between the reader checking its cursor and reading the page are a 410, never a silent gap', async () => {
    const { accountId, integrations } = await newAccount();
    const integrationId = integrations[0]!;
    const run = randomUUID();
    await insertObjects(db, integrationId, run, [user('a'), user('b')]);
    await insertObjects(db, integrationId, run, [user('c')]);
    await insertObjects(db, integrationId, run, [user('d')]);
    await db.$client`update change_batches set published_at = now() - interval '2 hours' where account_id = ${accountId} and last_seq <= 3`;
    // The pruning reconciler commits after the reader checked `after` against how far the feed is
    // pruned and before it reads the page: the real statements, run in that order.
    let pruned = 0;
    const sql = db.$client;
    const racing = new Proxy(sql, {
      get(target, property, receiver) {
        if (property !== 'unsafe') return Reflect.get(target, property, receiver) as unknown;
        return async (...args: Parameters<postgres.Sql['unsafe']>) => {
          if (pruned === 0) pruned = await pruneChanges(db, { hours: 1 });
          return target.unsafe(...args);
        };
      },
    });
    const page = await readChanges(racing, accountId, '1', 10);
    expect(pruned).toBe(3);
    expect(await changeHead(db, accountId)).toEqual({ head: '4', prunedThrough: '3' });
    // Entries 2 and 3 are gone: the consumer at 1 must resync, not go on from 4.
    expect(page).toEqual({ refused: 'expired', head: '4' });
  });
});

describe('two integrations of one account writing concurrently', () => {
  test('a consumer following the feed meanwhile rebuilds exactly the stored objects, every cursor once', async () => {
    const { accountId, integrations } = await newAccount();
    const rounds = 25;
    let writing = true;

    // Each round is one transaction: new objects, an update of the previous round's first object
    // and a deletion of its second, then more new objects, so transactions of both integrations
    // overlap and commit in an order unrelated to when they began.
    async function writer(integrationId: string, tag: string): Promise<void> {
      for (let round = 0; round < rounds; round++) {
        await db.$client.begin(async (tx) => {
          const run = randomUUID();
          await insertObjects(tx, integrationId, run, [user(`${tag}${round}a`), user(`${tag}${round}b`), user(`${tag}${round}c`)]);
          if (round > 0) {
            await writeObjects(tx, integrationId, run, [{ ...user(`${tag}${round - 1}a`, round), change: 'update' }]);
            await deleteObjects(tx, integrationId, [`${tag}${round - 1}b`], hashOf, run);
          }
          await insertObjects(tx, integrationId, run, [user(`${tag}${round}d`)]);
        });
      }
    }

    const seen: string[] = [];
    const alive = new Map<string, number>();
    let after = '0';
    const apply = (items: readonly ChangeRow[]) => {
      for (const entry of items) {
        seen.push(entry.cursor);
        const key = `${entry.integrationId}/${entry.externalId}`;
        if (entry.type === 'object.deleted') alive.delete(key);
        else if (entry.type !== 'membership.changed') alive.set(key, Number(entry.cursor));
      }
    };
    async function consumer(): Promise<void> {
      for (;;) {
        const stillWriting = writing;
        const page = await readChanges(db, accountId, after, 7);
        if ('refused' in page) throw new Error(`refused: ${page.refused}`);
        apply(page.items);
        after = page.cursor;
        // Done once a page read after the writers ended finds nothing more.
        if (!stillWriting && !page.hasMore) return;
      }
    }

    const reading = consumer();
    await Promise.all(integrations.map((id, i) => writer(id, `w${i}-`)));
    writing = false;
    await reading;

    const { head } = await changeHead(db, accountId);
    // Each round: 4 created, and from the second on 1 updated and 1 deleted.
    expect(Number(head)).toBe(2 * (4 * rounds + 2 * (rounds - 1)));
    expect(seen).toEqual(Array.from({ length: Number(head) }, (_, i) => String(i + 1)));
    const stored = await db.$client<{ key: string }[]>`
      select integration_id || '/' || external_id as key from directory_objects
      where integration_id in ${db.$client(integrations)} and deleted_at is null order by 1`;
    expect([...alive.keys()].sort()).toEqual(stored.map((row) => row.key).sort());
  }, 120_000);
});

describe('the size of a feed page', () => {
  test('large membership entries cut a page by its size, not only by its number of entries', async () => {
    const { accountId, integrations } = await newAccount();
    const integrationId = integrations[0]!;
    const run = randomUUID();
    // 40 groups of 5,000 members each, one entry per group: about 40 MB of member ids in one
    // page of 1,000 entries, held by the API and sent to the consumer at once.
    const groups = Array.from({ length: 40 }, (_, g) => ({
      groupExternalId: `group-${g}`,
      memberExternalIds: Array.from({ length: 5000 }, (_, m) => `member-${String(m).padStart(6, '0')}-${randomUUID()}`),
      membersHash: `h${g}`,
    }));
    for (let i = 0; i < groups.length; i += 10) await insertMemberships(db, integrationId, run, groups.slice(i, i + 10));
    const { head } = await changeHead(db, accountId);
    expect(head).toBe('40');

    const first = await readChanges(db, accountId, '0', 1000);
    if ('refused' in first) throw new Error(first.refused);
    const bytes = (items: readonly ChangeRow[]) => items.reduce((n, item) => n + JSON.stringify(item.added).length + JSON.stringify(item.removed).length, 0);
    const entryBytes = bytes(first.items.slice(0, 1));
    expect(first.items.length).toBeGreaterThan(0);
    expect(bytes(first.items)).toBeLessThanOrEqual(maxChangePageBytes + entryBytes);
    expect(first.hasMore).toBe(true);

    // Followed to the end, every entry comes once, in order, whole.
    const all = [...first.items];
    let after = first.cursor;
    for (let pages = 1; pages < 100; pages++) {
      const page = await readChanges(db, accountId, after, 1000);
      if ('refused' in page) throw new Error(page.refused);
      all.push(...page.items);
      after = page.cursor;
      if (!page.hasMore) break;
    }
    expect(all.map((item) => item.cursor)).toEqual(Array.from({ length: 40 }, (_, i) => String(i + 1)));
    expect(all.map((item) => item.added.length)).toEqual(groups.map(() => 5000));
  }, 120_000);
});

describe('an integration removed', () => {
  test("its objects and memberships leave a consumer's copy through the feed too", async () => {
    const { accountId, integrations } = await newAccount();
    const [gone, kept] = integrations as [string, string];
    const run = randomUUID();
    await insertObjects(db, gone, run, [user('a'), user('b'), { ...user('g'), type: 'group', dn: 'cn=g,dc=x' }]);
    await insertMemberships(db, gone, run, [{ groupExternalId: 'g', memberExternalIds: ['a', 'b'], membersHash: 'h' }]);
    await insertObjects(db, kept, run, [user('a')]);

    // A consumer following the feed: objects and edges by integration.
    const objects = new Set<string>();
    const edges = new Set<string>();
    let after = '0';
    const follow = async () => {
      for (;;) {
        const page = await readChanges(db, accountId, after, 100);
        if ('refused' in page) throw new Error(page.refused);
        for (const entry of page.items) {
          const key = `${entry.integrationId}/${entry.externalId}`;
          if (entry.type === 'membership.changed') {
            for (const m of entry.added) edges.add(`${key}>${m}`);
            for (const m of entry.removed) edges.delete(`${key}>${m}`);
          } else if (entry.type === 'object.deleted') objects.delete(key);
          else objects.add(key);
        }
        after = page.cursor;
        if (!page.hasMore) return;
      }
    };
    await follow();
    expect(objects.size).toBe(4);
    expect(edges.size).toBe(2);

    expect(await removeIntegration(db, gone)).toBe(true);
    await follow();
    expect([...objects]).toEqual([`${kept}/a`]);
    expect([...edges]).toEqual([]);
  });
});
