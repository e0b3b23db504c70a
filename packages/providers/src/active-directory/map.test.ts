import type { LdapEntry } from '../ldap/protocol.ts';
import type { MapResult } from '../types.ts';
import { type AdEntry, formatGuid, formatSid, guidBytes, mapAdEntry } from './map.ts';

// Values as Samba returned them (base64 of objectGUID/objectSid and the GUID it showed in the
// tombstone's DN), so the byte order is checked against a real server, not against itself.
const guidB64 = 'S8wcnMbyoECBVzsoPQe9YA==';
const guid = '9c1ccc4b-f2c6-40a0-8157-3b283d07bd60';
const sidB64 = 'AQUAAAAAAAUVAAAApl8eMA/ugEuF+XMaTgQAAA==';
const sid = 'S-1-5-21-807296934-1266740751-443808133-1102';
const managerGuid = '5871bcfd-d428-47ba-a989-7d465ded026d';

function entry(type: AdEntry['type'], dn: string, attributes: Record<string, string[]>, withSid = true): AdEntry {
  const buffers: Record<string, Buffer[]> = { objectguid: [Buffer.from(guidB64, 'base64')] };
  if (withSid) buffers['objectsid'] = [Buffer.from(sidB64, 'base64')];
  const e: LdapEntry = { dn, attributes, buffers };
  return { type, entry: e };
}

describe('GUID and SID rendering', () => {
  it('renders objectGUID in the mixed-endian form AD tools show, and back', () => {
    expect(formatGuid(Buffer.from(guidB64, 'base64'))).toBe(guid);
    expect(guidBytes(guid).toString('base64')).toBe(guidB64);
    expect(formatGuid(Buffer.alloc(15))).toBeUndefined();
    expect(() => guidBytes('not-a-guid')).toThrow('is not a GUID');
  });

  it('renders objectSid as S-1-5-21-…', () => {
    expect(formatSid(Buffer.from(sidB64, 'base64'))).toBe(sid);
    expect(formatSid(Buffer.from([1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]))).toBe('S-1-5-18');
    expect(formatSid(Buffer.from([1, 2, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]))).toBeUndefined();
  });
});

