import { Attribute, Change, type Client } from 'ldapts';
import { type SharedSamba, addAdContact, addAdGroup, addAdOu, addAdUser, adNames, sharedSamba, testDestinations } from '@dirsync/testkit';
import { CursorRejectedError } from '../src/errors.ts';
import { type ActiveDirectorySettingsInput, type CanonicalObject, type Cursor, type Provider, createProvider } from '../src/index.ts';

// The Active Directory provider's reads against the run's Samba DC: the seed directory for full
// fetches and range retrieval, a directory of this file's own for deltas.

let dc: SharedSamba;
let admin: Client;
let root: string;

beforeAll(async () => {
  dc = await sharedSamba();
  admin = await dc.client();
  root = await dc.createOu('adfetch');
});

afterAll(async () => {
  await admin?.unbind();
  await dc?.release();
});

function settings(change: Partial<ActiveDirectorySettingsInput> = {}): ActiveDirectorySettingsInput {
  return {
    url: dc.ldapsUrl,
    bindDn: dc.reader.dn,
    tls: { caPem: dc.caPem, serverName: dc.dnsHostName },
    baseDns: [dc.seed.ouDn],
    pageSize: 200,
    ...change,
  };
}

interface Fetched {
  objects: CanonicalObject[];
  deletions: string[];
  cursor: Cursor | undefined;
}

async function drain(provider: Provider, pages: AsyncIterable<{ entries: readonly unknown[]; deletions?: readonly string[]; cursor?: Cursor }>): Promise<Fetched> {
  const out: Fetched = { objects: [], deletions: [], cursor: undefined };
  for await (const page of pages) {
    for (const entry of page.entries) {
      const result = provider.map(entry);
      if (!result.ok) throw new Error(`unmappable entry: ${result.reason}`);
      out.objects.push(result.object);
    }
    out.deletions.push(...(page.deletions ?? []));
    if (page.cursor) out.cursor = page.cursor;
  }
  return out;
}

async function withProvider<T>(change: Partial<ActiveDirectorySettingsInput>, run: (provider: Provider) => Promise<T>): Promise<T> {
  const provider = createProvider('active_directory', settings(change), dc.reader.password, { destinations: testDestinations });
  try {
    return await run(provider);
  } finally {
    await provider.close();
  }
}

const full = (change: Partial<ActiveDirectorySettingsInput> = {}) =>
  withProvider(change, (p) => drain(p, p.fetchFull(AbortSignal.timeout(120_000))));
const delta = (cursor: Cursor, change: Partial<ActiveDirectorySettingsInput> = {}) =>
  withProvider(change, (p) => drain(p, p.fetchDelta(cursor, AbortSignal.timeout(120_000))));

function byDn(objects: readonly CanonicalObject[], dn: string): CanonicalObject | undefined {
  return objects.find((o) => o.dn === dn.toLowerCase());
}

async function guidOf(dn: string): Promise<string> {
  const { searchEntries } = await admin.search(dn, { scope: 'base', attributes: ['objectGUID'], explicitBufferAttributes: ['objectGUID'] });
  const raw = searchEntries[0]?.['objectGUID'] as Buffer;
  // Independent of the provider's formatting: the byte order AD tools use.
  const h = raw.toString('hex');
  const swap = (s: string) => s.match(/../g)!.reverse().join('');
  return `${swap(h.slice(0, 8))}-${swap(h.slice(8, 12))}-${swap(h.slice(12, 16))}-${h.slice(16, 20)}-${h.slice(20)}`;
}

