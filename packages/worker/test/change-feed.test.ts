import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import {
  changeHead,
  changeRangeOfRun,
  createAccount,
  createIntegration,
  createKeyRing,
  type Db,
  generateSecretKey,
  getRun,
  readChanges,
} from '@dirsync/db';
import { generatedUser, groupDn, groupMemberIndexes, userDn, waitFor } from '@dirsync/testkit';
import { type KilledWorkerBed, startKilledWorkerBed } from './support/killed-worker.ts';
import { addValue, deleteValue, type LdapSyncFixture, replace, startLdapSyncFixture } from './support/ldap-fixture.ts';
import { fixtureDirectory } from './support/scripted-provider.ts';

// A consumer of the change feed, following it while runs happen, must end with exactly what the
// database holds: every change once, none lost, whether the consumer restarts from its stored
// cursor or a worker dies in the middle of a run.

const timeoutMs = 120_000;

/** What a consumer keeps: its cursor and the directory rebuilt from the feed alone. */
interface ConsumerState {
  cursor: string;
  objects: Record<string, { type: string; live: boolean; attributes: Record<string, unknown> }>;
  edges: string[];
  /** Every cursor applied, to prove none came twice and none was skipped. */
  seen: string[];
}

function newConsumer(): ConsumerState {
  return { cursor: '0', objects: {}, edges: [], seen: [] };
}

/** Reads the feed from the stored cursor to its end (or `maxPages` pages), applying each entry once. */
async function follow(db: Db, accountId: string, state: ConsumerState, pageSize = 50, maxPages = Infinity): Promise<number> {
  const edges = new Set(state.edges);
  let applied = 0;
  for (let pages = 0; pages < maxPages; pages += 1) {
    const page = await readChanges(db, accountId, state.cursor, pageSize);
    if ('refused' in page) throw new Error(`feed refused the cursor: ${page.refused}`);
    for (const entry of page.items) {
      state.seen.push(entry.cursor);
      applied += 1;
      if (entry.type === 'membership.changed') {
        for (const member of entry.added) edges.add(`${entry.externalId}>${member}`);
        for (const member of entry.removed) edges.delete(`${entry.externalId}>${member}`);
      } else if (entry.type === 'object.deleted') {
        const known = state.objects[entry.externalId];
        state.objects[entry.externalId] = { type: entry.objectType ?? known?.type ?? '', live: false, attributes: known?.attributes ?? {} };
      } else {
        if (entry.object === null) throw new Error(`entry ${entry.cursor} has no object`);
        state.objects[entry.externalId] = { type: entry.object.type, live: true, attributes: entry.object.attributes };
      }
    }
    state.cursor = page.cursor;
    if (!page.hasMore) break;
  }
  state.edges = [...edges].sort();
  return applied;
}

/** A consumer restarted: only what it persisted (JSON) survives. */
function restart(state: ConsumerState): ConsumerState {
  return JSON.parse(JSON.stringify(state)) as ConsumerState;
}

/** The live directory as the database holds it, in the consumer's terms. */
async function stored(db: Db, integrationId: string) {
  const objects = await db.$client<{ external_id: string; type: string; attributes: Record<string, unknown> }[]>`
    select external_id, type, attributes from directory_objects where integration_id = ${integrationId} and deleted_at is null order by external_id`;
  const edges = await db.$client<{ edge: string }[]>`
    select group_external_id || '>' || member_external_id as edge from memberships
    where integration_id = ${integrationId} and deleted_at is null`;
  return {
    objects: Object.fromEntries(objects.map((o) => [o.external_id, { type: o.type, attributes: o.attributes }])),
    edges: edges.map((e) => e.edge).sort(),
  };
}

function rebuilt(state: ConsumerState) {
  const objects: Record<string, { type: string; attributes: Record<string, unknown> }> = {};
  for (const [id, o] of Object.entries(state.objects).sort(([a], [b]) => (a < b ? -1 : 1))) if (o.live) objects[id] = { type: o.type, attributes: o.attributes };
  return { objects, edges: state.edges };
}

/** The cursors applied are exactly 1..n, each once. */
function expectDense(state: ConsumerState): void {
  expect(state.seen).toEqual(state.seen.map((_, i) => String(i + 1)));
}

