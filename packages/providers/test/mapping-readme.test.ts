import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileMapping, defaultMappings, mapGenericLdapEntry, validateSettings } from '../src/index.ts';

// The README's "Attribute mapping" section: its example is a valid mapping that maps as it says,
// and its table of default mappings names every field of the data the providers use.

const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
const start = readme.indexOf('\n### Attribute mapping\n');
const section = readme.slice(start, readme.indexOf('\n## ', start + 1));

test('the example mapping is valid for a generic LDAP integration and maps as described', () => {
  expect(start).toBeGreaterThan(0);
  const block = /```json\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  const attributeMapping = JSON.parse(block) as unknown;
  const settings = {
    url: 'ldaps://ldap.example.com',
    bindDn: 'cn=reader,dc=example,dc=org',
    users: { baseDns: ['ou=people,dc=example,dc=org'] },
    groups: { baseDns: ['ou=groups,dc=example,dc=org'] },
    attributeMapping,
  };
  const checked = validateSettings('ldap', settings);
  expect(checked.ok ? [] : checked.problems).toEqual([]);
  const mapping = compileMapping((checked as { settings: { attributeMapping: never } }).settings.attributeMapping);
  const entry = {
    type: 'user' as const,
    entry: {
      dn: 'uid=ann,ou=people,dc=example,dc=org',
      attributes: { entryuuid: ['5f0c1a2e-7b3d-1041-8b4a-adc99d069665'], uid: ['ann'], mail: ['Ann@Example.org', 'a2@example.org'], ou: ['R&D', 'Labs'], departmentnumber: ['CC-4711'] },
      buffers: {},
    },
  };
  const result = mapGenericLdapEntry(entry, { memberAttributes: ['member'], mapping });
  expect(result.ok && result.object.attributes).toEqual({
    uid: 'ann',
    mail: 'ann@example.org',
    otherMails: ['a2@example.org'],
    department: 'R&D / Labs',
    extra: { costCenter: '4711', aliases: ['Ann@Example.org', 'a2@example.org'] },
  });
});

test('the table of default mappings names every default field of every kind', () => {
  for (const [kind, table] of Object.entries(defaultMappings)) {
    for (const [type, fields] of Object.entries(table)) {
      const row = section.split('\n').find((line) => line.startsWith(`| \`${kind}\` | ${type} |`));
      expect({ kind, type, row: row !== undefined }).toEqual({ kind, type, row: true });
      for (const field of fields) expect({ kind, type, field: field.field, named: row?.includes(`\`${field.field}\``) }).toEqual({ kind, type, field: field.field, named: true });
    }
  }
});
