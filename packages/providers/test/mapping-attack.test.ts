import { mapGenericLdapEntry } from '../src/ldap-generic/map.ts';
import { attributeMappingSchema, MAPPING_MAX_EXTRA, MAPPING_MAX_FIELDS, MAPPING_MAX_VALUES } from '@dirsync/contracts';
import { compileMapping, MAPPING_MAX_MS_PER_RUN, type MappingTimeSpent } from '../src/mapping/engine.ts';
import { ConfigError } from '../src/errors.ts';
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

/**
 * Each accepted pattern is bounded over one value (a few milliseconds at worst), but a mapping
 * may hold 96 rules per object type, each over up to 1,000 values a customer's directory
 * supplies: one entry came to about eight minutes of a worker's CPU, its event loop blocked
 * meanwhile (no lock renewed, no other job served). The regular expressions of one entry have
 * a time budget; past it the entry is an issue of the run, as one producing too much output is.
 */
describe('regular expressions over many values of one entry', () => {
  it('an entry whose rules keep the patterns busy past the budget is an issue, not minutes of CPU', () => {
    const costly = { from: 'description', transform: [{ op: 'regex', pattern: 'a*a*c|a$' }] };
    const extra = Object.fromEntries(Array.from({ length: MAPPING_MAX_EXTRA }, (_, i) => [`x${i}`, costly]));
    const attributeMapping = { extra: { user: extra } };
    const settings = validateSettings('ldap', {
      url: 'ldaps://ldap.example.com',
      bindDn: 'cn=reader,dc=example,dc=org',
      users: { baseDns: ['ou=people,dc=example,dc=org'] },
      groups: { baseDns: ['ou=groups,dc=example,dc=org'] },
      attributeMapping,
    });
    expect(settings.ok ? [] : settings.problems).toEqual([]);
    const description = Array.from({ length: MAPPING_MAX_VALUES }, (_, i) => `${'a'.repeat(250)}${String(i).padStart(6, '0')}a`.slice(-256));
    const source = {
      type: 'user' as const,
      entry: { dn: 'uid=ann,ou=people,dc=example,dc=org', attributes: { entryuuid: ['5f0c1a2e-7b3d-1041-8b4a-adc99d069665'], uid: ['ann'], description }, buffers: {} },
    };
    const result = mapGenericLdapEntry(source, { memberAttributes: ['member'], mapping: compileMapping(attributeMappingSchema.parse(attributeMapping)) });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toMatch(/regular expressions ran more than/);
  });

  it('the budget counts every transform: lower-casing 1,000 values of 16 KiB in each of 96 rules is an issue too', () => {
    const heavy = { from: 'description', transform: [...Array.from({ length: 7 }, () => ({ op: 'lower' })), { op: 'first' }] };
    const extra = Object.fromEntries(Array.from({ length: MAPPING_MAX_EXTRA }, (_, i) => [`x${i}`, heavy]));
    const fields = Object.fromEntries(Array.from({ length: MAPPING_MAX_FIELDS }, (_, i) => [`f${i}`, heavy]));
    const attributeMapping = attributeMappingSchema.parse({ user: fields, extra: { user: extra } });
    // The first value is short, so the output stays small: only the work is large.
    const description = ['A', ...Array.from({ length: MAPPING_MAX_VALUES - 1 }, (_, i) => `${'Å'.repeat(16 * 1024 - 6)}${String(i).padStart(6, '0')}`)];
    const source = {
      type: 'user' as const,
      entry: { dn: 'uid=ann,ou=people,dc=example,dc=org', attributes: { entryuuid: ['5f0c1a2e-7b3d-1041-8b4a-adc99d069665'], uid: ['ann'], description }, buffers: {} },
    };
    const result = mapGenericLdapEntry(source, { memberAttributes: ['member'], mapping: compileMapping(attributeMapping) });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toMatch(/transforms/);
  });

  it('the same rules over a few values map as usual', () => {
    const costly = { from: 'description', transform: [{ op: 'regex', pattern: 'a*a*c|a$' }, { op: 'first' }] };
    const attributeMapping = { extra: { user: { x0: costly, x1: costly } } };
    const source = {
      type: 'user' as const,
      entry: { dn: 'uid=ann,ou=people,dc=example,dc=org', attributes: { entryuuid: ['5f0c1a2e-7b3d-1041-8b4a-adc99d069665'], uid: ['ann'], description: ['aaaa', 'bca'] }, buffers: {} },
    };
    const result = mapGenericLdapEntry(source, { memberAttributes: ['member'], mapping: compileMapping(attributeMappingSchema.parse(attributeMapping)) });
    if (!result.ok) throw new Error(result.reason);
    expect(result.object.attributes['extra']).toEqual({ x0: 'a', x1: 'a' });
  });
});

