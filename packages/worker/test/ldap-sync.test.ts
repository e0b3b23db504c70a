import { Control } from 'ldapts';
import { getIntegration } from '@dirsync/db';
import { generatedGroup, generatedUser, groupDn, groupMemberIndexes, userDn } from '@dirsync/testkit';
import { addValue, deleteValue, type LdapSyncFixture, replace, startLdapSyncFixture } from './support/ldap-fixture.ts';

// The life of one directory, end to end through the real pieces: slapd, the generic LDAP provider
// built from stored settings and the decrypted bind password, the BullMQ worker and its processor,
// Redis and PostgreSQL. Each test continues from the state the previous one left.

// Starting slapd and syncing take seconds on a busy machine: more than jest's 5 s default.
const timeoutMs = 60_000;

const users = 120;
const groups = 8;
const membersPerGroup = 20;
const seed = 7;
// Bulk-loaded entries carry stamps a day old (one second apart), so a delta's overlap window
// covers only the live changes a test makes, and the counts of a delta are exact.
const loadedAt = new Date(Math.floor((Date.now() - 86_400_000) / 1000) * 1000);
const loadedStamp = `${loadedAt.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;

/** The OpenLDAP "relax" control: lets the administrator add an entry with its former entryUUID. */
const relaxControl = new Control('1.3.6.1.4.1.4203.666.5.12', { critical: true });

let f: LdapSyncFixture;

const membersOf = (j: number) => groupMemberIndexes(j, users, membersPerGroup, seed);
const groupsOf = (i: number) => Array.from({ length: groups }, (_, j) => j).filter((j) => membersOf(j).includes(i));

/** The canonical attributes the generic provider maps generated user `i` to. */
function expectedUserAttributes(i: number): Record<string, unknown> {
  const source = generatedUser(i, seed);
  const mails = source['mail'] as string[];
  return {
    uid: source['uid'],
    cn: source['cn'],
    sn: source['sn'],
    givenName: source['givenName'],
    displayName: source['displayName'],
    mail: mails[0],
    ...(mails.length > 1 ? { otherMails: mails.slice(1) } : {}),
    title: source['title'],
    department: source['departmentNumber'],
    telephoneNumber: source['telephoneNumber'],
    employeeNumber: source['employeeNumber'],
  };
}

async function externalIdOf(dn: string): Promise<string> {
  const row = await f.objectByDn(dn);
  if (!row) throw new Error(`nothing stored for ${dn}`);
  return row.external_id;
}

beforeAll(async () => {
  f = await startLdapSyncFixture({ label: 'ldapsync', data: { users, groups, membersPerGroup, seed, timestamp: loadedAt } });
}, timeoutMs);

afterAll(async () => {
  await f?.close();
}, timeoutMs);

test('the first full sync creates every user, group and membership, as the directory holds them', async () => {
  const run = await f.sync('delta');
  expect(run).toMatchObject({
    status: 'succeeded',
    mode: 'full',
    fetched: users + groups,
    created: users + groups,
    updated: 0,
    deleted: 0,
    membershipsAdded: groups * membersPerGroup,
    failed: 0,
    issueCount: 0,
  });
  expect(run.reason).toMatch(/^no cursor/);
  expect(await f.liveCount('user')).toBe(users);
  expect(await f.liveCount('group')).toBe(groups);
  expect(await f.liveEdges()).toHaveLength(groups * membersPerGroup);
  expect((await getIntegration(f.db, f.integrationId))?.cursor).toMatchObject({ kind: 'ldap' });

  // Users 0 and 10 have an alias mail (multi-valued), the others one address.
  for (const i of [0, 10, 57, users - 1]) {
    const stored = await f.objectByDn(userDn(i, f.server.suffix));
    expect(stored).toMatchObject({ type: 'user', deleted: false, attributes: expectedUserAttributes(i) });
    expect(stored?.external_id).toMatch(/^[0-9a-f-]{36}$/);
  }
  for (const j of [0, groups - 1]) {
    const source = generatedGroup(j, { users, groups, membersPerGroup, seed, suffix: f.server.suffix });
    const stored = await f.objectByDn(groupDn(j, f.server.suffix));
    expect(stored).toMatchObject({ type: 'group', attributes: { cn: source['cn'], description: source['description'] } });
    const expectedEdges = await Promise.all(membersOf(j).map(async (i) => `${stored?.external_id}>${await externalIdOf(userDn(i, f.server.suffix))}`));
    const edges = (await f.liveEdges()).filter((edge) => edge.startsWith(`${stored?.external_id}>`));
    expect(edges).toEqual(expectedEdges.sort());
  }
}, timeoutMs);

test('an attribute change updates exactly that object; every other row stays untouched', async () => {
  const before = await f.db.$client<{ external_id: string; updated_at: string }[]>`
    select external_id, updated_at::text as updated_at from directory_objects where integration_id = ${f.integrationId}`;
  const changed = await externalIdOf(userDn(3, f.server.suffix));
  await f.admin((c) => c.modify(userDn(3, f.server.suffix), replace('title', ['Chief Tester'])));

  const run = await f.sync('full');
  expect(run).toMatchObject({ status: 'succeeded', created: 0, updated: 1, unchanged: users + groups - 1, deleted: 0 });
  expect(run.membershipsAdded + run.membershipsRemoved).toBe(0);
  expect((await f.object(changed))?.attributes).toEqual({ ...expectedUserAttributes(3), title: 'Chief Tester' });

  const after = new Map(
    (
      await f.db.$client<{ external_id: string; updated_at: string }[]>`
        select external_id, updated_at::text as updated_at from directory_objects where integration_id = ${f.integrationId}`
    ).map((row) => [row.external_id, row.updated_at]),
  );
  const touched = before.filter((row) => after.get(row.external_id) !== row.updated_at).map((row) => row.external_id);
  expect(touched).toEqual([changed]);
}, timeoutMs);

// Who the delta and the following full sync act on, chosen from the generated membership so that
// the counts below are exact.
const renamedMember = () => membersOf(0).find((i) => ![3, 4].includes(i) && groupsOf(i).length === 1)!;
const loneUser = () => Array.from({ length: users }, (_, i) => i).find((i) => i > 4 && groupsOf(i).length === 0)!;
const removedFromGroup2 = () => membersOf(2).find((i) => i !== renamedMember())!;
/** A member of some groups, but of none the tests touch: it is deleted behind their back. */
const doomed = () =>
  Array.from({ length: users }, (_, i) => i).find((i) => i > 4 && groupsOf(i).length > 0 && !groupsOf(i).some((j) => j <= 2 || j === 5))!;
// Not a multiple of ten: those get an alias mail, with accents slapd refuses in a live add.
const newcomer = users + 1;

test('a delta picks up changes, an addition, a move, a rename and member changes, and deletes nothing', async () => {
  const s = f.server.suffix;
  const renamed = renamedMember();
  const moved = loneUser();
  const removed = removedFromGroup2();
  const ids = {
    renamed: await externalIdOf(userDn(renamed, s)),
    moved: await externalIdOf(userDn(moved, s)),
    removed: await externalIdOf(userDn(removed, s)),
    doomed: await externalIdOf(userDn(doomed(), s)),
    group1: await externalIdOf(groupDn(1, s)),
    group2: await externalIdOf(groupDn(2, s)),
  };
  const renamedDn = `uid=renamed${renamed},ou=people,${s}`;
  const movedDn = `uid=${generatedUser(moved, seed)['uid']},ou=alumni,ou=people,${s}`;
  await f.admin(async (c) => {
    await c.modify(userDn(4, s), replace('title', ['Delta Tester']));
    await c.add(userDn(newcomer, s), generatedUser(newcomer, seed));
    await c.add(`ou=alumni,ou=people,${s}`, { objectClass: ['organizationalUnit'], ou: 'alumni' });
    await c.modifyDN(userDn(moved, s), movedDn);
    // A rename; its group is updated the way OpenLDAP's refint overlay would do it.
    await c.modifyDN(userDn(renamed, s), `uid=renamed${renamed}`);
    for (const j of groupsOf(renamed)) await c.modify(groupDn(j, s), [deleteValue('member', userDn(renamed, s)), addValue('member', renamedDn)]);
    await c.modify(groupDn(1, s), addValue('member', userDn(newcomer, s)));
    await c.modify(groupDn(2, s), deleteValue('member', userDn(removed, s)));
    await c.del(userDn(doomed(), s));
  });

  const run = await f.sync('delta');
  expect(run).toMatchObject({
    status: 'succeeded',
    mode: 'delta',
    created: 1,
    // User 4's title, the move and the rename; groups whose only change is their members are
    // not updated objects, their edges say what changed.
    updated: 3,
    deleted: 0,
    membershipsAdded: 1,
    membershipsRemoved: 1,
    failed: 0,
  });
  // Only the live changes and the overlap window were read, not the whole directory.
  expect(run.fetched).toBeLessThan(20);

  expect((await f.objectByDn(userDn(4, s)))?.attributes).toMatchObject({ title: 'Delta Tester' });
  expect((await f.objectByDn(userDn(newcomer, s)))?.attributes).toEqual(expectedUserAttributes(newcomer));
  expect((await f.objectByDn(movedDn))?.external_id).toBe(ids.moved);
  const afterRename = await f.objectByDn(renamedDn);
  expect(afterRename).toMatchObject({ external_id: ids.renamed, attributes: { uid: `renamed${renamed}` } });
  expect(await f.objectByDn(userDn(renamed, s))).toBeUndefined();

  const edges = await f.liveEdges();
  expect(edges).toContain(`${await externalIdOf(groupDn(0, s))}>${ids.renamed}`);
  expect(edges).toContain(`${ids.group1}>${await externalIdOf(userDn(newcomer, s))}`);
  expect(edges).not.toContain(`${ids.group2}>${ids.removed}`);
  // Absence proves nothing to a delta: the deleted entry and its edges stay.
  expect((await f.object(ids.doomed))?.deleted).toBe(false);
  expect(edges.filter((edge) => edge.endsWith(`>${ids.doomed}`))).toHaveLength(groupsOf(doomed()).length);
  expect(await f.liveCount('user')).toBe(users + 1);
}, timeoutMs);

test('the next full sync soft-deletes the removed entry and its edges, though its groups never changed', async () => {
  const s = f.server.suffix;
  const gone = await externalIdOf(userDn(doomed(), s));
  const itsGroups = groupsOf(doomed());
  // A membership change seen by a full sync: group 5 loses one member and gains another.
  const group5 = await externalIdOf(groupDn(5, s));
  const leaving = membersOf(5).find((i) => i !== doomed() && i !== loneUser() && i !== renamedMember())!;
  const joining = Array.from({ length: users }, (_, i) => i).find(
    (i) => !membersOf(5).includes(i) && i !== doomed() && i !== loneUser() && i !== renamedMember(),
  )!;
  await f.admin((c) =>
    c.modify(groupDn(5, s), [deleteValue('member', userDn(leaving, s)), addValue('member', userDn(joining, s))]),
  );
  const edgesBefore = await f.liveEdges();

  const run = await f.sync('full');
  expect(run).toMatchObject({
    status: 'succeeded',
    mode: 'full',
    created: 0,
    updated: 0,
    deleted: 1,
    restored: 0,
    membershipsAdded: 1,
    membershipsRemoved: 1 + itsGroups.length,
  });
  expect((await f.object(gone))?.deleted).toBe(true);
  const edges = await f.liveEdges();
  expect(edges.filter((edge) => edge.endsWith(`>${gone}`))).toEqual([]);
  expect(edges).toContain(`${group5}>${await externalIdOf(userDn(joining, s))}`);
  expect(edges).not.toContain(`${group5}>${await externalIdOf(userDn(leaving, s))}`);
  expect(edges).toHaveLength(edgesBefore.length - itsGroups.length);
  expect(await f.liveCount('user')).toBe(users);

  // The directory really left those groups alone: they still name the deleted entry, with the
  // stamps of the bulk load.
  const still = await f.admin((c) =>
    c.search(`ou=groups,${s}`, { filter: `(member=${userDn(doomed(), s)})`, attributes: ['modifyTimestamp'] }),
  );
  expect(still.searchEntries).toHaveLength(itsGroups.length);
  expect(still.searchEntries.every((entry) => String(entry['modifyTimestamp']) <= loadedStamp)).toBe(true);
}, timeoutMs);

test('an entry that comes back with the same entryUUID restores the same row and its edges', async () => {
  const s = f.server.suffix;
  const row = await f.objectByDn(userDn(doomed(), s));
  expect(row?.deleted).toBe(true);
  // OpenLDAP gives a new entry a new entryUUID; the administrator may set it with the relax
  // control, which is how an entry restored from a backup LDIF comes back as the same object.
  await f.admin((c) => c.add(userDn(doomed(), s), { ...generatedUser(doomed(), seed), entryUUID: row!.external_id }, relaxControl));

  const run = await f.sync('full');
  expect(run).toMatchObject({
    status: 'succeeded',
    created: 0,
    updated: 0,
    restored: 1,
    deleted: 0,
    membershipsAdded: groupsOf(doomed()).length,
    membershipsRemoved: 0,
  });
  const back = await f.object(row!.external_id);
  expect(back).toMatchObject({ id: row!.id, deleted: false, attributes: expectedUserAttributes(doomed()) });
  expect((await f.liveEdges()).filter((edge) => edge.endsWith(`>${row!.external_id}`))).toHaveLength(groupsOf(doomed()).length);
  expect(await f.liveCount('user')).toBe(users + 1);
}, timeoutMs);

// A group that names an entry before the entry exists: the reference is an issue, is kept, and the
// run that stores an entry at that DN makes the edge, though the group itself is not read again.
const late = users + 2;

/** Gives a group its bulk-load stamp back, so a delta's window does not reach it any more. */
async function backdate(dn: string): Promise<void> {
  await f.admin((c) => c.modify(dn, replace('modifyTimestamp', [loadedStamp]), relaxControl));
  const [entry] = (await f.admin((c) => c.search(dn, { scope: 'base', attributes: ['modifyTimestamp'] }))).searchEntries;
  expect(String(entry?.['modifyTimestamp'])).toBe(loadedStamp);
}

async function group6Edges(): Promise<string[]> {
  const group6 = await externalIdOf(groupDn(6, f.server.suffix));
  return (await f.liveEdges()).filter((edge) => edge.startsWith(`${group6}>`));
}

test('a member DN that matches nothing is an issue; the entry created there later gets its edge in a delta that does not read the group', async () => {
  const s = f.server.suffix;
  const group6 = await externalIdOf(groupDn(6, s));
  await f.admin((c) => c.modify(groupDn(6, s), addValue('member', userDn(late, s))));
  const first = await f.sync('delta');
  expect(first).toMatchObject({ status: 'succeeded', mode: 'delta', created: 0, membershipsAdded: 0 });
  expect(first.issues).toContainEqual(expect.objectContaining({ externalId: group6, reason: expect.stringContaining(userDn(late, s).toLowerCase()) }));
  const before = await group6Edges();

  await backdate(groupDn(6, s));
  await f.admin((c) => c.add(userDn(late, s), generatedUser(late, seed)));
  const run = await f.sync('delta');
  expect(run).toMatchObject({ status: 'succeeded', mode: 'delta', created: 1, deleted: 0, membershipsAdded: 1, membershipsRemoved: 0 });
  expect(run.issues.filter((issue) => issue.externalId === group6)).toEqual([]);
  const lateId = await externalIdOf(userDn(late, s));
  expect(await group6Edges()).toEqual([...before, `${group6}>${lateId}`].sort());
}, timeoutMs);

test('an entry deleted and added back with the same entryUUID gets its edge back in a delta that does not read the group', async () => {
  const s = f.server.suffix;
  const group6 = await externalIdOf(groupDn(6, s));
  const lateId = await externalIdOf(userDn(late, s));
  await f.admin((c) => c.del(userDn(late, s)));
  const sweep = await f.sync('full');
  expect(sweep).toMatchObject({ status: 'succeeded', deleted: 1 });
  expect(await group6Edges()).not.toContain(`${group6}>${lateId}`);

  await f.admin((c) => c.add(userDn(late, s), { ...generatedUser(late, seed), entryUUID: lateId }, relaxControl));
  const run = await f.sync('delta');
  expect(run).toMatchObject({ status: 'succeeded', mode: 'delta', created: 0, restored: 1, membershipsAdded: 1 });
  expect(await group6Edges()).toContain(`${group6}>${lateId}`);
}, timeoutMs);

test('an entry deleted and added back with a new entryUUID gets the edge under its new id in a delta', async () => {
  const s = f.server.suffix;
  const group6 = await externalIdOf(groupDn(6, s));
  const oldId = await externalIdOf(userDn(late, s));
  await f.admin((c) => c.del(userDn(late, s)));
  expect(await f.sync('full')).toMatchObject({ status: 'succeeded', deleted: 1 });

  await f.admin((c) => c.add(userDn(late, s), generatedUser(late, seed)));
  const run = await f.sync('delta');
  expect(run).toMatchObject({ status: 'succeeded', mode: 'delta', created: 1, restored: 0, membershipsAdded: 1 });
  // The old row keeps the DN too, soft-deleted: the new object is the live one.
  const [live] = await f.db.$client<{ external_id: string }[]>`
    select external_id from directory_objects
    where integration_id = ${f.integrationId} and dn = ${userDn(late, s).toLowerCase()} and deleted_at is null`;
  const newId = live?.external_id;
  expect(newId).toBeDefined();
  expect(newId).not.toBe(oldId);
  expect((await f.object(oldId))?.deleted).toBe(true);
  const edges = await group6Edges();
  expect(edges).toContain(`${group6}>${newId}`);
  expect(edges).not.toContain(`${group6}>${oldId}`);

  // A full sync finds nothing left to do: the delta's edges are what the directory says.
  expect(await f.sync('full')).toMatchObject({ status: 'succeeded', created: 0, deleted: 0, membershipsAdded: 0, membershipsRemoved: 0 });
}, timeoutMs);
