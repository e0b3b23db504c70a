import { DnSyntaxError, isDnWithin, isValidDn, normalizeDn, parseDn } from './dn.ts';

describe('normalizeDn', () => {
  it.each([
    ['lower-cases a plain DN', 'uid=Ann,ou=People,dc=Example,dc=org', 'uid=ann,ou=people,dc=example,dc=org'],
    ['drops spaces around separators', 'uid=ann, ou=people , dc=example', 'uid=ann,ou=people,dc=example'],
    ['drops spaces around =', 'cn = Ann Smith,dc=x', 'cn=ann smith,dc=x'],
    ['keeps inner spaces', 'cn=Ann  Smith,dc=x', 'cn=ann  smith,dc=x'],
    ['unescapes and re-escapes a comma', 'cn=Smith\\, Ann,dc=x', 'cn=smith\\, ann,dc=x'],
    ['decodes hex escapes', 'cn=Zo\\C3\\AB,dc=x', 'cn=zoë,dc=x'],
    ['sorts multi-valued RDNs', 'uid=b+cn=A,dc=x', 'cn=a+uid=b,dc=x'],
    ['accepts quoted values', 'cn="Smith, Ann",dc=x', 'cn=smith\\, ann,dc=x'],
    ['accepts ; as separator', 'cn=a;dc=x', 'cn=a,dc=x'],
    ['keeps hex-encoded values', 'cn=#04024869,dc=x', 'cn=#04024869,dc=x'],
    ['keeps an escaped leading space', 'cn=\\ a,dc=x', 'cn=\\ a,dc=x'],
    ['lower-cases attribute types', 'CN=A,DC=X', 'cn=a,dc=x'],
    ['accepts OIDs as types', '2.5.4.3=A,dc=x', '2.5.4.3=a,dc=x'],
  ])('%s', (_name, input, expected) => {
    expect(normalizeDn(input)).toBe(expected);
  });

  it.each(['cn=a,', ',cn=a', 'cn=a,,dc=x', 'garbage', 'cn=a, ,dc=x'])('rejects %j', (input) => {
    expect(() => normalizeDn(input)).toThrow(DnSyntaxError);
  });

  it('keeps the root DN empty', () => {
    expect(normalizeDn('')).toBe('');
  });

  it('gives the same form for equivalent spellings', () => {
    expect(normalizeDn('CN=Smith\\, Ann , OU=People')).toBe(normalizeDn('cn="smith, ann",ou=people'));
  });
});

describe('parseDn', () => {
  it('returns RDNs from the entry to the root', () => {
    expect(parseDn('cn=a+uid=b,dc=x')).toEqual([
      [
        { type: 'cn', value: 'a' },
        { type: 'uid', value: 'b' },
      ],
      [{ type: 'dc', value: 'x' }],
    ]);
  });

  it('treats the empty string as the root DN', () => {
    expect(parseDn('')).toEqual([]);
  });

  it.each([
    ['no =', 'people'],
    ['an empty type', '=a,dc=x'],
    ['a bad type', 'c n=a'],
    ['a trailing separator', 'cn=a,'],
    ['an empty RDN', 'cn=a,,dc=x'],
    ['a dangling escape', 'cn=a\\'],
    ['an unescaped quote', 'cn=a"b'],
    ['an unterminated quote', 'cn="a'],
  ])('rejects %s', (_name, input) => {
    expect(() => parseDn(input)).toThrow(DnSyntaxError);
    expect(isValidDn(input)).toBe(false);
  });
});

describe('isDnWithin', () => {
  it.each([
    ['uid=a,ou=people,dc=x', 'ou=people,dc=x', true],
    ['ou=people,dc=x', 'ou=people,dc=x', true],
    ['uid=a,ou=people2,dc=x', 'ou=people,dc=x', false],
    ['uid=a,xou=people,dc=x', 'ou=people,dc=x', false],
    ['anything', '', true],
  ])('%s within %s: %s', (dn, base, expected) => {
    expect(isDnWithin(dn, base)).toBe(expected);
  });
});
