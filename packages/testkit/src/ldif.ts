import { createHash, randomBytes } from 'node:crypto';

/** Attribute values of one LDIF entry; arrays become repeated lines. */
export type LdifAttributes = Readonly<Record<string, string | readonly string[] | undefined>>;

// RFC 2849 SAFE-STRING: no leading space, colon or '<'; only printable ASCII without CR/LF; no
// trailing space (slapadd would strip it). Anything else is written base64-encoded.
const SAFE = /^(?![ :<])[\x20-\x7e]*$/;

function valueLine(name: string, value: string): string {
  if (value === '' || (SAFE.test(value) && !value.endsWith(' '))) return `${name}: ${value}\n`;
  return `${name}:: ${Buffer.from(value, 'utf8').toString('base64')}\n`;
}

/**
 * Renders one entry as LDIF (RFC 2849), followed by the blank separator line. Lines are not
 * folded: slapadd and ldapadd accept long lines, and unfolded output is cheaper to produce.
 */
export function ldifEntry(dn: string, attributes: LdifAttributes): string {
  let out = valueLine('dn', dn);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined) continue;
    if (typeof value === 'string') out += valueLine(name, value);
    else for (const v of value) out += valueLine(name, v);
  }
  return `${out}\n`;
}

/**
 * Salted SHA-1 password hash in the `{SSHA}` form slapd verifies for simple binds, so the LDIF
 * never holds a plaintext password.
 */
export function sshaPassword(password: string, salt: Buffer = randomBytes(8)): string {
  const digest = createHash('sha1').update(password, 'utf8').update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

/** The relative DN of the read-only service account every test directory has. */
export const readerRdn = 'cn=reader';

/** Where generated people and groups live, relative to the suffix. */
export const peopleRdn = 'ou=people';
export const groupsRdn = 'ou=groups';

/**
 * The entries every test directory starts with: the suffix entry (a `dcObject` when the suffix
 * starts with `dc=`, otherwise an `organization`), `ou=people`, `ou=groups`, and the read-only
 * service account `cn=reader,<suffix>`.
 */
export function baseEntriesLdif(suffix: string, readerPassword: string): string {
  const firstRdn = suffix.split(',')[0] ?? suffix;
  const [rawType, ...rest] = firstRdn.split('=');
  const type = (rawType ?? '').trim().toLowerCase();
  const value = rest.join('=').trim();
  const root =
    type === 'dc'
      ? ldifEntry(suffix, { objectClass: ['top', 'dcObject', 'organization'], dc: value, o: value })
      : type === 'o'
        ? ldifEntry(suffix, { objectClass: ['top', 'organization'], o: value })
        : ldifEntry(suffix, { objectClass: ['top', 'organizationalUnit'], ou: value });
  return (
    root +
    ldifEntry(`${peopleRdn},${suffix}`, { objectClass: ['top', 'organizationalUnit'], ou: 'people' }) +
    ldifEntry(`${groupsRdn},${suffix}`, { objectClass: ['top', 'organizationalUnit'], ou: 'groups' }) +
    ldifEntry(`${readerRdn},${suffix}`, {
      objectClass: ['top', 'person'],
      cn: 'reader',
      sn: 'reader',
      description: 'read-only service account',
      userPassword: sshaPassword(readerPassword),
    })
  );
}