/**
 * The bind account may read attributes holding passwords or keys (an OpenLDAP reader with access
 * to userPassword, an AD account allowed to read LAPS passwords). A mapping copying one would
 * store it with the object and serve it to every API key of the account, the feed and webhooks.
 */
describe('mapping rules reading passwords or keys', () => {
  const ldap = {
    url: 'ldaps://ldap.example.com',
    bindDn: 'cn=reader,dc=example,dc=org',
    users: { baseDns: ['ou=people,dc=example,dc=org'] },
    groups: { baseDns: ['ou=groups,dc=example,dc=org'] },
  };
  const ad = { url: 'ldaps://dc.example.com', bindDn: 'CN=reader,DC=example,DC=com', baseDns: ['OU=Staff,DC=example,DC=com'] };
  const cases: [string, string, object, object][] = [
    ['ldap', 'userPassword', ldap, { extra: { user: { pw: { from: 'userPassword' } } } }],
    ['ldap', 'USERPASSWORD', ldap, { user: { title: { from: 'USERPASSWORD' } } }],
    ['ldap', 'sambaNTPassword', ldap, { extra: { user: { h: { from: 'sambaNTPassword' } } } }],
    ['active_directory', 'ms-Mcs-AdmPwd', ad, { extra: { user: { laps: { from: 'ms-Mcs-AdmPwd' } } } }],
    ['active_directory', 'msLAPS-Password', ad, { extra: { user: { laps: { from: 'msLAPS-Password' } } } }],
    ['active_directory', 'unicodePwd', ad, { extra: { group: { p: { from: 'unicodePwd' } } } }],
  ];
  it.each(cases)('%s: a rule from %s is refused at its path', (kind, from, settings, attributeMapping) => {
    const result = validateSettings(kind, { ...settings, attributeMapping });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.some((p) => p.includes(`from: "${from}" holds passwords or keys`))).toBe(true);
  });
});

/**
 * The per-entry budget bounds one entry; a directory whose every entry spends most of it would
 * still hold a shared worker for hours. The run's mapping time is summed, and past its budget the
 * run fails as a configuration problem (not retried). Starting the tally near the budget keeps the
 * test fast: the charge itself is what is under test.
 */
describe('the attribute mapping time of a whole run', () => {
  const attributeMapping = { user: { title: { from: 'title', transform: [{ op: 'first' as const }, { op: 'lower' as const }] } } };
  const source = { type: 'user' as const, entry: { dn: 'uid=ann,ou=people,dc=example,dc=org', attributes: { entryuuid: ['5f0c1a2e-7b3d-1041-8b4a-adc99d069665'], uid: ['ann'], title: ['Engineer'] }, buffers: {} } };

  it('each entry mapped with overrides is charged to the compiled mapping, shared by its object types', () => {
    const mapping = compileMapping({ ...attributeMapping, group: { description: { from: 'info' } } });
    expect(mapping.user.spent).toBeDefined();
    expect(mapping.user.spent).toBe(mapping.group.spent);
    const result = mapGenericLdapEntry(source, { memberAttributes: ['member'], mapping });
    expect(result.ok && result.object.attributes['title']).toBe('engineer');
    expect(mapping.user.spent?.ms).toBeGreaterThan(0);
  });

  it('past the run budget the next entry fails the run with a ConfigError naming the mapping', () => {
    const mapping = compileMapping(attributeMapping);
    const spent = mapping.user.spent as MappingTimeSpent;
    spent.ms = MAPPING_MAX_MS_PER_RUN;
    let thrown: unknown;
    try {
      mapGenericLdapEntry(source, { memberAttributes: ['member'], mapping });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).retryable).toBe(false);
    expect((thrown as Error).message).toMatch(/settings\.attributeMapping/);
  });

  it('two runs compile two mappings: one run\'s time is not charged to the next', () => {
    const first = compileMapping(attributeMapping);
    (first.user.spent as MappingTimeSpent).ms = MAPPING_MAX_MS_PER_RUN;
    const second = compileMapping(attributeMapping);
    expect(second.user.spent?.ms).toBe(0);
    expect(mapGenericLdapEntry(source, { memberAttributes: ['member'], mapping: second }).ok).toBe(true);
  });
});