describe('full fetch of the seed directory', () => {
  let seed: Fetched;
  beforeAll(async () => {
    seed = await full();
  });

  it('returns every user, contact and group once, users first and groups last', () => {
    const { spec, ouDn } = dc.seed;
    const count = (type: string) => seed.objects.filter((o) => o.type === type).length;
    expect([count('user'), count('contact'), count('group')]).toEqual([spec.users, spec.contacts, spec.groups + 2]);
    expect(new Set(seed.objects.map((o) => o.externalId)).size).toBe(seed.objects.length);
    const firstGroup = seed.objects.findIndex((o) => o.type === 'group');
    expect(seed.objects.slice(firstGroup).every((o) => o.type === 'group')).toBe(true);
    expect(seed.objects.every((o) => o.dn?.endsWith(ouDn.toLowerCase()))).toBe(true);
    expect(seed.cursor).toMatchObject({ kind: 'active_directory', method: 'usn', dc: dc.dnsHostName, usn: expect.any(Number) });
  });

  it('maps a user with its GUID, SID, mail addresses, manager and account state', async () => {
    const { ouDn, spec } = dc.seed;
    const dn = adNames.userDn(ouDn, spec.ou, 11);
    const user = byDn(seed.objects, dn);
    const manager = byDn(seed.objects, adNames.userDn(ouDn, spec.ou, 10));
    expect(user?.externalId).toBe(await guidOf(dn));
    expect(user?.attributes).toEqual({
      sAMAccountName: 'seed00011',
      userPrincipalName: 'seed00011@dirsync.test',
      displayName: 'Seed User 00011',
      givenName: 'Given00011',
      sn: 'Seed00011',
      mail: 'seed.00011@dirsync.test',
      department: 'Support',
      title: 'Manager',
      telephoneNumber: '+1 555 00011',
      primarySmtpAddress: 'seed.00011@dirsync.test',
      smtpAliases: ['seed00011@alias.dirsync.test'],
      proxyAddresses: ['SMTP:seed.00011@dirsync.test', 'smtp:seed00011@alias.dirsync.test'],
      objectSid: expect.stringMatching(/^S-1-5-21-\d+-\d+-\d+-\d+$/),
      whenCreated: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      whenChanged: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      manager: manager?.externalId,
      enabled: true,
      lockedOut: false,
    });
    expect(byDn(seed.objects, adNames.userDn(ouDn, spec.ou, 49))?.attributes['enabled']).toBe(false);
  });

  it('maps groups (type, scope, members by DN, nested groups and contacts) and contacts', () => {
    const { ouDn, spec } = dc.seed;
    const list = byDn(seed.objects, adNames.groupDn(ouDn, spec.ou, 2));
    expect(list?.attributes).toMatchObject({ groupCategory: 'distribution', groupScope: 'universal', mail: 'list00002@dirsync.test' });
    const first = byDn(seed.objects, adNames.groupDn(ouDn, spec.ou, 0));
    expect(first?.attributes).toMatchObject({ groupCategory: 'security', groupScope: 'global' });
    expect(first?.members).toHaveLength(spec.membersPerGroup + 1);
    expect(first?.members).toContainEqual({ by: 'dn', value: adNames.contactDn(ouDn, spec.ou, 0).toLowerCase() });
    const nested = byDn(seed.objects, adNames.nestedGroupDn(ouDn, spec.ou));
    expect(nested?.members).toEqual(
      expect.arrayContaining([
        { by: 'dn', value: adNames.groupDn(ouDn, spec.ou, 0).toLowerCase() },
        { by: 'dn', value: adNames.groupDn(ouDn, spec.ou, 1).toLowerCase() },
      ]),
    );
    const contact = byDn(seed.objects, adNames.contactDn(ouDn, spec.ou, 3));
    expect(contact).toMatchObject({ type: 'contact', attributes: { mail: 'contact00003@partner.example', displayName: 'Seed Contact 00003' } });
    expect(contact?.attributes['objectSid']).toBeUndefined();
  });

  it('returns every member of a group larger than MaxValRange, unranged and through range retrieval', async () => {
    const { ouDn, spec } = dc.seed;
    const bigDn = adNames.largeGroupDn(ouDn, spec.ou);
    const expected = Array.from({ length: spec.largeGroupMembers ?? 0 }, (_, i) => adNames.userDn(ouDn, spec.ou, i).toLowerCase()).sort();
    expect(expected.length).toBeGreaterThan(1500);
    const unranged = byDn(seed.objects, bigDn);
    expect(unranged?.members?.map((m) => m.value).sort()).toEqual(expected);
    // Samba answers every value unless asked for a range: small ranges prove the ranged path.
    const ranged = await full({ rangeSize: 700, objectTypes: ['group'] });
    expect(byDn(ranged.objects, bigDn)?.members?.map((m) => m.value).sort()).toEqual(expected);
    expect(byDn(ranged.objects, adNames.groupDn(ouDn, spec.ou, 0))?.members).toHaveLength(spec.membersPerGroup + 1);
  });

  it('applies the include and exclude filters and the object types', async () => {
    const filtered = await full({ filter: '(department=Sales)', excludeFilter: '(title=Engineer)', objectTypes: ['user'] });
    expect(filtered.objects.length).toBeGreaterThan(0);
    expect(filtered.objects.every((o) => o.type === 'user' && o.attributes['department'] === 'Sales' && o.attributes['title'] !== 'Engineer')).toBe(true);
    const all = dc.seed.spec.users;
    // Departments and titles cycle with periods 4 and 5: Sales is every 4th user, Engineer every 5th.
    expect(filtered.objects).toHaveLength(all / 4 - all / 20);
  });
});

