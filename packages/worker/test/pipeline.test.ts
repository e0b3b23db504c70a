import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { close, connect, type Db } from '@dirsync/db';
import { createIntegrationRow, PipelineHarness } from './support/harness.ts';
import { group, groupDn, ScriptedProvider, user, userDn } from './support/scripted-provider.ts';

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase('pipeline');
  db = connect(database.url, { max: 4 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

/** A directory of five users and two groups, already synced once. */
async function syncedDirectory(thresholds?: { count: number; percent: number }) {
  const provider = new ScriptedProvider().put(
    user('u1'),
    user('u2'),
    user('u3'),
    user('u4'),
    user('u5'),
    group('g1', [userDn('u1'), userDn('u2')]),
    group('g2', [userDn('u2'), userDn('u3'), userDn('u4')]),
  );
  const harness = new PipelineHarness(db, provider, await createIntegrationRow(db), thresholds);
  const first = await harness.sync('full');
  return { provider, harness, first };
}

describe('full sync', () => {
  test('the first full sync creates every object and edge and returns a cursor', async () => {
    const { harness, first } = await syncedDirectory();
    expect(first).toMatchObject({
      mode: 'full',
      status: 'succeeded',
      fetched: 7,
      created: 7,
      updated: 0,
      unchanged: 0,
      deleted: 0,
      failed: 0,
      membershipsAdded: 5,
      membershipsRemoved: 0,
      wouldDelete: 0,
      issueCount: 0,
    });
    expect(first.cursor).toEqual({ version: 1 });
    expect(await harness.live()).toEqual(['g1', 'g2', 'u1', 'u2', 'u3', 'u4', 'u5']);
    expect(await harness.edges()).toEqual(['g1>u1', 'g1>u2', 'g2>u2', 'g2>u3', 'g2>u4']);
    expect(await harness.attributes('u1')).toEqual({ name: 'u1' });
  });

  test('an unchanged second full sync writes nothing but the stamps', async () => {
    const { harness } = await syncedDirectory();
    const report = await harness.sync('full');
    expect(report).toMatchObject({ created: 0, updated: 0, unchanged: 7, membershipsAdded: 0, membershipsRemoved: 0 });
  });

  test('an attribute change updates exactly that object', async () => {
    const { provider, harness } = await syncedDirectory();
    const before = await db.$client<{ external_id: string; updated_at: string }[]>`
      select external_id, updated_at from directory_objects where integration_id = ${harness.integrationId} order by 1`;
    provider.change('u3', { mail: 'u3@example.com' });
    const report = await harness.sync('full');
    expect(report).toMatchObject({ created: 0, updated: 1, unchanged: 6, deleted: 0 });
    expect(await harness.attributes('u3')).toEqual({ name: 'u3', mail: 'u3@example.com' });
    const after = await db.$client<{ external_id: string; updated_at: string }[]>`
      select external_id, updated_at from directory_objects where integration_id = ${harness.integrationId} order by 1`;
    const touched = after.filter((row, i) => row.updated_at !== before[i]?.updated_at).map((row) => row.external_id);
    expect(touched).toEqual(['u3']);
  });

  test('a missing object is soft-deleted with its edges, and restored when it comes back', async () => {
    const { provider, harness } = await syncedDirectory();
    const entry = provider.get('u2');
    provider.remove('u2');
    const removal = await harness.sync('full');
    expect(removal).toMatchObject({ status: 'succeeded', deleted: 1, wouldDelete: 0, membershipsRemoved: 2 });
    expect(await harness.deleted()).toEqual(['u2']);
    expect(await harness.edges()).toEqual(['g1>u1', 'g2>u3', 'g2>u4']);

    // The groups still list the old DN (no referential integrity): it resolves to nothing.
    const unresolved = await harness.sync('full');
    expect(unresolved.issueCount).toBe(2);
    expect(unresolved.issues[0]?.reason).toContain(userDn('u2'));

    provider.put(entry!);
    const back = await harness.sync('full');
    expect(back).toMatchObject({ restored: 1, created: 0, deleted: 0, membershipsAdded: 2 });
    expect(await harness.deleted()).toEqual([]);
    expect(await harness.edges()).toEqual(['g1>u1', 'g1>u2', 'g2>u2', 'g2>u3', 'g2>u4']);
  });

  test('membership adds and removals rewrite only the changed group', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.put(group('g1', [userDn('u1'), userDn('u5')]));
    const report = await harness.sync('full');
    expect(report).toMatchObject({ updated: 0, unchanged: 7, membershipsAdded: 1, membershipsRemoved: 1 });
    expect(await harness.edges()).toEqual(['g1>u1', 'g1>u5', 'g2>u2', 'g2>u3', 'g2>u4']);
  });

  test('a rename keeps the external id and the memberships', async () => {
    const { provider, harness } = await syncedDirectory();
    const renamedDn = 'uid=u1-renamed,ou=staff,dc=example';
    provider.put({ ...provider.get('u1')!, dn: renamedDn });
    provider.put(group('g1', [renamedDn, userDn('u2')]));
    const report = await harness.sync('full');
    expect(report).toMatchObject({ created: 0, updated: 1, deleted: 0, membershipsAdded: 0, membershipsRemoved: 0 });
    const [row] = await db.$client<{ dn: string }[]>`
      select dn from directory_objects where integration_id = ${harness.integrationId} and external_id = 'u1'`;
    expect(row?.dn).toBe(renamedDn);
    expect(await harness.edges()).toContain('g1>u1');
  });

  test('a nested group is resolved even when it comes after its parent', async () => {
    const provider = new ScriptedProvider().put(
      user('u1'),
      group('parent', [groupDn('child'), userDn('u1')]),
      group('child', [userDn('u1')]),
    );
    provider.fullOrder = ['u1', 'parent', 'child'];
    provider.pageSize = 1;
    const harness = new PipelineHarness(db, provider, await createIntegrationRow(db));
    harness.batchSize = 1;
    const report = await harness.sync('full');
    expect(report).toMatchObject({ created: 3, membershipsAdded: 3, issueCount: 0 });
    expect(await harness.edges()).toEqual(['child>u1', 'parent>child', 'parent>u1']);
    expect((await harness.sync('full')).membershipsAdded).toBe(0);
  });

  test('large batches split across connections give the same result', async () => {
    const users = Array.from({ length: 1500 }, (_, i) => user(`big${i}`));
    const provider = new ScriptedProvider().put(...users, group('all', users.map((u) => u.dn!)));
    provider.pageSize = 700;
    const harness = new PipelineHarness(db, provider, await createIntegrationRow(db));
    harness.batchSize = 5000;
    expect(await harness.sync('full')).toMatchObject({ created: 1501, membershipsAdded: 1500, issueCount: 0 });
    expect(await harness.sync('full')).toMatchObject({ unchanged: 1501, membershipsAdded: 0 });
    provider.remove('big7');
    expect(await harness.sync('full')).toMatchObject({ deleted: 1, membershipsRemoved: 1, unchanged: 1500 });
    expect(await harness.edges()).toHaveLength(1499);
  });

  test('an object listed twice by the first fetch is created once, in small and in split batches', async () => {
    const small = new ScriptedProvider().put(user('u1'), user('u2'), group('g', [userDn('u1')]));
    small.fullOrder = ['u1', 'u2', 'u1', 'g'];
    const smallHarness = new PipelineHarness(db, small, await createIntegrationRow(db));
    smallHarness.batchSize = 1;
    expect(await smallHarness.sync('full')).toMatchObject({ fetched: 4, created: 3, unchanged: 1, membershipsAdded: 1 });

    // 1,200 users per batch are inserted as two parts: the part holding the repeated user is
    // refused whole and goes through the stamp, the other part stays inserted.
    const users = Array.from({ length: 2400 }, (_, i) => user(`dup${i}`));
    const large = new ScriptedProvider().put(...users);
    large.fullOrder = [...users.slice(0, 1200).map((u) => u.id), 'dup5', ...users.slice(1200).map((u) => u.id)];
    large.pageSize = 1201;
    const largeHarness = new PipelineHarness(db, large, await createIntegrationRow(db));
    largeHarness.batchSize = 1200;
    expect(await largeHarness.sync('full')).toMatchObject({ fetched: 2401, created: 2400, unchanged: 1, updated: 0 });
    expect(await largeHarness.live()).toHaveLength(2400);
    expect(await largeHarness.sync('full')).toMatchObject({ unchanged: 2401, created: 0 });
  });

  test('a new group that already has edges stored gets the complete comparison', async () => {
    const { provider, harness } = await syncedDirectory();
    // Edges of a group the pipeline never stored as an object (an incremental member change).
    provider.scriptedDelta = [
      { entries: [], memberDeltas: [{ groupExternalId: 'g3', added: [{ by: 'externalId', value: 'u1' }], removed: [] }], cursor: { version: 9 } },
    ];
    expect(await harness.sync('delta')).toMatchObject({ membershipsAdded: 1 });
    provider.put(group('g3', [userDn('u1'), userDn('u5')]));
    expect(await harness.sync('full')).toMatchObject({ created: 1, membershipsAdded: 1, membershipsRemoved: 0 });
    expect((await harness.edges()).filter((edge) => edge.startsWith('g3>'))).toEqual(['g3>u1', 'g3>u5']);
    expect(await harness.sync('full')).toMatchObject({ unchanged: 8, membershipsAdded: 0 });
  });

  test('an entry that cannot be mapped is reported, counted, and not swept', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.put({ ...provider.get('u4')!, broken: 'uid has two values' });
    const report = await harness.sync('full');
    expect(report).toMatchObject({ status: 'succeeded', failed: 1, deleted: 0, wouldDelete: 0 });
    expect(report.issues).toEqual([{ externalId: 'u4', reason: 'uid has two values' }]);
    expect(await harness.live()).toContain('u4');
  });

  test('a fetch that fails midway deletes nothing and keeps the cursor', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.remove('u1');
    provider.failAtPage = 1;
    await expect(harness.sync('full')).rejects.toThrow('scripted server went away at page 1');
    expect(await harness.deleted()).toEqual([]);
    expect(harness.cursor).toEqual({ version: 1 });
  });

  test('an aborted run deletes nothing', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.remove('u1', 'u2');
    const controller = new AbortController();
    controller.abort(new Error('worker shutting down'));
    await expect(harness.sync('full', { signal: controller.signal })).rejects.toThrow('worker shutting down');
    expect(await harness.deleted()).toEqual([]);
  });
});