const cases: [string, AdEntry, MapResult][] = [
  [
    'a full user (extended DNs, proxy addresses, enabled, not locked)',
    entry('user', `<GUID=${guid}>;<SID=${sid}>;CN=Ann Smith,OU=Staff,DC=Example,DC=com`, {
      samaccountname: ['ann'],
      userprincipalname: ['ann@example.com'],
      displayname: ['Ann Smith'],
      givenname: ['Ann'],
      sn: ['Smith'],
      mail: ['ann@example.com'],
      proxyaddresses: ['smtp:a.smith@example.com', 'SMTP:ann@example.com', 'X500:/o=Example/cn=ann', 'smtp:ann@old.example.com'],
      department: ['Sales'],
      title: ['Manager'],
      company: ['Example'],
      telephonenumber: ['+1 555 0100'],
      mobile: ['+1 555 0199'],
      physicaldeliveryofficename: ['HQ'],
      employeeid: ['1001'],
      description: ['first', 'second'],
      manager: [`<GUID=${managerGuid.toUpperCase()}>;<SID=S-1-5-21-1-2-3-1103>;CN=Boss,OU=Staff,DC=Example,DC=com`],
      useraccountcontrol: ['512'],
      'msds-user-account-control-computed': ['0'],
      lockouttime: ['0'],
      whencreated: ['20240131120000.0Z'],
      whenchanged: ['20240201080910.0Z'],
      objectclass: ['top', 'person', 'organizationalPerson', 'user'],
    }),
    {
      ok: true,
      object: {
        externalId: guid,
        type: 'user',
        dn: 'cn=ann smith,ou=staff,dc=example,dc=com',
        attributes: {
          sAMAccountName: 'ann',
          userPrincipalName: 'ann@example.com',
          displayName: 'Ann Smith',
          givenName: 'Ann',
          sn: 'Smith',
          mail: 'ann@example.com',
          department: 'Sales',
          title: 'Manager',
          company: 'Example',
          telephoneNumber: '+1 555 0100',
          mobile: '+1 555 0199',
          office: 'HQ',
          employeeId: '1001',
          description: 'first',
          primarySmtpAddress: 'ann@example.com',
          smtpAliases: ['a.smith@example.com', 'ann@old.example.com'],
          proxyAddresses: ['SMTP:ann@example.com', 'X500:/o=Example/cn=ann', 'smtp:a.smith@example.com', 'smtp:ann@old.example.com'],
          objectSid: sid,
          whenCreated: '2024-01-31T12:00:00.000Z',
          whenChanged: '2024-02-01T08:09:10.000Z',
          manager: managerGuid,
          enabled: true,
          lockedOut: false,
        },
      },
    },
  ],
  [
    'a disabled, locked-out user (the lockout bit lives in the constructed attribute)',
    entry('user', 'CN=Bob,DC=x', { useraccountcontrol: ['514'], 'msds-user-account-control-computed': ['16'], lockouttime: ['133000000000000000'] }),
    { ok: true, object: { externalId: guid, type: 'user', dn: 'cn=bob,dc=x', attributes: { objectSid: sid, enabled: false, lockedOut: true } } },
  ],
  [
    'a user on a server without the constructed attribute (lockoutTime decides) and a manager named by DN only',
    entry('user', 'CN=Cy,DC=x', { useraccountcontrol: ['66048'], lockouttime: ['0'], manager: ['CN=Boss, DC=X'] }),
    { ok: true, object: { externalId: guid, type: 'user', dn: 'cn=cy,dc=x', attributes: { objectSid: sid, managerDn: 'cn=boss,dc=x', enabled: true, lockedOut: false } } },
  ],
  [
    'a contact (no SID)',
    entry('contact', 'CN=Partner,OU=Contacts,DC=x', { mail: ['p@partner.example'], displayname: ['Partner'], proxyaddresses: ['SMTP:p@partner.example'] }, false),
    {
      ok: true,
      object: {
        externalId: guid,
        type: 'contact',
        dn: 'cn=partner,ou=contacts,dc=x',
        attributes: { displayName: 'Partner', mail: 'p@partner.example', primarySmtpAddress: 'p@partner.example', proxyAddresses: ['SMTP:p@partner.example'] },
      },
    },
  ],
  [
    'a global security group with users, a nested group and a contact (extended and plain DNs, duplicates)',
    entry('group', 'CN=Staff,OU=Groups,DC=x', {
      samaccountname: ['staff'],
      grouptype: ['-2147483646'],
      member: [`<GUID=${guid}>;CN=Ann Smith,OU=Staff,DC=x`, 'CN=Ann Smith, OU=Staff, DC=x', 'CN=Sub,OU=Groups,DC=x', 'CN=Partner,OU=Contacts,DC=x'],
    }),
    {
      ok: true,
      object: {
        externalId: guid,
        type: 'group',
        dn: 'cn=staff,ou=groups,dc=x',
        attributes: { sAMAccountName: 'staff', objectSid: sid, groupCategory: 'security', groupScope: 'global' },
        members: [
          { by: 'dn', value: 'cn=ann smith,ou=staff,dc=x' },
          { by: 'dn', value: 'cn=sub,ou=groups,dc=x' },
          { by: 'dn', value: 'cn=partner,ou=contacts,dc=x' },
        ],
      },
    },
  ],
  [
    'an empty universal distribution list (AD omits an empty member: the list is empty, not unknown)',
    entry('group', 'CN=List,DC=x', { grouptype: ['8'], mail: ['list@x'] }),
    { ok: true, object: { externalId: guid, type: 'group', dn: 'cn=list,dc=x', attributes: { mail: 'list@x', objectSid: sid, groupCategory: 'distribution', groupScope: 'universal' }, members: [] } },
  ],
  [
    'a domain local group',
    entry('group', 'CN=Local,DC=x', { grouptype: ['-2147483644'] }),
    { ok: true, object: { externalId: guid, type: 'group', dn: 'cn=local,dc=x', attributes: { objectSid: sid, groupCategory: 'security', groupScope: 'domainLocal' }, members: [] } },
  ],
  [
    'a user read by a delta with its groups and reports (extended and plain DNs, duplicates), not part of its attributes',
    {
      ...entry('user', 'CN=Moved,OU=Staff,DC=x', {
        useraccountcontrol: ['512'],
        memberof: [`<GUID=${managerGuid}>;CN=Team,OU=Groups,DC=x`, 'CN=Team, OU=Groups, DC=x', 'CN=Outside,OU=Other,DC=x'],
        directreports: ['CN=Nia,OU=Staff,DC=x', `<GUID=${managerGuid}>;CN=Ona,OU=Staff,DC=x`],
      }),
      withBacklinks: true,
    },
    {
      ok: true,
      object: {
        externalId: guid,
        type: 'user',
        dn: 'cn=moved,ou=staff,dc=x',
        attributes: { objectSid: sid, enabled: true },
        memberOf: [
          { by: 'dn', value: 'cn=team,ou=groups,dc=x' },
          { by: 'dn', value: 'cn=outside,ou=other,dc=x' },
        ],
        directReports: [
          { by: 'dn', value: 'cn=nia,ou=staff,dc=x' },
          { by: 'dn', value: 'cn=ona,ou=staff,dc=x' },
        ],
      },
    },
  ],
  [
    'a contact read with its backlinks that belongs to no group and manages nobody (AD omits them: none, not unknown)',
    { ...entry('contact', 'CN=Kit,DC=x', {}, false), withBacklinks: true },
    { ok: true, object: { externalId: guid, type: 'contact', dn: 'cn=kit,dc=x', attributes: {}, memberOf: [], directReports: [] } },
  ],
  [
    'a nested group read with its backlinks: its own members and its groups (groups manage nobody)',
    { ...entry('group', 'CN=Sub,DC=x', { grouptype: ['-2147483646'], member: ['CN=Ann,DC=x'], memberof: ['CN=All,DC=x'] }), withBacklinks: true },
    {
      ok: true,
      object: {
        externalId: guid,
        type: 'group',
        dn: 'cn=sub,dc=x',
        attributes: { objectSid: sid, groupCategory: 'security', groupScope: 'global' },
        members: [{ by: 'dn', value: 'cn=ann,dc=x' }],
        memberOf: [{ by: 'dn', value: 'cn=all,dc=x' }],
      },
    },
  ],
  [
    'backlinks a full read was not asked for are left alone (groups carry members, reports their manager)',
    entry('user', 'CN=Full,DC=x', { memberof: ['CN=All,DC=x'], directreports: ['CN=Nia,DC=x'] }),
    { ok: true, object: { externalId: guid, type: 'user', dn: 'cn=full,dc=x', attributes: { objectSid: sid } } },
  ],
  [
    'an entry without objectGUID',
    { type: 'user', entry: { dn: 'CN=Ghost,DC=x', attributes: {}, buffers: {} } },
    { ok: false, dn: 'cn=ghost,dc=x', reason: 'the entry has no objectGUID (may the service account read it?)' },
  ],
  [
    'an objectGUID of the wrong length',
    { type: 'user', entry: { dn: 'CN=Odd,DC=x', attributes: {}, buffers: { objectguid: [Buffer.alloc(4)] } } },
    { ok: false, dn: 'cn=odd,dc=x', reason: 'objectGUID has 4 bytes, not 16' },
  ],
  [
    'an unparsable DN',
    entry('user', 'CN=a,,DC=x', {}),
    { ok: false, dn: 'CN=a,,DC=x', reason: expect.stringContaining('DN cannot be parsed') as unknown as string },
  ],
];

