import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { close, connect, type Db } from '@dirsync/db';
import { MemberSync } from '../src/pipeline/members.ts';
import { IssueLog, zeroCounts } from '../src/pipeline/report.ts';
import type { SyncContext } from '../src/pipeline/context.ts';
import { createIntegrationRow, PipelineHarness } from './support/harness.ts';
import { group, ScriptedProvider, user, userDn } from './support/scripted-provider.ts';

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

function firstSyncContext(integrationId: string): SyncContext {
  return {
    sql: db.$client,
    integrationId,
    runId: randomUUID(),
    counts: zeroCounts(),
    issues: new IssueLog(100),
    parallelism: 1,
    fork: undefined,
    storedAtStart: false,
    assumeAbsent: true,
  };
}

describe('members resolved ahead of their step', () => {
  test('a DN evicted from the cache and then renamed away does not keep its ahead answer', async () => {
    // The database as the fetch leaves it: a was renamed away from its DN, which now names nobody.
    const renamed = { ...user('a'), dn: 'uid=a-renamed,ou=people,dc=example' };
    const provider = new ScriptedProvider().put(renamed, user('x1'), user('x2'), user('x3'), group('g', []));
    const integrationId = await createIntegrationRow(db);
    await new PipelineHarness(db, provider, integrationId).sync('full');
    const harness = new PipelineHarness(db, provider, integrationId);

    // The run's cache, two entries per generation: a stored under its old DN in an early batch.
    const members = new MemberSync(firstSyncContext(integrationId), 4);
    members.remember('a', userDn('a'), null);
    members.remember('x1', userDn('x1'), null);
    // g's batch is resolved ahead while the previous one is written: the DN still names a.
    const refs = [{ by: 'dn' as const, value: userDn('a') }];
    const prepared = members.prepare([{ externalId: 'g', members: refs }], true);
    // The previous batch and g's own step store more DNs (the generation holding a's DN is
    // dropped), then a again under its new DN.
    members.remember('x2', userDn('x2'), null);
    members.remember('x3', userDn('x3'), null);
    members.remember('a', renamed.dn, userDn('a'));
    await members.syncGroups([{ externalId: 'g', members: refs, isNew: false, storedMembersHash: null }], new Set(), prepared);
    await members.resolveDeferred();

    expect(await harness.edges()).toEqual([]);
  });

  test('a DN evicted from the cache and then taken over does not keep its ahead answer', async () => {
    // The database as the fetch leaves it: b holds the DN a had (a moved elsewhere).
    const provider = new ScriptedProvider().put(
      { ...user('a'), dn: 'uid=a-moved,ou=people,dc=example' },
      { ...user('b'), dn: userDn('a') },
      user('x1'),
      user('x2'),
      user('x3'),
      group('g', []),
    );
    const integrationId = await createIntegrationRow(db);
    await new PipelineHarness(db, provider, integrationId).sync('full');
    const harness = new PipelineHarness(db, provider, integrationId);

    const members = new MemberSync(firstSyncContext(integrationId), 4);
    members.remember('a', userDn('a'), null);
    members.remember('x1', userDn('x1'), null);
    const refs = [{ by: 'dn' as const, value: userDn('a') }];
    const prepared = members.prepare([{ externalId: 'g', members: refs }], true);
    members.remember('x2', userDn('x2'), null);
    members.remember('x3', userDn('x3'), null);
    members.remember('b', userDn('a'), null);
    await members.syncGroups([{ externalId: 'g', members: refs, isNew: false, storedMembersHash: null }], new Set(), prepared);
    await members.resolveDeferred();

    expect(await harness.edges()).toEqual(['g>b']);
  });
});