/**
 * The test database behind a handle that records the first words of every tagged statement the
 * pipeline sends, to check which statements a run needed.
 */
function recordingDb(log: string[]): Db {
  const client = new Proxy(db.$client, {
    apply(target, thisArg, args) {
      const strings = args[0] as unknown;
      if (Array.isArray(strings) && 'raw' in strings) log.push(String(strings[0]).trim().replace(/\s+/g, ' '));
      return Reflect.apply(target as unknown as (...a: unknown[]) => unknown, thisArg, args);
    },
  });
  return Object.assign(Object.create(db) as Db, { $client: client });
}

describe('member references', () => {
  test('an unchanged member list is neither resolved nor written again', async () => {
    const { provider, harness } = await syncedDirectory();
    const log: string[] = [];
    const recorded = new PipelineHarness(recordingDb(log), provider, harness.integrationId);
    recorded.cursor = harness.cursor;
    expect(await recorded.sync('full')).toMatchObject({ unchanged: 7, membershipsAdded: 0, membershipsRemoved: 0 });
    expect(log.filter((statement) => /distinct on \(dn\)|memberships/.test(statement))).toEqual([]);
  });

  test('a member deleted and back in the next run gets its edges back', async () => {
    const { provider, harness } = await syncedDirectory();
    const entry = provider.get('u2')!;
    provider.remove('u2');
    expect(await harness.sync('full')).toMatchObject({ deleted: 1, membershipsRemoved: 2 });
    provider.put(entry);
    expect(await harness.sync('full')).toMatchObject({ restored: 1, membershipsAdded: 2, issueCount: 0 });
    expect(await harness.edges()).toEqual(['g1>u1', 'g1>u2', 'g2>u2', 'g2>u3', 'g2>u4']);
  });

  test('a dangling DN becomes an edge once its object appears, though the group did not change', async () => {
    const provider = new ScriptedProvider().put(user('u1'), group('g', [userDn('u1'), userDn('later')]));
    const harness = new PipelineHarness(db, provider, await createIntegrationRow(db));
    const first = await harness.sync('full');
    expect(first).toMatchObject({ membershipsAdded: 1, issueCount: 1 });
    expect(first.issues[0]?.reason).toContain(userDn('later'));
    // Still dangling: reported again, nothing rewritten.
    expect(await harness.sync('full')).toMatchObject({ membershipsAdded: 0, membershipsRemoved: 0, issueCount: 1 });

    provider.put(user('later'));
    expect(await harness.sync('full')).toMatchObject({ created: 1, membershipsAdded: 1, issueCount: 0 });
    expect(await harness.edges()).toEqual(['g>later', 'g>u1']);
    expect(await harness.sync('full')).toMatchObject({ unchanged: 3, membershipsAdded: 0, issueCount: 0 });
  });

  test('a dangling DN becomes an edge in the delta that creates its object, though the delta does not report the group', async () => {
    const provider = new ScriptedProvider().put(user('u1'), group('g', [userDn('u1'), userDn('later')]));
    const harness = new PipelineHarness(db, provider, await createIntegrationRow(db));
    expect(await harness.sync('full')).toMatchObject({ membershipsAdded: 1, issueCount: 1 });
    provider.put(user('later'));
    expect(await harness.sync('delta')).toMatchObject({ mode: 'delta', fetched: 1, created: 1, membershipsAdded: 1, issueCount: 0 });
    expect(await harness.edges()).toEqual(['g>later', 'g>u1']);
    // The group still has no members hash: its next complete list is resolved once, to the same.
    expect(await harness.sync('full')).toMatchObject({ membershipsAdded: 0, membershipsRemoved: 0, issueCount: 0 });
    expect(await harness.edges()).toEqual(['g>later', 'g>u1']);
  });

  test('a dangling DN the group no longer lists is forgotten', async () => {
    const provider = new ScriptedProvider().put(user('u1'), group('g', [userDn('u1'), userDn('later')]));
    const harness = new PipelineHarness(db, provider, await createIntegrationRow(db));
    await harness.sync('full');
    provider.put(group('g', [userDn('u1')]));
    expect(await harness.sync('full')).toMatchObject({ issueCount: 0 });
    provider.put(user('later'));
    expect(await harness.sync('delta')).toMatchObject({ created: 1, membershipsAdded: 0 });
    expect(await harness.edges()).toEqual(['g>u1']);
  });

  test('an object that comes into scope with its groups gets the edges of the synced ones only', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.put({ ...user('u9'), memberOf: [{ by: 'dn', value: groupDn('g1') }, { by: 'dn', value: 'cn=outside,dc=elsewhere' }] });
    expect(await harness.sync('delta')).toMatchObject({ created: 1, membershipsAdded: 1, issueCount: 0 });
    expect(await harness.edges()).toEqual(['g1>u1', 'g1>u2', 'g1>u9', 'g2>u2', 'g2>u3', 'g2>u4']);
  });

  test('an object reporting its groups is not given the edges of a DN another object held', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.remove('u2');
    await harness.sync('delta');
    // Another object now holds u2's DN and says which groups it belongs to: none of u2's.
    provider.put({ ...user('u2-new'), dn: userDn('u2'), memberOf: [{ by: 'dn', value: groupDn('g2') }] });
    expect(await harness.sync('delta')).toMatchObject({ created: 1, membershipsAdded: 1 });
    expect(await harness.edges()).toEqual(['g1>u1', 'g2>u2-new', 'g2>u3', 'g2>u4']);
  });

  test.each([
    ['in another batch than its group', 2],
    ['in the same batch as its group', 100],
  ])('a member renamed while its group still lists the old DN loses the edge (%s)', async (_name, batchSize) => {
    const { provider, harness } = await syncedDirectory();
    harness.batchSize = batchSize;
    provider.put({ ...provider.get('u1')!, dn: 'uid=u1-moved,ou=elsewhere,dc=example' });
    const report = await harness.sync('full');
    expect(report).toMatchObject({ updated: 1, membershipsRemoved: 1, issueCount: 1 });
    expect(report.issues[0]).toMatchObject({ externalId: 'g1' });
    expect(await harness.edges()).toEqual(['g1>u2', 'g2>u2', 'g2>u3', 'g2>u4']);
  });

  test('a first sync resolves a group ahead of its batch, and again when its DN changed hands meanwhile', async () => {
    // Batches of two: [a, x1] [x2, x3] [b, g]. The last batch's members are resolved while
    // [x2, x3] is written, when the DN names a; b takes it over in the batch's own step, before
    // g's edges are written: the answer read ahead is stale and must not be used.
    const provider = new ScriptedProvider().put(
      user('a'),
      user('x1'),
      user('x2'),
      user('x3'),
      { ...user('b'), dn: userDn('a') },
      group('g', [userDn('a'), userDn('x1')]),
    );
    const harness = new PipelineHarness(db, provider, await createIntegrationRow(db));
    expect(await harness.sync('full')).toMatchObject({ created: 6, membershipsAdded: 2, issueCount: 0 });
    expect(await harness.edges()).toEqual(['g>b', 'g>x1']);
  });

  test('an object recreated under the same DN takes over the edges in the same run', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.remove('u2');
    provider.put({ ...user('u2-new'), dn: userDn('u2') });
    const report = await harness.sync('full');
    expect(report).toMatchObject({ created: 1, deleted: 1, membershipsAdded: 2, membershipsRemoved: 2, issueCount: 0 });
    expect(await harness.edges()).toEqual(['g1>u1', 'g1>u2-new', 'g2>u2-new', 'g2>u3', 'g2>u4']);
    expect(await harness.sync('full')).toMatchObject({ unchanged: 7, membershipsAdded: 0, membershipsRemoved: 0 });
  });
});

