import { createHash } from 'node:crypto';
import { baseEntriesLdif, ldifEntry, sshaPassword } from './ldif.ts';

describe('ldifEntry', () => {
  it.each([
    ['plain ASCII stays readable', 'Ada Lovelace', 'cn: Ada Lovelace\n'],
    ['non-ASCII is base64', 'Zoë', `cn:: ${Buffer.from('Zoë').toString('base64')}\n`],
    ['a leading space is base64', ' x', `cn:: ${Buffer.from(' x').toString('base64')}\n`],
    ['a leading colon is base64', ':x', `cn:: ${Buffer.from(':x').toString('base64')}\n`],
    ['a leading < is base64', '<x', `cn:: ${Buffer.from('<x').toString('base64')}\n`],
    ['a trailing space is base64', 'x ', `cn:: ${Buffer.from('x ').toString('base64')}\n`],
    ['a newline is base64', 'a\nb', `cn:: ${Buffer.from('a\nb').toString('base64')}\n`],
    ['the empty value stays empty', '', 'cn: \n'],
  ])('%s', (_name, value, line) => {
    expect(ldifEntry('cn=x,dc=example,dc=org', { cn: value })).toBe(`dn: cn=x,dc=example,dc=org\n${line}\n`);
  });

  it('repeats multi-valued attributes and skips undefined ones', () => {
    expect(ldifEntry('cn=x', { mail: ['a@x', 'b@x'], title: undefined })).toBe('dn: cn=x\nmail: a@x\nmail: b@x\n\n');
  });
});

describe('sshaPassword', () => {
  it('is a salted SHA-1 slapd can verify', () => {
    const salt = Buffer.from('0123456789abcdef', 'hex');
    const hashed = sshaPassword('secret', salt);
    expect(hashed.startsWith('{SSHA}')).toBe(true);
    const raw = Buffer.from(hashed.slice(6), 'base64');
    expect(raw.subarray(20)).toEqual(salt);
    expect(raw.subarray(0, 20)).toEqual(createHash('sha1').update('secret').update(salt).digest());
  });
});

describe('baseEntriesLdif', () => {
  it('holds the suffix, both OUs and a reader account without its plaintext password', () => {
    const ldif = baseEntriesLdif('dc=example,dc=org', 'reader-secret');
    expect(ldif).toContain('dn: dc=example,dc=org\n');
    expect(ldif).toContain('dc: example\n');
    expect(ldif).toContain('dn: ou=people,dc=example,dc=org\n');
    expect(ldif).toContain('dn: ou=groups,dc=example,dc=org\n');
    expect(ldif).toContain('dn: cn=reader,dc=example,dc=org\n');
    expect(ldif).toContain('userPassword: {SSHA}');
    expect(ldif).not.toContain('reader-secret');
  });
});
