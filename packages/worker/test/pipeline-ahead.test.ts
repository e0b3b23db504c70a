import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { close, connect, type Db } from '@dirsync/db';
import { MemberSync } from '../src/pipeline/members.ts';
import { createIntegrationRow, PipelineHarness, syncContext } from './support/harness.ts';
import { group, ScriptedProvider, type ScriptedEntry, user, userDn } from './support/scripted-provider.ts';

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase('pipeline_ahead');
  db = connect(database.url, { max: 4 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

/** One page per batch of two, as a delta of an integration with a cursor and nothing stored lists them. */
function pages(...batches: ScriptedEntry[][]) {
  return batches.map((entries, index) => ({ entries, cursor: { version: index + 1 } }));
}

describe('members resolved ahead of their step on an integration with nothing stored', () => {
  test('a DN its holder was renamed away from, while the group was resolved ahead, resolves to nobody', async () => {
    // [a, x1] [x2, x3] [a renamed, x4] [g, x5]: g's batch is resolved while a's rename is written,
    // when the DN still names a; the rename moves the cache's version, so g resolves again.
    const provider = new ScriptedProvider();
    provider.scriptedDelta = pages(
      [user('a'), user('x1')],
      [user('x2'), user('x3')],
      [{ ...user('a'), dn: 'uid=a-renamed,ou=people,dc=example' }, user('x4')],
      [group('g', [userDn('a'), userDn('x1')]), user('x5')],
    );
    const harness = new PipelineHarness(db, provider, await createIntegrationRow(db));
    harness.cursor = { version: 0 };
    const report = await harness.sync('delta');
    expect(report).toMatchObject({ mode: 'delta', status: 'succeeded', created: 7, membershipsAdded: 1, issueCount: 1 });
    expect(await harness.edges()).toEqual(['g>x1']);
  });

  test('a delta that falls back to a full sync of an empty integration writes every edge and deletes nothing', async () => {
    const provider = new ScriptedProvider().put(user('u1'), user('u2'), user('u3'), group('g1', [userDn('u1'), userDn('u3')]), group('g2', [userDn('u2')]));
    provider.rejectCursor = 'expired';
    const harness = new PipelineHarness(db, provider, await createIntegrationRow(db));
    harness.cursor = { version: 0 };
    const report = await harness.sync('delta');
    expect(report).toMatchObject({ mode: 'full', status: 'succeeded', created: 5, deleted: 0, wouldDelete: 0, membershipsAdded: 3 });
    expect(await harness.edges()).toEqual(['g1>u1', 'g1>u3', 'g2>u2']);
  });

  test('a dry run of a first full sync reports every edge, nothing to delete, and stores nothing', async () => {
    const provider = new ScriptedProvider().put(user('u1'), user('u2'), { ...user('u3'), dn: userDn('u1') }, group('g', [userDn('u1'), userDn('u2')]));
    const harness = new PipelineHarness(db, provider, await createIntegrationRow(db));
    const report = await harness.sync('full', { dryRun: true });
    expect(report).toMatchObject({ status: 'dry_run', created: 4, wouldDelete: 0, membershipsAdded: 2 });
    expect(await harness.live()).toEqual([]);
    expect(await harness.edges()).toEqual([]);
    // The real run writes what the dry run reported: the later holder of u1's DN gets the edge.
    expect(await harness.sync('full')).toMatchObject({ status: 'succeeded', created: 4, membershipsAdded: 2 });
    expect(await harness.edges()).toEqual(['g>u2', 'g>u3']);
  });
});

describe('a DN dropped from the DN cache between a group\'s resolution ahead and its step', () => {
  // The run's cache holds two DNs per generation. a is stored under its DN in an early batch; g's
  // batch is resolved ahead while the previous one is written, when the DN still names a; the
  // previous batch and g's own step then store more DNs, which drops the generation holding a's
  // DN, and then the DN changes hands where the cache no longer sees it.
  test.each([
    {
      change: 'a renamed away',
      stored: [{ ...user('a'), dn: 'uid=a-renamed,ou=people,dc=example' }],
      last: ['a', 'uid=a-renamed,ou=people,dc=example', userDn('a')] as const,
      edges: [],
    },
    {
      change: 'b taking it over',
      stored: [{ ...user('a'), dn: 'uid=a-moved,ou=people,dc=example' }, { ...user('b'), dn: userDn('a') }],
      last: ['b', userDn('a'), null] as const,
      edges: ['g>b'],
    },
  ])('the group does not keep its answer ahead ($change)', async ({ stored, last, edges }) => {
    // The database as the fetch leaves it.
    const provider = new ScriptedProvider().put(...stored, user('x1'), user('x2'), user('x3'), group('g', []));
    const integrationId = await createIntegrationRow(db);
    await new PipelineHarness(db, provider, integrationId).sync('full');

    const members = new MemberSync(syncContext(db, integrationId, { storedAtStart: false, assumeAbsent: true }), 4);
    members.remember('a', userDn('a'), null, true);
    members.remember('x1', userDn('x1'), null, true);
    const refs = [{ by: 'dn' as const, value: userDn('a') }];
    const prepared = members.prepare([{ externalId: 'g', members: refs }], true);
    members.remember('x2', userDn('x2'), null, true);
    members.remember('x3', userDn('x3'), null, true);
    const [holder, dn, previousDn] = last;
    members.remember(holder, dn, previousDn, true);
    await members.syncGroups([{ externalId: 'g', members: refs, isNew: false, storedMembersHash: null }], new Set(), prepared);
    await members.resolveDeferred();

    expect(await new PipelineHarness(db, provider, integrationId).edges()).toEqual(edges);
  });
});