describe('delta sync', () => {
  test('without a cursor a delta runs as full and says why', async () => {
    const provider = new ScriptedProvider().put(user('u1'));
    const harness = new PipelineHarness(db, provider, await createIntegrationRow(db));
    const report = await harness.sync('delta');
    expect(report.mode).toBe('full');
    expect(report.reason).toMatch(/^no cursor/);
    expect(provider.deltaFetches).toBe(0);
    expect(report.created).toBe(1);
  });

  test('a rejected cursor makes the delta a full sync with the provider reason', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.remove('u5');
    provider.rejectCursor = 'the directory was restored from a backup';
    const report = await harness.sync('delta');
    expect(report.mode).toBe('full');
    expect(report.reason).toContain('the directory was restored from a backup');
    expect(report).toMatchObject({ status: 'succeeded', deleted: 1, unchanged: 6 });
    expect(provider.fullFetches).toBe(2);
  });

  test('applies changes and reported deletions, never deletions inferred from absence', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.change('u1', { title: 'boss' });
    provider.put(user('u6'));
    provider.remove('u5');
    const report = await harness.sync('delta');
    expect(report).toMatchObject({
      mode: 'delta',
      status: 'succeeded',
      fetched: 2,
      created: 1,
      updated: 1,
      deleted: 1,
      wouldDelete: 0,
    });
    // Everything the delta did not mention is still there.
    expect(await harness.live()).toEqual(['g1', 'g2', 'u1', 'u2', 'u3', 'u4', 'u6']);
    expect(harness.cursor).toEqual({ version: 4 });

    const quiet = await harness.sync('delta');
    expect(quiet).toMatchObject({ fetched: 0, deleted: 0, created: 0 });
  });

  test('a deleted member loses its edges even when its group is not reported', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.remove('u2');
    const report = await harness.sync('delta');
    expect(report).toMatchObject({ fetched: 0, deleted: 1, membershipsRemoved: 2 });
    expect(await harness.edges()).toEqual(['g1>u1', 'g2>u3', 'g2>u4']);

    // When it comes back, the delta that restores it restores the edges too: its groups still
    // list its DN, though the delta does not report them.
    provider.put(user('u2'));
    expect(await harness.sync('delta')).toMatchObject({ fetched: 1, restored: 1, membershipsAdded: 2 });
    expect(await harness.edges()).toEqual(['g1>u1', 'g1>u2', 'g2>u2', 'g2>u3', 'g2>u4']);
    const full = await harness.sync('full');
    expect(full).toMatchObject({ membershipsAdded: 0, membershipsRemoved: 0 });
    expect(await harness.edges()).toEqual(['g1>u1', 'g1>u2', 'g2>u2', 'g2>u3', 'g2>u4']);
  });

  test('a deleted manager is cleared from its reports in the same run, and given back to the reports it names when restored', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.change('u1', { manager: 'u5' }).change('u2', { manager: 'u5' }).change('u3', { manager: 'u4' });
    await harness.sync('delta');
    provider.remove('u5');
    expect(await harness.sync('delta')).toMatchObject({ fetched: 0, deleted: 1, updated: 2 });
    expect(await harness.attributes('u1')).toEqual({ name: 'u1' });
    expect(await harness.attributes('u3')).toEqual({ name: 'u3', manager: 'u4' });

    // u5 comes back managing u1 only; u2's own entry now names no manager.
    provider.put({ ...user('u2') });
    provider.put({ ...user('u5'), directReports: [{ by: 'dn', value: userDn('u1') }, { by: 'dn', value: 'uid=elsewhere,dc=example' }] });
    // u2 is read and found unchanged: its cleared row has the hash of what the source now says.
    expect(await harness.sync('delta')).toMatchObject({ fetched: 2, restored: 1, updated: 1, unchanged: 1 });
    expect(await harness.attributes('u1')).toEqual({ name: 'u1', manager: 'u5' });
    expect(await harness.attributes('u2')).toEqual({ name: 'u2' });
    // What the deltas wrote is what the source says, down to the content hashes.
    expect(await harness.sync('full')).toMatchObject({ created: 0, updated: 0, deleted: 0, restored: 0 });
  });

  test('a report read from the source while its manager is deleted is rewritten, not left cleared', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.change('u1', { manager: 'u5' });
    await harness.sync('delta');
    provider.remove('u5');
    await harness.sync('delta');
    // The directory still names the deleted manager (a full read finds it so): stored as read.
    expect(await harness.sync('full')).toMatchObject({ updated: 1 });
    expect(await harness.attributes('u1')).toEqual({ name: 'u1', manager: 'u5' });
  });

  test('a deleted group loses its edges', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.remove('g2');
    expect(await harness.sync('delta')).toMatchObject({ deleted: 1, membershipsRemoved: 3 });
    expect(await harness.edges()).toEqual(['g1>u1', 'g1>u2']);
  });

  test('an object reported deleted and then reported again within one delta stays', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.scriptedDelta = [
      { entries: [], deletions: ['u1'] },
      { entries: [user('u1', { title: 'recreated' })], cursor: { version: 9 } },
    ];
    const report = await harness.sync('delta');
    expect(report).toMatchObject({ deleted: 0, updated: 1 });
    expect(await harness.live()).toContain('u1');
  });

  test('incremental member changes are applied after the objects of their page', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.scriptedDelta = [
      {
        entries: [user('u7')],
        memberDeltas: [
          { groupExternalId: 'g1', added: [{ by: 'dn', value: userDn('u7') }], removed: [{ by: 'externalId', value: 'u1' }] },
        ],
        cursor: { version: 9 },
      },
    ];
    const report = await harness.sync('delta');
    expect(report).toMatchObject({ created: 1, membershipsAdded: 1, membershipsRemoved: 1 });
    expect(await harness.edges()).toEqual(['g1>u2', 'g1>u7', 'g2>u2', 'g2>u3', 'g2>u4']);
  });
});

