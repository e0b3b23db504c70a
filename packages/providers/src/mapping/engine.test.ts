import { type AttributeMapping, MAPPING_MAX_REGEX_INPUT, MAPPING_MAX_VALUES, mappingRuleSchema, unsafePatternReason } from '@dirsync/contracts';
import { mapAdEntry } from '../active-directory/map.ts';
import { mapDominoEntry } from '../domino/map.ts';
import { mapEntraEntry } from '../entra-id/map.ts';
import { validateSettings } from '../index.ts';
import { mapGenericLdapEntry } from '../ldap-generic/map.ts';
import type { CanonicalObject, JsonValue, MapResult } from '../types.ts';
import { defaultMappings } from './defaults.ts';
import { applyRule, compileMapping, compileRule, graphSourceValues, ldapSourceValues, mappedSources, withMappedSources } from './engine.ts';

const rule = (r: unknown) => compileRule(mappingRuleSchema.parse(r));

describe('applyRule', () => {
  const cases: [string, unknown, readonly string[] | undefined, JsonValue | undefined][] = [
    ['no transform: the first value', { from: 'mail' }, ['a@x', 'b@x'], 'a@x'],
    ['no transform, no value: left out', { from: 'mail' }, [], undefined],
    ['no transform, absent attribute: left out', { from: 'mail' }, undefined, undefined],
    ['no transform, absent attribute, default', { from: 'mail', default: 'none' }, undefined, 'none'],
    ['empty transform list: every value', { from: 'mail', transform: [] }, ['a@x', 'b@x'], ['a@x', 'b@x']],
    ['empty transform list, one value: still a list', { from: 'mail', transform: [] }, ['a@x'], ['a@x']],
    ['empty transform list, default: a list of the default', { from: 'mail', transform: [], default: 'd' }, [], ['d']],
    ['first', { from: 'cn', transform: [{ op: 'first' }] }, ['Ann', 'A'], 'Ann'],
    ['lower keeps every value', { from: 'mail', transform: [{ op: 'lower' }] }, ['Ann@X.org', 'B@X'], ['ann@x.org', 'b@x']],
    ['lower then first', { from: 'mail', transform: [{ op: 'lower' }, { op: 'first' }] }, ['Ann@X.org', 'B@X'], 'ann@x.org'],
    ['lower of non-ASCII', { from: 'cn', transform: [{ op: 'lower' }, { op: 'first' }] }, ['ÅSA ÖBERG'], 'åsa öberg'],
    ['join', { from: 'ou', transform: [{ op: 'join', separator: ' / ' }] }, ['Sales', 'EMEA'], 'Sales / EMEA'],
    ['join of nothing: the default', { from: 'ou', transform: [{ op: 'join', separator: ',' }], default: '-' }, [], '-'],
    ['join with an empty separator', { from: 'ou', transform: [{ op: 'join', separator: '' }] }, ['a', 'b'], 'ab'],
    ['regex: group 1 by default when the pattern has groups', { from: 'mail', transform: [{ op: 'regex', pattern: '^([^@]+)@' }, { op: 'first' }] }, ['ann@x.org'], 'ann'],
    ['regex: the whole match without groups', { from: 'mail', transform: [{ op: 'regex', pattern: '@.*$' }, { op: 'first' }] }, ['ann@x.org'], '@x.org'],
    ['regex: an explicit group', { from: 'dn', transform: [{ op: 'regex', pattern: '^(cn)=([^,]+)', group: 2 }, { op: 'first' }] }, ['cn=Ann,ou=x'], 'Ann'],
    ['regex: group 0 explicitly', { from: 'v', transform: [{ op: 'regex', pattern: 'a(b)', group: 0 }, { op: 'first' }] }, ['xab'], 'ab'],
    ['regex: values it does not match are dropped', { from: 'mail', transform: [{ op: 'regex', pattern: '^(.+)@corp$' }] }, ['a@corp', 'b@home', 'c@corp'], ['a', 'c']],
    ['regex: nothing matches, default', { from: 'mail', transform: [{ op: 'regex', pattern: '^(.+)@corp$' }, { op: 'first' }], default: 'n/a' }, ['b@home'], 'n/a'],
    ['regex: an optional group that took no part drops the value', { from: 'v', transform: [{ op: 'regex', pattern: '^a(b)?' }] }, ['a', 'ab'], ['b']],
    ['regex: an empty match is no value', { from: 'v', transform: [{ op: 'regex', pattern: 'x*' }, { op: 'first' }] }, ['abc'], undefined],
    ['regex: ignoreCase', { from: 'v', transform: [{ op: 'regex', pattern: '^emp-(\\d+)$', ignoreCase: true }, { op: 'first' }] }, ['EMP-42'], '42'],
    ['regex: case-sensitive by default', { from: 'v', transform: [{ op: 'regex', pattern: '^emp-(\\d+)$' }, { op: 'first' }] }, ['EMP-42'], undefined],
    ['regex then join', { from: 'v', transform: [{ op: 'regex', pattern: '\\d+' }, { op: 'join', separator: '+' }] }, ['a1', 'b', 'c22'], '1+22'],
    ['empty strings are no values', { from: 'v' }, ['', 'x'], undefined],
    ['an empty string among values', { from: 'v', transform: [] }, ['x', '', 'y'], ['x', 'y']],
    ['the replacement character of undecodable bytes is kept as text', { from: 'v' }, ['caf\uFFFD'], 'caf\uFFFD'],
    ['a default equal to nothing-but-given', { from: 'v', default: '' }, [], ''],
  ];
  it.each(cases)('%s', (_name, r, values, expected) => {
    expect(applyRule(rule(r), values)).toEqual(expected);
  });

  it('keeps at most MAPPING_MAX_VALUES values', () => {
    const values = Array.from({ length: MAPPING_MAX_VALUES + 50 }, (_, i) => `v${i}`);
    const result = applyRule(rule({ from: 'v', transform: [] }), values) as string[];
    expect(result).toHaveLength(MAPPING_MAX_VALUES);
    expect(result[0]).toBe('v0');
  });

  it('runs a regular expression over the first MAPPING_MAX_REGEX_INPUT characters only', () => {
    const value = `${'a'.repeat(MAPPING_MAX_REGEX_INPUT)}TAIL`;
    expect(MAPPING_MAX_REGEX_INPUT).toBe(256);
    expect(applyRule(rule({ from: 'v', transform: [{ op: 'regex', pattern: 'TAIL' }, { op: 'first' }] }), [value])).toBeUndefined();
    expect(applyRule(rule({ from: 'v', transform: [{ op: 'regex', pattern: 'a{10}$' }, { op: 'first' }] }), [value])).toBe('a'.repeat(10));
  });

  // The worst accepted shapes: two adjacent long quantifiers over the same characters that then
  // fail, searched from every start. Three such quantifiers over 1,024 characters took 80 s.
  it.each(['\\s*\\s*x', '.*.*=', '\\s{0,256}\\s{0,256}x', '(?:\\s\\s?)*\\s*x'])('bounds the backtracking of %s over a long value', (pattern) => {
    if (unsafePatternReason(pattern) !== undefined) return expect(unsafePatternReason(pattern)).toMatch(/nests quantifiers/);
    const started = process.cpuUsage();
    applyRule(rule({ from: 'v', transform: [{ op: 'regex', pattern }] }), [' '.repeat(100_000)]);
    const used = process.cpuUsage(started);
    // Milliseconds in fact; the margin is for a loaded machine, the failure it guards against takes minutes.
    expect((used.user + used.system) / 1000).toBeLessThan(1000);
  });
});

