import { Attribute, Change } from 'ldapts';
import { approveRun, getIntegration, type Run, updateIntegration } from '@dirsync/db';
import type { Provider } from '@dirsync/providers';
import { generatedUser, groupDn, groupMemberIndexes, userDn } from '@dirsync/testkit';
import type { ProviderFactory } from '../src/processor.ts';
import { type LdapSyncFixture, startLdapSyncFixture } from './support/ldap-fixture.ts';

// What keeps a sync from doing harm, end to end against a real slapd: a dry run writes nothing, a
// server that dies mid-paging fails the run and deletes nothing, and a source that suddenly
// returns nothing is blocked until an administrator approves. Tests run in order on one directory.

// Starting slapd and syncing take seconds on a busy machine: more than jest's 5 s default.
const timeoutMs = 60_000;

const users = 60;
const groups = 4;
const membersPerGroup = 10;
const seed = 3;
const loadedAt = new Date(Math.floor((Date.now() - 86_400_000) / 1000) * 1000);

let f: LdapSyncFixture;
/** When set, the next full fetch SIGKILLs slapd after yielding this many pages. */
let killAfterPages: number | undefined;

/** The real provider, whose full fetch kills the server after a given page when armed. */
function dyingServer(real: ProviderFactory): ProviderFactory {
  return async (kind, settings, secret) => {
    const provider: Provider = await real(kind, settings, secret);
    const armed = killAfterPages;
    killAfterPages = undefined;
    if (armed === undefined) return provider;
    return {
      kind: provider.kind,
      testConnection: (signal) => provider.testConnection(signal),
      fetchDelta: (cursor, signal) => provider.fetchDelta(cursor, signal),
      map: (entry) => provider.map(entry),
      close: () => provider.close(),
      async *fetchFull(signal) {
        let pages = 0;
        for await (const page of provider.fetchFull(signal)) {
          yield page;
          pages += 1;
          // The paged search is still open on the server: the next page request meets a dead socket.
          if (pages === armed) await f.server.kill();
        }
      },
    };
  };
}

const membersOf = (j: number) => groupMemberIndexes(j, users, membersPerGroup, seed);
const groupsOf = (i: number) => Array.from({ length: groups }, (_, j) => j).filter((j) => membersOf(j).includes(i));

/** Every row of the tables a sync writes (the run reports aside), to compare before and after. */
async function tables(): Promise<string> {
  const sql = f.db.$client;
  const objects = await sql`select * from directory_objects order by id`;
  const edges = await sql`select * from memberships order by integration_id, group_external_id, member_external_id`;
  const integrations = await sql`select * from integrations order by id`;
  return JSON.stringify({ objects, edges, integrations });
}

const counts = (run: Run) => ({
  fetched: run.fetched,
  created: run.created,
  updated: run.updated,
  unchanged: run.unchanged,
  deleted: run.deleted,
  restored: run.restored,
  failed: run.failed,
  membershipsAdded: run.membershipsAdded,
  membershipsRemoved: run.membershipsRemoved,
});

beforeAll(async () => {
  f = await startLdapSyncFixture({
    label: 'ldapsafety',
    data: { users, groups, membersPerGroup, seed, timestamp: loadedAt },
    pageSize: 10,
    wrapProvider: dyingServer,
  });
  const first = await f.sync('full');
  expect(first).toMatchObject({ status: 'succeeded', created: users + groups });
}, timeoutMs);

afterAll(async () => {
  await f?.close();
}, timeoutMs);

test('a dry run reports what the real run then does, and writes nothing', async () => {
  const s = f.server.suffix;
  const deletedUser = 2;
  // Not a multiple of ten: those get an alias mail, with accents slapd refuses in a live add.
  const newcomer = users + 1;
  await (async () => {
    const c = await f.server.client();
    try {
      await c.modify(userDn(1, s), new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Simulated'] }) }));
      await c.add(userDn(newcomer, s), generatedUser(newcomer, seed));
      await c.modify(groupDn(0, s), new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [userDn(newcomer, s)] }) }));
      await c.del(userDn(deletedUser, s));
    } finally {
      await c.unbind();
    }
  })();
  const before = await tables();

  const dry = await f.sync('full', { dryRun: true });
  expect(dry).toMatchObject({
    status: 'dry_run',
    dryRun: true,
    created: 1,
    updated: 1,
    deleted: 1,
    membershipsAdded: 1,
    membershipsRemoved: groupsOf(deletedUser).length,
  });
  expect(await tables()).toEqual(before);

  const real = await f.sync('full');
  expect(real.status).toBe('succeeded');
  expect(counts(real)).toEqual(counts(dry));
  expect(await tables()).not.toEqual(before);
}, timeoutMs);

