import type { MapResult } from '../types.ts';
import { type EntraEntry, mapEntraEntry } from './map.ts';

const id = '6E5A1B2C-3D4E-4F50-8172-93A4B5C6D7E8';
const lower = id.toLowerCase();

const cases: [string, EntraEntry, MapResult][] = [
  [
    'a full user (id lower-cased, lists sorted, nulls left out)',
    {
      type: 'user',
      record: {
        id,
        userPrincipalName: 'ann@contoso.example',
        mail: 'ann@contoso.example',
        displayName: 'Ann Smith',
        givenName: 'Ann',
        surname: 'Smith',
        accountEnabled: false,
        department: 'Sales',
        jobTitle: null,
        proxyAddresses: ['smtp:a.smith@contoso.example', 'SMTP:ann@contoso.example'],
        onPremisesImmutableId: null,
        employeeId: '1001',
        '@odata.type': '#microsoft.graph.user',
      },
    },
    {
      ok: true,
      object: {
        externalId: lower,
        type: 'user',
        attributes: {
          userPrincipalName: 'ann@contoso.example',
          mail: 'ann@contoso.example',
          displayName: 'Ann Smith',
          givenName: 'Ann',
          surname: 'Smith',
          accountEnabled: false,
          department: 'Sales',
          proxyAddresses: ['SMTP:ann@contoso.example', 'smtp:a.smith@contoso.example'],
          employeeId: '1001',
        },
      },
    },
  ],
  [
    'a group with its complete member list (deduplicated, lower-cased)',
    {
      type: 'group',
      record: { id, displayName: 'Staff', mailEnabled: false, securityEnabled: true, groupTypes: [], description: '' },
      members: ['AAAAAAAA-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-000000000001', 'bbbbbbbb-0000-4000-8000-000000000002'],
    },
    {
      ok: true,
      object: {
        externalId: lower,
        type: 'group',
        attributes: { displayName: 'Staff', mailEnabled: false, securityEnabled: true },
        members: [
          { by: 'externalId', value: 'aaaaaaaa-0000-4000-8000-000000000001' },
          { by: 'externalId', value: 'bbbbbbbb-0000-4000-8000-000000000002' },
        ],
      },
    },
  ],
  [
    'a group whose membership arrives as changes (no member list)',
    { type: 'group', record: { id, displayName: 'M365', groupTypes: ['Unified'], mail: 'm365@contoso.example' } },
    { ok: true, object: { externalId: lower, type: 'group', attributes: { displayName: 'M365', groupTypes: ['Unified'], mail: 'm365@contoso.example' } } },
  ],
  [
    'a partial user from a delta link (absent kept, null, empty string and empty list cleared)',
    {
      type: 'user',
      partial: true,
      record: { id, displayName: 'Ann Jones', jobTitle: null, department: '', proxyAddresses: [], accountEnabled: true },
    },
    {
      ok: true,
      object: {
        externalId: lower,
        type: 'user',
        attributes: { displayName: 'Ann Jones', accountEnabled: true },
        partial: { cleared: ['department', 'jobTitle', 'proxyAddresses'] },
      },
    },
  ],
  [
    'a partial user listed again in its round',
    { type: 'user', partial: true, repeat: true, record: { id, surname: 'Jones' } },
    { ok: true, object: { externalId: lower, type: 'user', attributes: { surname: 'Jones' }, partial: { cleared: [] }, repeat: true } },
  ],
  [
    'a partial group (properties only; membership comes as changes)',
    { type: 'group', partial: true, record: { id, description: null, displayName: 'Staff' } },
    { ok: true, object: { externalId: lower, type: 'group', attributes: { displayName: 'Staff' }, partial: { cleared: ['description'] } } },
  ],
  [
    'a whole user: null and absent alike are not set, and nothing is flagged',
    { type: 'user', record: { id, displayName: 'Ann', jobTitle: null } },
    { ok: true, object: { externalId: lower, type: 'user', attributes: { displayName: 'Ann' } } },
  ],
  ['a record without id', { type: 'user', record: { displayName: 'x' } }, { ok: false, reason: 'the user has no valid object id (got null)' }],
  ['a record whose id is not a GUID', { type: 'group', record: { id: 'abc' } }, { ok: false, externalId: 'abc', reason: 'the group has no valid object id (got "abc")' }],
  ['a property of the wrong type', { type: 'user', record: { id, accountEnabled: 'yes' } }, { ok: false, externalId: lower, reason: 'user property accountEnabled is not a boolean' }],
  ['a list that is not a list of strings', { type: 'user', record: { id, proxyAddresses: [1] } }, { ok: false, externalId: lower, reason: 'user property proxyAddresses is not a list of strings' }],
];

describe('mapEntraEntry', () => {
  it.each(cases)('maps %s', (_name, input, expected) => {
    expect(mapEntraEntry(input)).toEqual(expected);
  });

  it('gives the same content for the same user whatever the order of proxyAddresses', () => {
    const a = mapEntraEntry({ type: 'user', record: { id, proxyAddresses: ['b', 'a'] } });
    const b = mapEntraEntry({ type: 'user', record: { id, proxyAddresses: ['a', 'b'] } });
    expect(a).toEqual(b);
  });

  it('gives attributes with their keys in sorted order, whatever order the record has them in', () => {
    // The pipeline's canonical JSON then serialises the object as it is, without a sorted copy.
    const full = (cases[0] as [string, EntraEntry, MapResult])[1];
    const reversed = { ...full, record: Object.fromEntries(Object.entries(full.record).reverse()) } as EntraEntry;
    const group: EntraEntry = { type: 'group', record: { securityEnabled: true, mailNickname: 'g', mail: 'g@x', groupTypes: ['Unified'], displayName: 'G', description: 'd', mailEnabled: true, id } };
    for (const entry of [full, reversed, group]) {
      const result = mapEntraEntry(entry);
      if (!result.ok) throw new Error(result.reason);
      const keys = Object.keys(result.object.attributes);
      expect(keys).toEqual([...keys].sort());
      expect(keys.length).toBeGreaterThanOrEqual(7);
    }
  });
});