describe('deltas', () => {
  let inside: string;
  let outside: string;
  const dns: Record<string, string> = {};
  let baseline: Fetched;

  beforeAll(async () => {
    inside = await addAdOu(admin, root, 'In');
    outside = await addAdOu(admin, root, 'Out');
    await addAdOu(admin, inside, 'Sub');
    for (const name of ['Ann', 'Bob', 'Cid', 'Dee', 'Eve', 'Fay']) dns[name] = await addAdUser(admin, inside, name, { title: 'Clerk' });
    dns['Kit'] = await addAdContact(admin, inside, 'Kit', { mail: 'kit@partner.example' });
    dns['Team'] = await addAdGroup(admin, inside, 'Team', [dns['Ann'] as string, dns['Bob'] as string]);
    dns['All'] = await addAdGroup(admin, inside, 'All', [dns['Team'] as string, dns['Cid'] as string, dns['Eve'] as string, dns['Kit'] as string]);
    baseline = await full({ baseDns: [inside] });
  });

  it('starts from a full fetch of the scope', () => {
    expect(baseline.objects.map((o) => o.dn).sort()).toEqual(Object.values(dns).map((d) => d.toLowerCase()).sort());
    expect(byDn(baseline.objects, dns['All'] as string)?.members).toHaveLength(4);
  });

  it('returns nothing when nothing in scope changed', async () => {
    const result = await delta(baseline.cursor as Cursor, { baseDns: [inside] });
    expect(result.objects).toEqual([]);
    expect(result.cursor).toMatchObject({ usn: expect.any(Number) });
  });

  it('reports changes, renames, moves, membership, moves out of scope and tombstones', async () => {
    const ids = Object.fromEntries(await Promise.all(Object.entries(dns).map(async ([name, dn]) => [name, await guidOf(dn)] as const)));
    await admin.modify(dns['Ann'] as string, new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Chief'] }) }));
    await admin.modifyDN(dns['Bob'] as string, 'CN=Robert');
    await admin.modifyDN(dns['Cid'] as string, `CN=Cid,OU=Sub,${inside}`);
    await admin.modifyDN(dns['Dee'] as string, `CN=Dee,${outside}`);
    await admin.del(dns['Eve'] as string);
    await admin.modify(dns['Team'] as string, [
      new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [dns['Fay'] as string] }) }),
      new Change({ operation: 'delete', modification: new Attribute({ type: 'member', values: [dns['Ann'] as string] }) }),
    ]);

    const result = await delta(baseline.cursor as Cursor, { baseDns: [inside] });
    const changed = new Map(result.objects.map((o) => [o.externalId, o]));
    expect(changed.get(ids['Ann'] as string)?.attributes['title']).toBe('Chief');
    expect(changed.get(ids['Bob'] as string)?.dn).toBe(`cn=robert,${inside.toLowerCase()}`);
    expect(changed.get(ids['Cid'] as string)?.dn).toBe(`cn=cid,ou=sub,${inside.toLowerCase()}`);
    expect(changed.get(ids['Team'] as string)?.members?.map((m) => m.value).sort()).toEqual(
      [`cn=robert,${inside}`, (dns['Fay'] as string)].map((d) => d.toLowerCase()).sort(),
    );
    // Removing a deleted user from its groups does not touch the groups (measured): only the
    // tombstone reports it, and All is not re-read.
    expect(changed.has(ids['All'] as string)).toBe(false);
    expect(changed.has(ids['Dee'] as string)).toBe(false);
    expect(result.deletions).toEqual(expect.arrayContaining([ids['Dee'], ids['Eve']]));
    for (const name of ['Ann', 'Bob', 'Cid', 'Team', 'Fay', 'Kit', 'All']) expect(result.deletions).not.toContain(ids[name]);
    expect((result.cursor as { usn: number }).usn).toBeGreaterThan((baseline.cursor as { usn: number }).usn);

    // The next delta starts after these changes.
    const next = await delta(result.cursor as Cursor, { baseDns: [inside] });
    expect(next.objects).toEqual([]);
    expect(next.deletions).not.toEqual(expect.arrayContaining([ids['Dee'], ids['Eve']]));
  });

  it('follows the same changes through DirSync', async () => {
    const base = await addAdOu(admin, root, 'DirSync');
    const keep = await addAdUser(admin, base, 'Keep');
    const change = await addAdUser(admin, base, 'Change');
    const drop = await addAdUser(admin, base, 'Drop');
    const leave = await addAdUser(admin, base, 'Leave');
    const group = await addAdGroup(admin, base, 'Crew', [keep]);
    const scope = { baseDns: [base], deltaMethod: 'dirsync' as const };
    const start = await full(scope);
    expect(start.objects).toHaveLength(5);
    expect(start.cursor).toMatchObject({ method: 'dirsync', cookie: expect.any(String) });
    const ids = { change: await guidOf(change), drop: await guidOf(drop), leave: await guidOf(leave), group: await guidOf(group), keep: await guidOf(keep) };

    await admin.modify(change, new Change({ operation: 'replace', modification: new Attribute({ type: 'department', values: ['Legal'] }) }));
    await admin.modify(group, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [change] }) }));
    await admin.del(drop);
    await admin.modifyDN(leave, `CN=Leave,${outside}`);

    const result = await delta(start.cursor as Cursor, scope);
    const changed = new Map(result.objects.map((o) => [o.externalId, o]));
    expect(changed.get(ids.change)?.attributes['department']).toBe('Legal');
    expect(changed.get(ids.group)?.members).toHaveLength(2);
    expect(changed.has(ids.keep)).toBe(false);
    expect(result.deletions).toEqual(expect.arrayContaining([ids.drop, ids.leave]));
    expect(result.deletions).not.toContain(ids.change);
    expect(result.cursor).toMatchObject({ method: 'dirsync', cookie: expect.any(String) });
    expect((result.cursor as { cookie: string }).cookie).not.toBe((start.cursor as { cookie: string }).cookie);
  });
});