describe('unsafePatternReason', () => {
  const refused: [string, RegExp][] = [
    ['(a+)+$', /nests quantifiers/],
    ['(a*)*b', /nests quantifiers/],
    ['((ab)+c)*', /nests quantifiers/],
    ['(?:\\d+\\.)+\\d+$', /nests quantifiers/],
    ['(?:\\s\\s?)*\\s*x', /nests quantifiers/],
    ['(a|a)*', /repeats an alternation/],
    ['(x|y){2,}', /repeats an alternation/],
    ['(a)\\1', /backreference/],
    ['(?<n>a)\\k<n>', /backreference/],
    ['(?=a)a', /lookaround/],
    ['(?<!a)b', /lookaround/],
    ['a*b*c*', /more than 2 long quantifiers/],
    ['\\s*\\s{0,100}x+', /more than 2 long quantifiers/],
    ['a{1,5000}', /repetition bound above 256/],
    ['x'.repeat(201), /longer than 200/],
    ['(', /not a valid regular expression/],
    ['[z-a]', /not a valid regular expression/],
    ['a{2,1}', /not a valid regular expression/],
  ];
  it.each(refused)('refuses %s', (pattern, why) => {
    expect(unsafePatternReason(pattern)).toMatch(why);
  });

  const accepted = ['^([^@]+)@', '^CN=([^,]+),', '(ab)?c', '(a|b)c', '(a|b)?', '[(+*)]+x', '\\(a+\\)+', '^emp-(\\d{1,8})$', '(?:ab){3}', '\\p{L}+', '\\u{1F600}'];
  it.each(accepted)('accepts %s', (pattern) => {
    expect(unsafePatternReason(pattern)).toBeUndefined();
  });
});