describe('deletion threshold', () => {
  test('a source that suddenly returns nothing is blocked and deletes nothing, run after run', async () => {
    const { provider, harness } = await syncedDirectory({ count: 500, percent: 20 });
    provider.returnNothing = true;
    const blocked = await harness.sync('full');
    expect(blocked).toMatchObject({ status: 'blocked', wouldDelete: 7, deleted: 0, thresholdExceeded: true });
    expect(blocked.cursor).toBeUndefined();
    expect(await harness.live()).toHaveLength(7);
    expect(await harness.edges()).toHaveLength(5);

    const again = await harness.sync('full');
    expect(again).toMatchObject({ status: 'blocked', wouldDelete: 7, deleted: 0 });

    // Once the source is right again, nothing was lost and nothing needs restoring.
    provider.returnNothing = false;
    const fine = await harness.sync('full');
    expect(fine).toMatchObject({ status: 'succeeded', restored: 0, unchanged: 7, deleted: 0 });
    expect(await harness.deleted()).toEqual([]);
    expect(await harness.edges()).toHaveLength(5);
  });

  test('a blocked run still applies its creates and updates', async () => {
    const { provider, harness } = await syncedDirectory({ count: 1, percent: 100 });
    provider.remove('u1', 'u2');
    provider.change('u3', { title: 'new' });
    const report = await harness.sync('full');
    expect(report).toMatchObject({ status: 'blocked', updated: 1, wouldDelete: 2, deleted: 0 });
    expect(await harness.attributes('u3')).toEqual({ name: 'u3', title: 'new' });
  });

  test('an approval lets the next run delete up to the approved count', async () => {
    const { provider, harness } = await syncedDirectory({ count: 1, percent: 100 });
    provider.remove('u1', 'u2', 'u3');
    const blocked = await harness.sync('full');
    expect(blocked.status).toBe('blocked');

    const tooSmall = await harness.sync('full', { approval: { maxDeletions: 2 } });
    expect(tooSmall).toMatchObject({ status: 'blocked', deleted: 0 });

    const approved = await harness.sync('full', { approval: { maxDeletions: blocked.wouldDelete } });
    expect(approved).toMatchObject({ status: 'succeeded', deleted: 3, approvalUsed: true });
    expect(await harness.deleted()).toEqual(['u1', 'u2', 'u3']);
  });

  test('deletions reported by a delta count against the threshold and keep the cursor', async () => {
    const { provider, harness } = await syncedDirectory({ count: 1, percent: 100 });
    provider.remove('u1', 'u2');
    const blocked = await harness.sync('delta');
    expect(blocked).toMatchObject({ mode: 'delta', status: 'blocked', wouldDelete: 2, deleted: 0 });
    expect(harness.cursor).toEqual({ version: 1 });

    // The kept cursor makes the next delta see the same deletions.
    const again = await harness.sync('delta', { approval: { maxDeletions: 2 } });
    expect(again).toMatchObject({ status: 'succeeded', deleted: 2 });
  });

  test('the percentage limit applies to the live objects', async () => {
    const { provider, harness } = await syncedDirectory({ count: 500, percent: 20 });
    provider.remove('u5');
    expect(await harness.sync('full')).toMatchObject({ status: 'succeeded', deleted: 1 });
    provider.remove('u4', 'u3');
    expect(await harness.sync('full')).toMatchObject({ status: 'blocked', wouldDelete: 2 });
  });
});