describe('objects that come into scope', () => {
  it('come with every group they belong to and every report they manage (over ranges), though those are not read again', async () => {
    const scope = await addAdOu(admin, root, 'JoinIn');
    const away = await addAdOu(admin, root, 'JoinOut');
    const jo = await addAdUser(admin, away, 'Jo');
    const g1 = await addAdGroup(admin, scope, 'Crew1', [jo]);
    const g2 = await addAdGroup(admin, scope, 'Crew2', [jo]);
    const far = await addAdGroup(admin, away, 'Far', [jo]);
    const nested = await addAdGroup(admin, away, 'Nest');
    await admin.modify(g1, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [nested] }) }));
    const lead = await addAdUser(admin, away, 'Lead');
    const reports = [await addAdUser(admin, scope, 'Rep1', { manager: lead }), await addAdUser(admin, scope, 'Rep2', { manager: lead }), await addAdUser(admin, scope, 'Rep3', { manager: lead })];
    const start = await full({ baseDns: [scope], rangeSize: 2 });
    expect(start.objects.map((o) => o.dn).sort()).toEqual([g1, g2, ...reports].map((d) => d.toLowerCase()).sort());
    // A full fetch reads the groups' members instead.
    expect(start.objects.every((o) => o.memberOf === undefined)).toBe(true);

    await admin.modifyDN(jo, `CN=Jo,${scope}`);
    await admin.modifyDN(nested, `CN=Nest,${scope}`);
    await admin.modifyDN(lead, `CN=Lead,${scope}`);
    const result = await delta(start.cursor as Cursor, { baseDns: [scope], rangeSize: 2 });
    const moved = byDn(result.objects, `CN=Jo,${scope}`);
    expect(moved?.memberOf?.map((m) => m.value).sort()).toEqual([g1, g2, far].map((d) => d.toLowerCase()).sort());
    expect(moved?.directReports).toEqual([]);
    expect(byDn(result.objects, `CN=Nest,${scope}`)?.memberOf).toEqual([{ by: 'dn', value: g1.toLowerCase() }]);
    expect(byDn(result.objects, `CN=Lead,${scope}`)?.directReports?.map((m) => m.value).sort()).toEqual(reports.map((d) => d.toLowerCase()).sort());
    // The groups' and the reports' uSNChanged did not move: only the moved objects are read.
    expect(result.objects.map((o) => o.dn).sort()).toEqual([`CN=Jo,${scope}`, `CN=Nest,${scope}`, `CN=Lead,${scope}`].map((d) => d.toLowerCase()).sort());
  });
});