describe('sources', () => {
  it('LDAP attributes are looked up case-insensitively; binary ones as base64', () => {
    const values = ldapSourceValues({ attributes: { mail: ['a@x'] }, buffers: { objectguid: [Buffer.from([1, 2, 255])] } });
    expect(values('Mail')).toEqual(['a@x']);
    expect(values('objectGUID')).toEqual(['AQL/']);
    expect(values('absent')).toEqual([]);
  });

  it('Graph properties: strings, lists, booleans and numbers as text; null and objects as no value; absent as undefined', () => {
    const values = graphSourceValues({ a: 'x', b: ['y', 'z', 3, null], c: true, d: 7, e: null, f: { x: 1 } });
    expect(values('a')).toEqual(['x']);
    expect(values('b')).toEqual(['y', 'z', '3']);
    expect(values('c')).toEqual(['true']);
    expect(values('d')).toEqual(['7']);
    expect(values('e')).toEqual([]);
    expect(values('f')).toEqual([]);
    expect(values('g')).toBeUndefined();
  });

  it('lists the sources a mapping reads, added once to an attribute list', () => {
    const mapping: AttributeMapping = { user: { mail: { from: 'proxyMail' }, title: { from: 'TITLE' } }, extra: { user: { costCenter: { from: 'costCenter' }, alias: { from: 'proxyMail' } } } };
    expect(mappedSources(mapping, 'user')).toEqual(['TITLE', 'costCenter', 'proxyMail']);
    expect(mappedSources(mapping, 'group')).toEqual([]);
    expect(withMappedSources(['uid', 'title'], mapping, 'user')).toEqual(['uid', 'title', 'costCenter', 'proxyMail']);
  });
});

const uuid = '5f0c1a2e-7b3d-1041-8b4a-adc99d069665';
const ldapUser = (attributes: Record<string, string[]>, buffers: Record<string, Buffer[]> = {}) => ({
  type: 'user' as const,
  entry: { dn: 'uid=ann,ou=people,dc=example,dc=org', attributes: { entryuuid: [uuid], ...attributes }, buffers },
});

function objectOf(result: MapResult): CanonicalObject {
  if (!result.ok) throw new Error(result.reason);
  return result.object;
}

