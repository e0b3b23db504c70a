import { mapGenericLdapEntry } from '../src/ldap-generic/map.ts';
import { compileMapping } from '../src/mapping/engine.ts';
import { validateSettings } from '../src/index.ts';

/**
 * Source attribute names are checked only for their spelling, so a mapping may name `constructor`,
 * `toString` or `hasOwnProperty`: an LDAP entry that lacks such an attribute must map as one that
 * lacks any other, not hand the rule a function from the object's prototype.
 */
describe('mapping rules naming what every JavaScript object has', () => {
  const names = ['constructor', 'toString', 'hasOwnProperty', 'valueOf'];

  it.each(names)('generic LDAP: from "%s" on an entry without it maps to the default, and extras to nothing', (name) => {
    const attributeMapping = { user: { title: { from: name, default: 'none' } }, extra: { user: { [name]: { from: name } } } };
    const settings = validateSettings('ldap', {
      url: 'ldaps://ldap.example.com',
      bindDn: 'cn=reader,dc=example,dc=org',
      users: { baseDns: ['ou=people,dc=example,dc=org'] },
      groups: { baseDns: ['ou=groups,dc=example,dc=org'] },
      attributeMapping,
    });
    expect(settings.ok ? [] : settings.problems).toEqual([]);
    const mapping = compileMapping(attributeMapping);
    const source = { type: 'user' as const, entry: { dn: 'uid=ann,ou=people,dc=example,dc=org', attributes: { entryuuid: ['5f0c1a2e-7b3d-1041-8b4a-adc99d069665'], uid: ['ann'] }, buffers: {} } };
    const result = mapGenericLdapEntry(source, { memberAttributes: ['member'], mapping });
    if (!result.ok) throw new Error(result.reason);
    expect(result.object.attributes).toEqual({ uid: 'ann', title: 'none' });
  });
});