describe('cursors that cannot be continued', () => {
  let cursor: Cursor;
  beforeAll(async () => {
    cursor = (await full({ objectTypes: ['contact'] })).cursor as Cursor;
  });

  it.each([
    ['another DC', { dc: 'dc9.dirsync.test' }, /taken on domain controller dc9\.dirsync\.test, but dc1\.dirsync\.test answers now/],
    ['a restored DC (other invocationId)', { invocationId: '00000000-0000-0000-0000-000000000001' }, /invocationId of dc1\.dirsync\.test changed .*restored from backup/],
    ['a cursor older than the tombstone lifetime', { takenAt: new Date(Date.now() - 200 * 86_400_000).toISOString() }, /older than the tombstone lifetime \(180 days\)/],
  ])('rejects %s on the DC', async (_name, change, reason) => {
    const error = await delta({ ...cursor, ...change }, { objectTypes: ['contact'] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CursorRejectedError);
    expect((error as Error).message).toMatch(reason);
  });

  it.each([
    ['another scope', { objectTypes: ['user'] as ('user')[] }, /base DNs, filters or object types changed/],
    ['another delta method', { objectTypes: ['contact'] as ('contact')[], deltaMethod: 'dirsync' as const }, /delta method changed from "usn" to "dirsync"/],
  ])('rejects %s before connecting', async (_name, change, reason) => {
    const provider = createProvider('active_directory', settings({ ...change, url: 'ldaps://127.0.0.1:1' }), 'x', { destinations: testDestinations });
    try {
      const error = await drain(provider, provider.fetchDelta(cursor, AbortSignal.timeout(5_000))).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CursorRejectedError);
      expect((error as Error).message).toMatch(reason);
    } finally {
      await provider.close();
    }
  });
});