describe('dry run', () => {
  test('reports what a real run would do and writes nothing', async () => {
    const { provider, harness } = await syncedDirectory();
    provider.change('u1', { title: 'x' });
    provider.put(user('u9'), group('g1', [userDn('u9')]));
    provider.remove('u5');
    const before = await harness.snapshot();

    const dry = await harness.sync('full', { dryRun: true });
    expect(dry).toMatchObject({
      status: 'dry_run',
      created: 1,
      updated: 1,
      deleted: 1,
      wouldDelete: 1,
      membershipsAdded: 1,
      membershipsRemoved: 2,
    });
    expect(dry.cursor).toBeUndefined();
    expect(await harness.snapshot()).toBe(before);

    const real = await harness.sync('full');
    const { status: _dry, cursor: _none, wouldDelete: dryWouldDelete, ...dryCounts } = dry;
    const { status: _real, cursor: _cursor, wouldDelete: realWouldDelete, ...realCounts } = real;
    expect(realCounts).toEqual(dryCounts);
    // "would delete" belongs to dry and blocked runs; the real run reports what it deleted.
    expect([dryWouldDelete, realWouldDelete, real.deleted]).toEqual([1, 0, 1]);
  });

  test('a dry run over the threshold says it would be blocked', async () => {
    const { provider, harness } = await syncedDirectory({ count: 500, percent: 20 });
    provider.returnNothing = true;
    const dry = await harness.sync('full', { dryRun: true });
    expect(dry).toMatchObject({ status: 'dry_run', thresholdExceeded: true, wouldDelete: 7, deleted: 0 });
  });

  test('a dry run on an empty integration creates nothing', async () => {
    const provider = new ScriptedProvider().put(user('u1'), group('g', [userDn('u1')]));
    const harness = new PipelineHarness(db, provider, await createIntegrationRow(db));
    const dry = await harness.sync('delta', { dryRun: true });
    expect(dry).toMatchObject({ mode: 'full', status: 'dry_run', created: 2, membershipsAdded: 1 });
    expect(await harness.live()).toEqual([]);
    expect(harness.cursor).toBeNull();
  });
});
