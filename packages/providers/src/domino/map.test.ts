import type { LdapEntry } from '../ldap/protocol.ts';
import type { MapResult } from '../types.ts';
import { type DominoEntry, mapDominoEntry } from './map.ts';

const unid = '8F3E0C1A2B4D5E6F708192A3B4C5D6E7';
const members = ['member'];

function entry(type: DominoEntry['type'], dn: string, attributes: Record<string, string[]>): DominoEntry {
  const e: LdapEntry = { dn, attributes, buffers: {} };
  return { type, entry: e };
}

const cases: [string, DominoEntry, MapResult][] = [
  [
    'a person with name variants, two short names and mail fields',
    entry('user', 'CN=Ann Smith,OU=Sales,O=Acme', {
      dominounid: [unid.toLowerCase()],
      modifytimestamp: ['20240101000000Z'],
      cn: ['Ann Smith', 'Ann Smith/Sales/Acme', 'asmith'],
      mail: ['ann.smith@acme.example'],
      uid: ['asmith', 'ann'],
      givenname: ['Ann'],
      sn: ['Smith'],
      title: ['Buyer'],
      telephonenumber: ['+1 555 0100'],
      maildomain: ['Acme'],
      mailserver: ['CN=Mail01/O=Acme'],
      mailfile: ['mail/asmith.nsf'],
    }),
    {
      ok: true,
      object: {
        externalId: unid,
        type: 'user',
        dn: 'cn=ann smith,ou=sales,o=acme',
        attributes: {
          displayName: 'Ann Smith',
          cn: ['Ann Smith', 'Ann Smith/Sales/Acme', 'asmith'],
          mail: 'ann.smith@acme.example',
          uid: 'asmith',
          shortNames: ['asmith', 'ann'],
          givenName: 'Ann',
          sn: 'Smith',
          title: 'Buyer',
          telephoneNumber: '+1 555 0100',
          mailDomain: 'Acme',
          mailServer: 'CN=Mail01/O=Acme',
          mailFile: 'mail/asmith.nsf',
        },
      },
    },
  ],
  [
    'a sparse person (absent fields left out, extra mail values kept apart)',
    entry('user', 'CN=Bob,O=Acme', { dominounid: [unid], mail: ['bob@acme.example', 'b@acme.example'] }),
    { ok: true, object: { externalId: unid, type: 'user', dn: 'cn=bob,o=acme', attributes: { mail: 'bob@acme.example', otherMails: ['b@acme.example'] } } },
  ],
  [
    'a group with people and a nested group (duplicates and empty values dropped)',
    entry('group', 'CN=Sales Team,O=Acme', {
      dominounid: [unid],
      cn: ['Sales Team'],
      description: ['Everyone in sales'],
      member: ['CN=Ann Smith,OU=Sales,O=Acme', 'cn=ann smith, ou=sales, o=acme', 'CN=Buyers,O=Acme', ''],
    }),
    {
      ok: true,
      object: {
        externalId: unid,
        type: 'group',
        dn: 'cn=sales team,o=acme',
        attributes: { displayName: 'Sales Team', cn: ['Sales Team'], description: 'Everyone in sales' },
        members: [
          { by: 'dn', value: 'cn=ann smith,ou=sales,o=acme' },
          { by: 'dn', value: 'cn=buyers,o=acme' },
        ],
      },
    },
  ],
  [
    'an empty group',
    entry('group', 'CN=Nobody,O=Acme', { dominounid: [unid], cn: ['Nobody'] }),
    { ok: true, object: { externalId: unid, type: 'group', dn: 'cn=nobody,o=acme', attributes: { displayName: 'Nobody', cn: ['Nobody'] }, members: [] } },
  ],
  [
    'an entry without dominoUNID',
    entry('user', 'CN=Ghost,O=Acme', { cn: ['Ghost'] }),
    { ok: false, dn: 'cn=ghost,o=acme', reason: 'the entry has no dominoUNID (may the service account read it?)' },
  ],
  [
    'a dominoUNID that is not 32 hexadecimal digits',
    entry('user', 'CN=Odd,O=Acme', { dominounid: ['XYZ'] }),
    { ok: false, dn: 'cn=odd,o=acme', externalId: 'XYZ', reason: 'dominoUNID "XYZ" is not 32 hexadecimal digits' },
  ],
];

describe('mapDominoEntry', () => {
  it.each(cases)('maps %s', (_name, input, expected) => {
    expect(mapDominoEntry(input, members)).toEqual(expected);
  });

  it('gives a renamed person the same id', () => {
    const a = mapDominoEntry(entry('user', 'CN=Ann,OU=Sales,O=Acme', { dominounid: [unid] }), members);
    const b = mapDominoEntry(entry('user', 'CN=Ann,OU=Research,O=Acme', { dominounid: [unid] }), members);
    expect(a.ok && b.ok && a.object.externalId === b.object.externalId && a.object.dn !== b.object.dn).toBe(true);
  });
});
