import { applyFields, fieldId, fieldsOf, readFields } from '../src/settings-fields.ts';

describe('settings forms', () => {
  test('every kind has a form; an unknown kind has none', () => {
    for (const kind of ['ldap', 'active_directory', 'domino', 'entra_id']) expect(fieldsOf(kind).length).toBeGreaterThan(0);
    expect(fieldsOf('nope')).toEqual([]);
  });

  test('stored LDAP settings read into form values and back without losing hidden settings', () => {
    const stored = {
      url: 'ldaps://ldap.example.com',
      bindDn: 'cn=reader,dc=example,dc=com',
      users: { baseDns: ['ou=people,dc=example,dc=com', 'ou=staff,dc=example,dc=com'], objectClasses: ['inetOrgPerson'] },
      groups: { baseDns: ['ou=groups,dc=example,dc=com'] },
      tls: { allowInsecure: false },
      pageSize: 250,
    };
    const values = readFields('ldap', stored);
    expect(values['users.baseDns']).toBe('ou=people,dc=example,dc=com\nou=staff,dc=example,dc=com');
    expect(values['tls.mode']).toBe('');
    expect(values['tls.allowInsecure']).toBe(false);
    const edited = applyFields('ldap', stored, { ...values, 'users.filter': ' (department=Sales) ', 'groups.baseDns': 'ou=groups,dc=example,dc=com\n\n  ou=teams,dc=example,dc=com  ' });
    expect(edited).toEqual({
      url: 'ldaps://ldap.example.com',
      bindDn: 'cn=reader,dc=example,dc=com',
      users: { baseDns: ['ou=people,dc=example,dc=com', 'ou=staff,dc=example,dc=com'], objectClasses: ['inetOrgPerson'], filter: '(department=Sales)' },
      groups: { baseDns: ['ou=groups,dc=example,dc=com', 'ou=teams,dc=example,dc=com'] },
      pageSize: 250,
    });
    // The stored settings are left as they were.
    expect(stored.users).not.toHaveProperty('filter');
  });

  test('an empty form still sends its lists, so their problems land at their fields', () => {
    expect(applyFields('ldap', {}, readFields('ldap', {}))).toEqual({ users: { baseDns: [] }, groups: { baseDns: [] } });
  });

  test('Active Directory object types default to all; Domino writes the root as ""', () => {
    expect(readFields('active_directory', {})['objectTypes']).toEqual(['user', 'group', 'contact']);
    const ad = applyFields('active_directory', {}, { ...readFields('active_directory', {}), objectTypes: ['user'], baseDns: 'DC=corp,DC=example,DC=com', 'tls.mode': 'ldaps' });
    expect(ad).toEqual({ baseDns: ['DC=corp,DC=example,DC=com'], objectTypes: ['user'], tls: { mode: 'ldaps' } });
    const domino = applyFields('domino', {}, { ...readFields('domino', {}), 'users.baseDns': 'O=Example', 'groups.baseDns': '""' });
    expect(domino).toEqual({ users: { baseDns: ['O=Example'] }, groups: { baseDns: [''] } });
    expect(readFields('domino', domino)['groups.baseDns']).toBe('""');
  });

  test('Entra ID settings keep a legacy app while the form edits tenant and connector', () => {
    const legacy = { tenantId: 'contoso.onmicrosoft.com', legacyApp: { clientId: '41111111-2222-3333-4444-555555555555' } };
    expect(applyFields('entra_id', legacy, readFields('entra_id', legacy))).toEqual(legacy);
    expect(applyFields('entra_id', {}, { tenantId: 'fabrikam.onmicrosoft.com', connectorId: '0c8b5568-73f4-4abb-bced-760db1f19606' })).toEqual({
      tenantId: 'fabrikam.onmicrosoft.com',
      connectorId: '0c8b5568-73f4-4abb-bced-760db1f19606',
    });
  });

  test('field ids are valid, distinct HTML ids', () => {
    expect(fieldId('settings.users.baseDns')).toBe('field-settings-users-baseDns');
    const ids = fieldsOf('ldap').map((f) => fieldId(`settings.${f.path}`));
    expect(new Set(ids).size).toBe(ids.length);
  });
});