describe('mapping in the providers', () => {
  it('generic LDAP: without a mapping, the output is the default one', () => {
    const source = ldapUser({ uid: ['ann'], mail: ['Ann@Example.org', 'a2@example.org'], cn: ['Ann'] });
    const plain = objectOf(mapGenericLdapEntry(source, { memberAttributes: ['member'] }));
    const empty = objectOf(mapGenericLdapEntry(source, { memberAttributes: ['member'], mapping: compileMapping({}) }));
    expect(empty).toEqual(plain);
    expect(plain.attributes).toEqual({ cn: 'Ann', mail: 'Ann@Example.org', otherMails: ['a2@example.org'], uid: 'ann' });
  });

  it('generic LDAP: overrides replace fields, a rule without value removes its field, extras go under extra', () => {
    const mapping = compileMapping({
      user: {
        mail: { from: 'mail', transform: [{ op: 'lower' }, { op: 'first' }] },
        title: { from: 'businessCategory' },
        department: { from: 'ou', transform: [{ op: 'join', separator: ' / ' }], default: 'none' },
        cn: { from: 'missing' },
      },
      extra: { user: { costCenter: { from: 'departmentNumber', transform: [{ op: 'regex', pattern: '^CC-(\\d+)$' }, { op: 'first' }] }, nothing: { from: 'absent' } } },
    });
    const source = ldapUser({ uid: ['ann'], mail: ['Ann@Example.org'], cn: ['Ann'], title: ['Boss'], businesscategory: ['Engineering'], ou: ['R&D', 'Labs'], departmentnumber: ['CC-4711'] });
    const object = objectOf(mapGenericLdapEntry(source, { memberAttributes: ['member'], mapping }));
    expect(object.attributes).toEqual({
      mail: 'ann@example.org',
      title: 'Engineering',
      department: 'R&D / Labs',
      uid: 'ann',
      extra: { costCenter: '4711' },
    });
    expect(object.externalId).toBe(uuid);
    expect(object.dn).toBe('uid=ann,ou=people,dc=example,dc=org');
  });

  it('generic LDAP: extras without any value leave extra out; the default of an extra applies', () => {
    const none = compileMapping({ extra: { user: { a: { from: 'absent' } } } });
    expect(objectOf(mapGenericLdapEntry(ldapUser({ uid: ['x'] }), { memberAttributes: [], mapping: none })).attributes).toEqual({ uid: 'x' });
    const withDefault = compileMapping({ extra: { user: { a: { from: 'absent', default: 'n/a' } } } });
    expect(objectOf(mapGenericLdapEntry(ldapUser({ uid: ['x'] }), { memberAttributes: [], mapping: withDefault })).attributes).toEqual({ uid: 'x', extra: { a: 'n/a' } });
  });

  it('an entry whose mapped values pass MAPPING_MAX_OBJECT_CHARS is an issue, not stored cut', () => {
    const mapping = compileMapping({ extra: { user: { notes: { from: 'description', transform: [] } } } });
    const values = Array.from({ length: 70 }, (_, i) => `${i}`.padEnd(1000, 'x'));
    const result = mapGenericLdapEntry(ldapUser({ uid: ['x'], description: values }), { memberAttributes: [], mapping });
    expect(result).toEqual({ ok: false, dn: 'uid=ann,ou=people,dc=example,dc=org', externalId: uuid, reason: expect.stringMatching(/^the attribute mapping produced 70070 characters for this entry, more than 65536$/) });
    const fits = mapGenericLdapEntry(ldapUser({ uid: ['x'], description: values.slice(0, 60) }), { memberAttributes: [], mapping });
    expect(fits.ok).toBe(true);
  });

  it('groups keep their members whatever the mapping', () => {
    const mapping = compileMapping({ group: { cn: { from: 'cn', transform: [{ op: 'lower' }, { op: 'first' }] } } });
    const group = { type: 'group' as const, entry: { dn: 'cn=Staff,ou=groups,dc=x', attributes: { entryuuid: [uuid], cn: ['Staff'], member: ['uid=a,dc=x'] }, buffers: {} } };
    const object = objectOf(mapGenericLdapEntry(group, { memberAttributes: ['member'], mapping }));
    expect(object.attributes).toEqual({ cn: 'staff' });
    expect(object.members).toEqual([{ by: 'dn', value: 'uid=a,dc=x' }]);
  });

  it('Active Directory: a binary attribute read as such comes as base64; computed defaults can be overridden', () => {
    const guid = Buffer.from('S8wcnMbyoECBVzsoPQe9YA==', 'base64');
    const source = {
      type: 'user' as const,
      entry: { dn: 'CN=Ann,OU=Staff,DC=example,DC=com', attributes: { samaccountname: ['ann'], useraccountcontrol: ['514'], extensionattribute1: ['Blue'] }, buffers: { objectguid: [guid] } },
    };
    const mapping = compileMapping({ user: { enabled: { from: 'extensionAttribute1' } }, extra: { user: { guid: { from: 'objectGUID' } } } });
    const plain = objectOf(mapAdEntry(source));
    expect(plain.attributes['enabled']).toBe(false);
    const object = objectOf(mapAdEntry(source, mapping));
    expect(object.attributes).toEqual({ sAMAccountName: 'ann', enabled: 'Blue', extra: { guid: 'S8wcnMbyoECBVzsoPQe9YA==' } });
    expect(object.externalId).toBe('9c1ccc4b-f2c6-40a0-8157-3b283d07bd60');
  });

  it('Active Directory: contacts have a section of their own', () => {
    const source = { type: 'contact' as const, entry: { dn: 'CN=C,DC=x', attributes: { mail: ['c@x'], info: ['note'] }, buffers: { objectguid: [Buffer.alloc(16, 1)] } } };
    const object = objectOf(mapAdEntry(source, compileMapping({ contact: { notes: { from: 'info' } }, user: { notes: { from: 'mail' } } })));
    expect(object.attributes).toEqual({ mail: 'c@x', notes: 'note' });
  });

  it('Domino: overrides and extras', () => {
    const source = { type: 'user' as const, entry: { dn: 'CN=Ann/O=Acme', attributes: { dominounid: ['0123456789ABCDEF0123456789ABCDEF'], cn: ['Ann Smith', 'Ann'], uid: ['asmith'], location: ['Berlin'] }, buffers: {} } };
    const object = objectOf(mapDominoEntry(source, ['member'], compileMapping({ user: { displayName: { from: 'cn', transform: [{ op: 'join', separator: '; ' }] } }, extra: { user: { location: { from: 'location' } } } })));
    expect(object.attributes).toEqual({ displayName: 'Ann Smith; Ann', cn: ['Ann Smith', 'Ann'], uid: 'asmith', shortNames: ['asmith'], extra: { location: 'Berlin' } });
  });

  const entraId = '6e5a1b2c-3d4e-4f50-8172-93a4b5c6d7e8';
  it('Entra ID: overrides and extras from Graph properties, booleans as text', () => {
    const mapping = compileMapping({ user: { mail: { from: 'userPrincipalName', transform: [{ op: 'lower' }, { op: 'first' }] } }, extra: { user: { city: { from: 'city' }, enabled: { from: 'accountEnabled' } } } });
    const object = objectOf(mapEntraEntry({ type: 'user', record: { id: entraId, userPrincipalName: 'Ann@Contoso.example', mail: 'x@y', city: 'Oslo', accountEnabled: true } }, mapping));
    expect(object.attributes).toEqual({ userPrincipalName: 'Ann@Contoso.example', mail: 'ann@contoso.example', accountEnabled: true, extra: { city: 'Oslo', enabled: 'true' } });
  });

  it('Entra ID: a partial record keeps what it does not carry and clears what its sources cleared', () => {
    const mapping = compileMapping({ user: { mail: { from: 'otherMail' } }, extra: { user: { city: { from: 'city' }, country: { from: 'country' } } } });
    // Carries the default source of mail, but not the override's: mail stays as stored.
    const a = objectOf(mapEntraEntry({ type: 'user', partial: true, record: { id: entraId, mail: null, city: 'Oslo' } }, mapping));
    expect(a.attributes).toEqual({});
    expect(a.partial).toEqual({ cleared: [] });
    // Carries the override's source (cleared) and every extra's source.
    const b = objectOf(mapEntraEntry({ type: 'user', partial: true, record: { id: entraId, otherMail: null, city: 'Oslo', country: null } }, mapping));
    expect(b.attributes).toEqual({ extra: { city: 'Oslo' } });
    expect(b.partial).toEqual({ cleared: ['mail'] });
  });
});

