import { inspect } from 'node:util';
import { createProvider, validateSettings } from '../index.ts';
import { effectiveTlsMode, genericLdapSettingsSchema } from './config.ts';

const valid = {
  url: 'ldaps://ldap.example.com',
  bindDn: 'cn=reader,dc=example,dc=org',
  users: { baseDns: ['ou=people,dc=example,dc=org'] },
  groups: { baseDns: ['ou=groups,dc=example,dc=org'] },
};

function problems(settings: unknown): readonly string[] {
  const result = validateSettings('ldap', settings);
  return result.ok ? [] : result.problems;
}

describe('generic LDAP settings', () => {
  it('fills defaults', () => {
    const settings = genericLdapSettingsSchema.parse(valid);
    expect(settings).toMatchObject({
      tls: { allowInsecure: false },
      users: { objectClasses: ['inetOrgPerson'] },
      groups: { objectClasses: ['groupOfNames', 'groupOfUniqueNames'], memberAttributes: ['member', 'uniqueMember'] },
      pageSize: 1000,
      timeouts: { connectMs: 10_000, operationMs: 120_000, searchTimeLimitSeconds: 600 },
      deltaOverlapSeconds: 300,
    });
    expect(effectiveTlsMode(settings)).toBe('ldaps');
    expect(effectiveTlsMode(genericLdapSettingsSchema.parse({ ...valid, url: 'ldap://ldap.example.com' }))).toBe('starttls');
  });

  it('accepts plain LDAP only with allowInsecure', () => {
    const plain = { ...valid, url: 'ldap://ldap.example.com:389', tls: { mode: 'none' } };
    expect(problems(plain)).toEqual([expect.stringMatching(/^tls\.allowInsecure: .*unencrypted.*allowInsecure: true/)]);
    expect(problems({ ...plain, tls: { mode: 'none', allowInsecure: true } })).toEqual([]);
  });

  it.each([
    ['a URL that is not a URL', { url: 'ldap.example.com' }, /^url: .*not a valid URL/],
    ['an HTTP URL', { url: 'https://ldap.example.com' }, /^url: .*ldap:\/\/ or ldaps:\/\//],
    ['a URL with a base DN', { url: 'ldap://ldap.example.com/dc=example,dc=org' }, /^url: .*only the server/],
    ['a bad bind DN', { bindDn: 'reader' }, /^bindDn: bindDn is not a valid DN/],
    ['an empty base list', { users: { baseDns: [] } }, /^users\.baseDns: .*at least one/],
    ['a bad base DN', { groups: { baseDns: ['ou=groups,,dc=x'] } }, /^groups\.baseDns\[0\]: groups base DN is not a valid DN/],
    ['a bad filter', { users: { baseDns: ['dc=x'], filter: '(&(uid=a)' } }, /^users\.filter: .*unbalanced/],
    ['a filter without parentheses', { groups: { baseDns: ['dc=x'], filter: 'cn=a' } }, /^groups\.filter: .*parentheses/],
    ['ldaps mode with an ldap URL', { url: 'ldap://h', tls: { mode: 'ldaps' } }, /^tls\.mode: .*needs an ldaps:\/\/ URL/],
    ['starttls with an ldaps URL', { tls: { mode: 'starttls' } }, /^tls\.mode: an ldaps:\/\/ URL needs/],
    ['a CA that is not PEM', { tls: { caPem: 'hello' } }, /^tls\.caPem: .*PEM/],
    ['a CA that does not parse', { tls: { caPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----' } }, /^tls\.caPem: .*cannot be read/],
    ['nested base DNs', { users: { baseDns: ['dc=example,dc=org', 'ou=people,dc=example,dc=org'] } }, /^users\.baseDns: .*lies within/],
    ['a page size of 0', { pageSize: 0 }, /^pageSize: pageSize must be at least 1/],
    ['an unknown key', { pagesize: 10 }, /unknown setting "pagesize"/],
    ['a missing bind DN', { bindDn: undefined }, /^bindDn: is required/],
  ])('reports %s clearly', (_name, change, message) => {
    const found = problems({ ...valid, ...change });
    expect(found).toEqual(expect.arrayContaining([expect.stringMatching(message)]));
  });

  it('reports every problem at once', () => {
    const found = problems({
      url: 'http://x',
      bindDn: 'nope',
      tls: { mode: 'none' },
      users: { baseDns: ['bad'], filter: 'uid=a' },
      groups: { baseDns: ['ou=groups,dc=x'], memberAttributes: ['member attr'] },
      pageSize: -1,
    });
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^url:/),
        expect.stringMatching(/^bindDn:/),
        expect.stringMatching(/^tls\.allowInsecure:/),
        expect.stringMatching(/^users\.baseDns\[0\]:/),
        expect.stringMatching(/^users\.filter:/),
        expect.stringMatching(/^groups\.memberAttributes\[0\]:/),
        expect.stringMatching(/^pageSize:/),
      ]),
    );
    expect(found.length).toBeGreaterThanOrEqual(7);
  });

  it('refuses an unknown provider kind', () => {
    const result = validateSettings('nis', valid);
    expect(result.ok).toBe(false);
    expect(result.ok ? [] : result.problems).toEqual([expect.stringMatching(/^unknown provider kind "nis" \(known: ldap\b/)]);
  });

  it('keeps the bind password out of the provider object\'s serialised and inspected forms', () => {
    const provider = createProvider('ldap', valid, 'hunter2-secret');
    expect(JSON.stringify(provider)).not.toContain('hunter2-secret');
    expect(inspect(provider, { depth: 5, showHidden: true })).not.toContain('hunter2-secret');
  });
});