describe('mapAdEntry', () => {
  it.each(cases)('maps %s', (_name, input, expected) => {
    expect(mapAdEntry(input)).toEqual(expected);
  });

  it('maps a builtin group scope', () => {
    const result = mapAdEntry(entry('group', 'CN=Administrators,CN=Builtin,DC=x', { grouptype: ['-2147483643'] }));
    expect(result.ok && result.object.attributes['groupScope']).toBe('builtinLocal');
  });

  it('gives a renamed or moved object the same id and attributes, another dn', () => {
    const before = mapAdEntry(entry('user', 'CN=Ann,OU=A,DC=x', { samaccountname: ['ann'] }));
    const after = mapAdEntry(entry('user', 'CN=Ann Smith,OU=B,DC=x', { samaccountname: ['ann'] }));
    expect(before.ok && after.ok).toBe(true);
    if (!before.ok || !after.ok) return;
    expect(after.object.externalId).toBe(before.object.externalId);
    expect(after.object.attributes).toEqual(before.object.attributes);
    expect(after.object.dn).not.toBe(before.object.dn);
  });

  it('keeps the content the same whatever order the DC lists proxy addresses in', () => {
    const a = mapAdEntry(entry('user', 'CN=A,DC=x', { proxyaddresses: ['SMTP:a@x', 'smtp:b@x', 'smtp:c@x'] }));
    const b = mapAdEntry(entry('user', 'CN=A,DC=x', { proxyaddresses: ['smtp:c@x', 'SMTP:a@x', 'smtp:b@x'] }));
    expect(a).toEqual(b);
  });
});