describe('validation through validateSettings', () => {
  const ldap = {
    url: 'ldaps://ldap.example.com',
    bindDn: 'cn=reader,dc=example,dc=org',
    users: { baseDns: ['ou=people,dc=example,dc=org'] },
    groups: { baseDns: ['ou=groups,dc=example,dc=org'] },
  };
  const ad = { url: 'ldaps://dc.example.com', bindDn: 'CN=reader,DC=example,DC=com', baseDns: ['OU=Staff,DC=example,DC=com'] };
  const entra = { tenantId: 'contoso.onmicrosoft.com', connectorId: '3f1e2d3c-4b5a-4697-8877-665544332211' };

  function problems(kind: string, settings: object, attributeMapping: unknown): readonly string[] {
    const result = validateSettings(kind, { ...settings, attributeMapping });
    return result.ok ? [] : result.problems;
  }

  it('accepts a mapping and keeps it as written', () => {
    const attributeMapping = { user: { mail: { from: 'mail', transform: [{ op: 'lower' }, { op: 'first' }] } }, extra: { group: { owner: { from: 'owner', default: '' } } } };
    const result = validateSettings('ldap', { ...ldap, attributeMapping });
    expect(result.ok && (result.settings as { attributeMapping: unknown }).attributeMapping).toEqual(attributeMapping);
  });

  const cases: [string, string, object, unknown, RegExp][] = [
    ['a structural field', 'ldap', ldap, { user: { externalId: { from: 'uid' } } }, /^attributeMapping\.user\.externalId: "externalId" is structural/],
    ['dn', 'ldap', ldap, { group: { dn: { from: 'cn' } } }, /^attributeMapping\.group\.dn: "dn" is structural/],
    ['members', 'domino', { ...ldap, users: { baseDns: ['O=Acme'] }, groups: { baseDns: ['O=Acme'] } }, { group: { members: { from: 'member' } } }, /^attributeMapping\.group\.members: "members" is structural/],
    ['manager', 'active_directory', ad, { user: { manager: { from: 'manager' } } }, /^attributeMapping\.user\.manager: "manager" is structural/],
    ['extra as a field', 'ldap', ldap, { user: { extra: { from: 'cn' } } }, /^attributeMapping\.user\.extra: "extra" is structural/],
    ['a bad source name', 'ldap', ldap, { user: { mail: { from: 'mail;binary' } } }, /^attributeMapping\.user\.mail\.from: must be a source attribute name/],
    ['an LDAP name with "_"', 'ldap', ldap, { user: { mail: { from: 'my_mail' } } }, /^attributeMapping\.user\.mail\.from: must be an LDAP attribute name/],
    ['a Graph name with "-"', 'entra_id', entra, { user: { mail: { from: 'other-mail' } } }, /^attributeMapping\.user\.mail\.from: must be a Microsoft Graph property name/],
    ['a Graph navigation property', 'entra_id', entra, { extra: { user: { boss: { from: 'manager' } } } }, /^attributeMapping\.extra\.user\.boss\.from: "manager" holds identity or references/],
    ['an AD backlink', 'active_directory', ad, { extra: { user: { groups: { from: 'memberOf' } } } }, /^attributeMapping\.extra\.user\.groups\.from: "memberOf" holds identity/],
    ['no from', 'ldap', ldap, { user: { mail: {} } }, /^attributeMapping\.user\.mail\.from: is required/],
    ['an unknown op', 'ldap', ldap, { user: { mail: { from: 'mail', transform: [{ op: 'upper' }] } } }, /^attributeMapping\.user\.mail\.transform\[0\](\.op)?: op must be/],
    ['an unknown rule key', 'ldap', ldap, { user: { mail: { from: 'mail', to: 'x' } } }, /^attributeMapping\.user\.mail: unknown setting "to"/],
    ['an invalid regex', 'ldap', ldap, { user: { mail: { from: 'mail', transform: [{ op: 'regex', pattern: '([a-' }] } } }, /^attributeMapping\.user\.mail\.transform\[0\]\.pattern: pattern is not a valid regular expression/],
    ['a slow regex', 'ldap', ldap, { user: { mail: { from: 'mail', transform: [{ op: 'regex', pattern: '(a+)+$' }] } } }, /^attributeMapping\.user\.mail\.transform\[0\]\.pattern: pattern nests quantifiers/],
    ['a long regex', 'ldap', ldap, { user: { mail: { from: 'mail', transform: [{ op: 'regex', pattern: 'a'.repeat(300) }] } } }, /pattern is longer than 200 characters/],
    ['a missing group', 'ldap', ldap, { user: { mail: { from: 'mail', transform: [{ op: 'regex', pattern: '(a)', group: 2 }] } } }, /^attributeMapping\.user\.mail\.transform\[0\]\.group: the pattern has 1 capture group\(s\), not 2/],
    ['first after join', 'ldap', ldap, { user: { mail: { from: 'mail', transform: [{ op: 'join', separator: ',' }, { op: 'first' }] } } }, /^attributeMapping\.user\.mail\.transform\[0\]: "join" already leaves one value/],
    ['too many extras', 'ldap', ldap, { extra: { user: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`x${i}`, { from: 'cn' }])) } }, /^attributeMapping\.extra\.user: at most 32 extra attributes/],
    ['a bad field name', 'ldap', ldap, { user: { 'my-field': { from: 'cn' } } }, /^attributeMapping\.user\.my-field: "my-field" is not a field name/],
    ['a long default', 'ldap', ldap, { user: { mail: { from: 'mail', default: 'x'.repeat(2000) } } }, /^attributeMapping\.user\.mail\.default: default must be at most 1024 characters/],
    [
      'too long a $select',
      'entra_id',
      entra,
      { extra: { user: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`x${i}`, { from: `extension_0123456789abcdef0123456789abcdef_attribute${i}` }])) } },
      /^attributeMapping\.user: the user rules read 30 properties \(\d+ characters of \$select\), more than 1000/,
    ],
    ['contacts outside AD', 'ldap', ldap, { contact: { mail: { from: 'mail' } } }, /^attributeMapping\.contact: this kind syncs no contacts/],
    ['an unknown section', 'ldap', ldap, { users: {} }, /^attributeMapping: unknown setting "users"/],
    ['not an object', 'ldap', ldap, 'mail=mail', /^attributeMapping: /],
  ];
  it.each(cases)('refuses %s', (_name, kind, settings, attributeMapping, expected) => {
    const found = problems(kind, settings, attributeMapping);
    expect(found.some((p) => expected.test(p))).toBe(true);
  });
});

describe('default mappings', () => {
  it('name every field a default-mapped object of each kind carries', () => {
    const adUser = objectOf(
      mapAdEntry({
        type: 'user',
        entry: {
          dn: 'CN=Ann,DC=x',
          attributes: Object.fromEntries(
            ['samaccountname', 'userprincipalname', 'displayname', 'givenname', 'sn', 'mail', 'department', 'title', 'company', 'telephonenumber', 'mobile', 'physicaldeliveryofficename', 'employeeid', 'description'].map((n) => [n, ['v']]),
          ),
          buffers: { objectguid: [Buffer.alloc(16, 2)] },
        },
      }),
    );
    const fields = new Set(defaultMappings.active_directory.user.map((f) => f.field));
    for (const key of Object.keys(adUser.attributes)) expect(fields.has(key)).toBe(true);
    const plain = defaultMappings.active_directory.user.filter((f) => 'rule' in f).map((f) => f.field);
    expect(Object.keys(adUser.attributes).sort()).toEqual([...plain].sort());
  });
});
