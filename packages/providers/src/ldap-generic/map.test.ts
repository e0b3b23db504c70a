import type { LdapEntry } from '../ldap/protocol.ts';
import type { MapResult } from '../types.ts';
import { type GenericLdapEntry, mapGenericLdapEntry } from './map.ts';

const uuid = '5f0c1a2e-7b3d-1041-8b4a-adc99d069665';
const options = { memberAttributes: ['member', 'uniqueMember'] };

function entry(type: 'user' | 'group', dn: string, attributes: Record<string, string[]>): GenericLdapEntry {
  const e: LdapEntry = { dn, attributes, buffers: {} };
  return { type, entry: e };
}

const cases: [string, GenericLdapEntry, MapResult][] = [
  [
    'a full user',
    entry('user', 'uid=Ann,ou=People,dc=Example,dc=org', {
      entryuuid: [uuid.toUpperCase()],
      modifytimestamp: ['20240101000000Z'],
      uid: ['ann'],
      cn: ['Ann Smith', 'Ann'],
      sn: ['Smith'],
      givenname: ['Ann'],
      displayname: ['Ann Smith (Sales)'],
      mail: ['ann@example.org', 'a.smith@example.org', 'sales@example.org'],
      title: ['Manager'],
      departmentnumber: ['400'],
      telephonenumber: ['+1 555 0100'],
      employeenumber: ['1001'],
    }),
    {
      ok: true,
      object: {
        externalId: uuid,
        type: 'user',
        dn: 'uid=ann,ou=people,dc=example,dc=org',
        attributes: {
          uid: 'ann',
          cn: 'Ann Smith',
          sn: 'Smith',
          givenName: 'Ann',
          displayName: 'Ann Smith (Sales)',
          title: 'Manager',
          department: '400',
          telephoneNumber: '+1 555 0100',
          employeeNumber: '1001',
          mail: 'ann@example.org',
          otherMails: ['a.smith@example.org', 'sales@example.org'],
        },
      },
    },
  ],
  [
    'a sparse user (absent attributes are left out, one mail has no otherMails)',
    entry('user', 'uid=bob,ou=people,dc=x', { entryuuid: [uuid], uid: ['bob'], mail: ['bob@x'], title: [] }),
    { ok: true, object: { externalId: uuid, type: 'user', dn: 'uid=bob,ou=people,dc=x', attributes: { uid: 'bob', mail: 'bob@x' } } },
  ],
  [
    'a group with member and uniqueMember (deduplicated, UID suffix and placeholder dropped)',
    entry('group', 'cn=Staff,ou=groups,dc=x', {
      entryuuid: [uuid],
      cn: ['Staff'],
      description: ['All staff'],
      mail: ['staff@x', 'all@x'],
      member: ['uid=Ann,ou=people,dc=x', 'uid=bob, ou=people, dc=x', ''],
      uniquemember: ["uid=ann,ou=people,dc=x#'0101'B", 'cn=Admins,ou=groups,dc=x'],
    }),
    {
      ok: true,
      object: {
        externalId: uuid,
        type: 'group',
        dn: 'cn=staff,ou=groups,dc=x',
        attributes: { cn: 'Staff', description: 'All staff', mail: 'staff@x' },
        members: [
          { by: 'dn', value: 'uid=ann,ou=people,dc=x' },
          { by: 'dn', value: 'uid=bob,ou=people,dc=x' },
          { by: 'dn', value: 'cn=admins,ou=groups,dc=x' },
        ],
      },
    },
  ],
  [
    'an empty group (members present but empty)',
    entry('group', 'cn=empty,dc=x', { entryuuid: [uuid], cn: ['empty'], member: [''] }),
    { ok: true, object: { externalId: uuid, type: 'group', dn: 'cn=empty,dc=x', attributes: { cn: 'empty' }, members: [] } },
  ],
  [
    'an entry without entryUUID',
    entry('user', 'uid=ghost,dc=x', { uid: ['ghost'] }),
    { ok: false, dn: 'uid=ghost,dc=x', reason: expect.stringContaining('no entryUUID') as unknown as string },
  ],
  [
    'an entry whose entryUUID is not a UUID',
    entry('user', 'uid=odd,dc=x', { entryuuid: ['not-a-uuid'] }),
    { ok: false, dn: 'uid=odd,dc=x', externalId: 'not-a-uuid', reason: 'entryUUID "not-a-uuid" is not a UUID' },
  ],
  [
    'an entry with an unparsable DN',
    entry('user', 'uid=a,,dc=x', { entryuuid: [uuid] }),
    { ok: false, dn: 'uid=a,,dc=x', reason: expect.stringContaining('DN cannot be parsed') as unknown as string },
  ],
];

describe('mapGenericLdapEntry', () => {
  it.each(cases)('maps %s', (_name, input, expected) => {
    expect(mapGenericLdapEntry(input, options)).toEqual(expected);
  });

  it('reads only the configured member attributes', () => {
    const result = mapGenericLdapEntry(
      entry('group', 'cn=g,dc=x', { entryuuid: [uuid], member: ['uid=a,dc=x'], uniquemember: ['uid=b,dc=x'] }),
      { memberAttributes: ['uniqueMember'] },
    );
    expect(result.ok && result.object.members).toEqual([{ by: 'dn', value: 'uid=b,dc=x' }]);
  });

  it('gives a renamed entry the same id and attributes, only another dn', () => {
    const before = mapGenericLdapEntry(entry('user', 'uid=ann,ou=people,dc=x', { entryuuid: [uuid], uid: ['ann'] }), options);
    const after = mapGenericLdapEntry(entry('user', 'uid=ann,ou=alumni,dc=x', { entryuuid: [uuid], uid: ['ann'] }), options);
    expect(before.ok && after.ok).toBe(true);
    if (!before.ok || !after.ok) return;
    expect(after.object.externalId).toBe(before.object.externalId);
    expect(after.object.attributes).toEqual(before.object.attributes);
    expect(after.object.dn).not.toBe(before.object.dn);
  });
});

test('attributes come out with their keys in sorted order', () => {
  for (const [, source] of cases) {
    const result = mapGenericLdapEntry(source, options);
    if (!result.ok) continue;
    const keys = Object.keys(result.object.attributes);
    expect(keys).toEqual([...keys].sort());
  }
});