test('a server killed mid-paging fails the run with a clear reason and deletes nothing', async () => {
  const before = await f.snapshot();
  const live = await f.liveCount('user');
  // Users come first, ten per page: the server dies with most of the directory unread.
  killAfterPages = 2;
  let run: Run;
  try {
    run = await f.sync('full');
  } finally {
    await f.server.restart();
  }
  expect(run.status).toBe('failed');
  // Usually "connection to <url> was lost during the search"; when the next page request meets
  // the closed socket first, the layer reports "cannot reach <url>: EPIPE".
  expect(run.error).toMatch(/^unavailable: /);
  expect(run.error).toContain(f.server.url);
  expect(run.error).not.toContain(f.server.readerPassword);
  expect(run.deleted).toBe(0);
  expect(await f.liveCount('user')).toBe(live);
  const [swept] = await f.db.$client<{ n: number }[]>`
    select count(*)::int as n from directory_objects where integration_id = ${f.integrationId} and deleted_at is not null`;
  // Only the entry the dry-run test deleted is soft-deleted.
  expect(swept?.n).toBe(1);
  expect((await getIntegration(f.db, f.integrationId))?.status).toBe('failed');

  // The pages read before the failure changed nothing but their stamps; the next run is complete.
  const recovered = await f.sync('full');
  expect(recovered).toMatchObject({ status: 'succeeded', created: 0, updated: 0, deleted: 0 });
  expect(JSON.parse(await f.snapshot()).objects.map((o: { external_id: string; deleted_at: unknown }) => [o.external_id, o.deleted_at])).toEqual(
    JSON.parse(before).objects.map((o: { external_id: string; deleted_at: unknown }) => [o.external_id, o.deleted_at]),
  );
}, timeoutMs);

test('a source that suddenly returns nothing is blocked until approved; fixing the base DN restores the same rows', async () => {
  const c = await f.server.client();
  try {
    await c.add(`ou=empty,${f.server.suffix}`, { objectClass: ['organizationalUnit'], ou: 'empty' });
  } finally {
    await c.unbind();
  }
  const liveBefore = (await f.liveCount('user')) + (await f.liveCount('group'));
  const rowsBefore = await f.db.$client<{ id: string; external_id: string }[]>`
    select id, external_id from directory_objects where integration_id = ${f.integrationId} and deleted_at is null order by id`;
  await updateIntegration(f.db, f.integrationId, { settings: f.settings('ou=empty', 'ou=empty') });

  const blocked = await f.sync('full');
  expect(blocked).toMatchObject({ status: 'blocked', fetched: 0, deleted: 0, wouldDelete: liveBefore });
  expect((await getIntegration(f.db, f.integrationId))?.status).toBe('blocked');
  // Nothing changes until someone decides: the next run is blocked the same way.
  const again = await f.sync('full');
  expect(again).toMatchObject({ status: 'blocked', deleted: 0, wouldDelete: liveBefore });
  expect((await f.liveCount('user')) + (await f.liveCount('group'))).toBe(liveBefore);

  await approveRun(f.db, again.id, 'tester');
  const approved = await f.sync('full');
  expect(approved).toMatchObject({ status: 'succeeded', deleted: liveBefore });
  expect((await f.liveCount('user')) + (await f.liveCount('group'))).toBe(0);
  expect(await f.liveEdges()).toEqual([]);

  await updateIntegration(f.db, f.integrationId, { settings: f.settings() });
  const back = await f.sync('full');
  expect(back).toMatchObject({ status: 'succeeded', created: 0, restored: liveBefore, deleted: 0 });
  const rowsAfter = await f.db.$client<{ id: string; external_id: string }[]>`
    select id, external_id from directory_objects where integration_id = ${f.integrationId} and deleted_at is null order by id`;
  expect(rowsAfter).toEqual(rowsBefore);
  expect(await f.liveEdges()).toHaveLength(groups * membersPerGroup + 1 - groupsOf(2).length);
}, timeoutMs);
