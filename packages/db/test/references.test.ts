import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { close, connect, type Db } from '../src/client.ts';
import { deleteObjects, type ObjectWrite, replaceMemberships, sweepUnseenObjects, writeObjects } from '../src/objects.ts';
import { linkArrivedObjects, linkManagers, replaceDanglingMembers } from '../src/references.ts';

let database: TestDatabase;
let db: Db;

/** Stands in for the pipeline's content hash: sorted keys, so equal content hashes equally. */
const hashOf = (type: string, attributes: Record<string, unknown>) =>
  `${type}:${JSON.stringify(Object.fromEntries(Object.entries(attributes).sort(([a], [b]) => a.localeCompare(b))))}`;

beforeAll(async () => {
  database = await createTestDatabase('references');
  db = connect(database.url, { max: 2 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

async function newIntegration(): Promise<string> {
  const sql = db.$client;
  const [account] = await sql<{ id: string }[]>`insert into accounts (name) values (${randomUUID()}) returning id`;
  const [integration] = await sql<{ id: string }[]>`
    insert into integrations (account_id, kind, name, settings) values (${account!.id}, 'ldap', 'dir', '{}') returning id`;
  return integration!.id;
}

const dnOf = (id: string) => `uid=${id},dc=x`;

function user(externalId: string, attributes: Record<string, string> = {}, dn = dnOf(externalId)): ObjectWrite {
  return { externalId, type: 'user', dn, attributesJson: JSON.stringify({ name: externalId, ...attributes }), contentHash: `h-${externalId}` };
}

function group(externalId: string): ObjectWrite {
  return { ...user(externalId), type: 'group', dn: `cn=${externalId},dc=x` };
}

async function references(integrationId: string): Promise<string[]> {
  const rows = await db.$client<{ line: string }[]>`
    select attribute || ' ' || source_external_id || '>' || target as line
    from dangling_references where integration_id = ${integrationId} order by 1`;
  return rows.map((row) => row.line);
}

async function liveEdges(integrationId: string): Promise<string[]> {
  const rows = await db.$client<{ edge: string }[]>`
    select group_external_id || '>' || member_external_id as edge from memberships
    where integration_id = ${integrationId} and deleted_at is null order by 1`;
  return rows.map((row) => row.edge);
}

async function stored(integrationId: string, externalId: string) {
  const [row] = await db.$client<{ attributes: Record<string, unknown>; content_hash: string }[]>`
    select attributes, content_hash from directory_objects where integration_id = ${integrationId} and external_id = ${externalId}`;
  return row;
}

describe('dangling member references', () => {
  test('a group keeps exactly the DNs its last complete member list could not resolve', async () => {
    const integrationId = await newIntegration();
    await replaceDanglingMembers(db, integrationId, [
      { groupExternalId: 'g', dns: [dnOf('a'), dnOf('b'), dnOf('a')] },
      { groupExternalId: 'h', dns: [dnOf('a')] },
    ]);
    expect(await references(integrationId)).toEqual([`member g>${dnOf('a')}`, `member g>${dnOf('b')}`, `member h>${dnOf('a')}`]);
    await replaceDanglingMembers(db, integrationId, [
      { groupExternalId: 'g', dns: [dnOf('b'), dnOf('c')] },
      { groupExternalId: 'h', dns: [] },
    ]);
    expect(await references(integrationId)).toEqual([`member g>${dnOf('b')}`, `member g>${dnOf('c')}`]);
  });

  test('an object arriving at a dangling DN gets the edges of the live groups waiting for it, once', async () => {
    const integrationId = await newIntegration();
    const run = randomUUID();
    await writeObjects(db, integrationId, run, [group('g'), group('h'), group('gone'), user('a'), user('b')]);
    await deleteObjects(db, integrationId, ['gone'], hashOf);
    await replaceDanglingMembers(db, integrationId, [
      { groupExternalId: 'g', dns: [dnOf('a'), dnOf('b')] },
      { groupExternalId: 'h', dns: [dnOf('a')] },
      { groupExternalId: 'gone', dns: [dnOf('a')] },
    ]);
    // b came with its own group list: the DN is forgotten, no edge is made from it.
    const arrived = [
      { externalId: 'a', dn: dnOf('a'), link: true },
      { externalId: 'b', dn: dnOf('b'), link: false },
    ];
    expect(await linkArrivedObjects(db, integrationId, run, arrived)).toBe(2);
    expect(await liveEdges(integrationId)).toEqual(['g>a', 'h>a']);
    expect(await references(integrationId)).toEqual([]);
    expect(await linkArrivedObjects(db, integrationId, run, arrived)).toBe(0);
  });

  test('deleting a member keeps its DN for the groups that lose it, and deleting a group forgets its references', async () => {
    const integrationId = await newIntegration();
    const run = randomUUID();
    await writeObjects(db, integrationId, run, [group('g'), group('h'), user('a'), user('b')]);
    await replaceMemberships(db, integrationId, run, [
      { groupExternalId: 'g', memberExternalIds: ['a', 'b'], membersHash: 'mg' },
      { groupExternalId: 'h', memberExternalIds: ['a'], membersHash: 'mh' },
    ]);
    await replaceDanglingMembers(db, integrationId, [{ groupExternalId: 'h', dns: ['uid=later,dc=x'] }]);
    await deleteObjects(db, integrationId, ['a'], hashOf);
    expect(await references(integrationId)).toEqual([`member g>${dnOf('a')}`, `member h>${dnOf('a')}`, 'member h>uid=later,dc=x']);
    await sweepUnseenObjects(db, integrationId, randomUUID(), hashOf);
    expect(await references(integrationId)).toEqual([]);
  });
});

describe('managers', () => {
  test('a deleted manager is cleared from its live reports in the deleting statement, their hash as if read so', async () => {
    const integrationId = await newIntegration();
    const run = randomUUID();
    await writeObjects(db, integrationId, run, [user('boss'), user('r1', { manager: 'boss' }), user('r2', { manager: 'boss' }), user('r3', { manager: 'other' })]);
    expect(await deleteObjects(db, integrationId, ['boss'], hashOf)).toEqual({ deleted: 1, membershipsRemoved: 0, managersCleared: 2 });
    expect(await stored(integrationId, 'r1')).toEqual({ attributes: { name: 'r1' }, content_hash: hashOf('user', { name: 'r1' }) });
    expect(await stored(integrationId, 'r3')).toEqual({ attributes: { name: 'r3', manager: 'other' }, content_hash: 'h-r3' });
    expect(await references(integrationId)).toEqual([]);
  });

  test('are set where the directory names a report and the stored manager differs', async () => {
    const integrationId = await newIntegration();
    await writeObjects(db, integrationId, randomUUID(), [user('boss'), user('r1'), user('r2', { manager: 'boss' }), user('r3', { manager: 'other' })]);
    await deleteObjects(db, integrationId, ['gone-report'], hashOf);
    const links = ['r1', 'r2', 'r3', 'unknown'].map((holder) => ({ holderExternalId: holder, managerExternalId: 'boss' }));
    expect(await linkManagers(db, integrationId, links, hashOf)).toBe(2);
    expect(await stored(integrationId, 'r1')).toEqual({ attributes: { name: 'r1', manager: 'boss' }, content_hash: hashOf('user', { name: 'r1', manager: 'boss' }) });
    expect(await stored(integrationId, 'r2')).toEqual({ attributes: { name: 'r2', manager: 'boss' }, content_hash: 'h-r2' });
    expect((await stored(integrationId, 'r3'))?.attributes).toEqual({ name: 'r3', manager: 'boss' });
    expect(await linkManagers(db, integrationId, links, hashOf)).toBe(0);
  });
});