describe('against OpenLDAP', () => {
  const users = 40;
  const groups = 4;
  const membersPerGroup = 10;
  const seed = 11;
  let f: LdapSyncFixture;
  let accountId: string;

  beforeAll(async () => {
    f = await startLdapSyncFixture({ label: 'feedldap', data: { users, groups, membersPerGroup, seed } });
    const [row] = await f.db.$client<{ account_id: string }[]>`select account_id from integrations where id = ${f.integrationId}`;
    accountId = row!.account_id;
  }, timeoutMs);

  afterAll(async () => {
    await f?.close();
  }, timeoutMs);

  test('a consumer following the feed across runs and its own restarts rebuilds exactly the stored directory', async () => {
    let consumer = newConsumer();
    const first = await f.sync('full');
    expect(first.status).toBe('succeeded');
    // The first sync: one entry per object and one per group for its members.
    expect(await follow(f.db, accountId, consumer)).toBe(users + groups + groups);
    expect(await changeRangeOfRun(f.db, first.id)).toEqual({ cursorFrom: '1', cursorTo: String(users + 2 * groups), count: users + 2 * groups });
    expect(rebuilt(consumer)).toEqual(await stored(f.db, f.integrationId));

    // A dry run writes no entry.
    const headBefore = (await changeHead(f.db, accountId)).head;
    await f.admin((c) => c.modify(userDn(1, f.server.suffix), replace('title', ['Dry Runner'])));
    expect((await f.sync('full', { dryRun: true })).status).toBe('dry_run');
    expect((await changeHead(f.db, accountId)).head).toBe(headBefore);

    // Changes in the directory: an update (the one above), a newcomer, a deletion, edges moved.
    const s = f.server.suffix;
    await f.admin(async (c) => {
      await c.add(userDn(users + 1, s), generatedUser(users + 1, seed));
      await c.modify(groupDn(0, s), addValue('member', userDn(users + 1, s)));
      await c.del(userDn(2, s));
    });
    const second = await f.sync('full');
    expect(second.status).toBe('succeeded');
    // Restarted between runs: it carries on from its stored cursor, nothing read twice.
    consumer = restart(consumer);
    expect(await follow(f.db, accountId, consumer)).toBeGreaterThan(0);
    expect(rebuilt(consumer)).toEqual(await stored(f.db, f.integrationId));
    expect(consumer.objects[(await f.objectByDn(userDn(2, s)))!.external_id]?.live).toBe(false);

    // A group loses a member and a user changes; the consumer reads one entry, then restarts.
    await f.admin(async (c) => {
      const member = groupMemberIndexes(1, users, membersPerGroup, seed).find((i) => i !== 2);
      await c.modify(groupDn(1, s), deleteValue('member', userDn(member!, s)));
      await c.modify(userDn(3, s), replace('title', ['Third']));
    });
    const third = await f.sync('full');
    expect(third.status).toBe('succeeded');
    expect(await follow(f.db, accountId, consumer, 1, 1)).toBe(1);
    consumer = restart(consumer);
    await follow(f.db, accountId, consumer);
    expect(rebuilt(consumer)).toEqual(await stored(f.db, f.integrationId));
    expectDense(consumer);
    expect(consumer.cursor).toBe((await changeHead(f.db, accountId)).head);
  }, timeoutMs);
});

describe('a worker killed mid-run', () => {
  let bed: KilledWorkerBed;
  let db: Db;

  beforeAll(async () => {
    bed = await startKilledWorkerBed('feedkill');
    db = bed.db;
  });

  afterAll(async () => {
    await bed?.close();
  });

  test('the feed holds what the killed attempt committed and what the retry added, each once', async () => {
    const secretKey = generateSecretKey();
    const ring = createKeyRing({ current: secretKey });
    const accountId = (await createAccount(db, { name: 'feed-kill' })).id;
    const integrationId = (await createIntegration(db, { accountId, kind: 'ldap', name: 'killed', settings: {} }, { ring, plaintext: 'pw' })).id;
    const child = bed.spawnChild({ secretKey, hangAtPage: 3 });
    await once(child.stdout!, 'data');
    const runId = randomUUID();
    await bed.queue.add('sync', { integrationId, runId, mode: 'full', trigger: 'manual', dryRun: false }, { jobId: `run.${runId}`, attempts: 3 });

    // The consumer follows while the doomed worker writes.
    let consumer = newConsumer();
    await waitFor(
      async () => {
        await follow(db, accountId, consumer);
        return Object.keys(consumer.objects).length >= 150;
      },
      { timeoutMs: 30_000, what: 'the doomed worker to write its first pages, seen through the feed' },
    );
    child.kill('SIGKILL');
    await once(child, 'exit');
    // Restarted too, from its stored cursor.
    consumer = restart(consumer);
    await follow(db, accountId, consumer);
    const beforeRetry = consumer.seen.length;

    bed.startRescuer({ keyRing: ring, createProvider: () => fixtureDirectory(300, 10, 30) });
    await waitFor(
      async () => {
        await follow(db, accountId, consumer);
        return (await getRun(db, runId))?.status === 'succeeded';
      },
      { timeoutMs: 60_000, what: 'another worker to finish the interrupted sync' },
    );
    await follow(db, accountId, consumer);
    expect(consumer.seen.length).toBeGreaterThan(beforeRetry);
    expectDense(consumer);
    expect(rebuilt(consumer)).toEqual(await stored(db, integrationId));
    // 300 users and 10 groups, each created once (the retry found the first pages stored).
    const created = await db.$client<{ n: number }[]>`
      select sum(span)::int as n from changes c join change_batches b on b.id = c.batch_id where b.account_id = ${accountId} and c.op = 1`;
    expect(created[0]?.n).toBe(310);
    expect(await changeRangeOfRun(db, runId)).toMatchObject({ cursorFrom: '1', cursorTo: String(consumer.seen.length), count: consumer.seen.length });
  }, timeoutMs);
});
