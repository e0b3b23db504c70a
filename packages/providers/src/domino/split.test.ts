import { parseFilter } from '../ldap/filter.ts';
import type { LdapEntry } from '../ldap/protocol.ts';
import { describeSplit, emptySplitReport, escapeAssertion, foldValue, nextCharacters, prefixFilter, remainderFilter, splitAttributes } from './split.ts';

const entry = (cn: string[]): LdapEntry => ({ dn: 'cn=x,o=acme', attributes: { cn }, buffers: {} });

describe('foldValue', () => {
  it.each([
    ['Åsa Öberg', 'åsa öberg'],
    ['Project  name\t1', 'project name 1'],
    ['ＡＢＣ', 'abc'],
    ['山田太郎', '山田太郎'],
    ['DL-App-1', 'dl-app-1'],
  ])('%j folds to %j', (value, folded) => {
    expect(foldValue(value)).toBe(folded);
  });
});

describe('nextCharacters', () => {
  it.each<[string, string[][], string, string[]]>([
    ['kanji first characters', [['山田太郎'], ['佐藤花子'], ['山本健']], '', ['山', '佐']],
    ['kanji after a kanji prefix', [['山田太郎'], ['山本健'], ['山田花子']], '山', ['田', '本']],
    ['a hyphen', [['DL-app-1'], ['DL-app-2'], ['dl-ops']], 'dl', ['-']],
    ['digits after a hyphen, case folded', [['DL-app-1'], ['DL-APP-2'], ['dl-app-10']], 'dl-app-', ['1', '2']],
    ['a space', [['Project name 1'], ['Project name 2']], 'project name', [' ']],
    ['runs of spaces as one', [['Project  name 1']], 'project ', ['n']],
    ['a value equal to the prefix adds nothing', [['Ada'], ['Ada Lovelace']], 'ada', [' ']],
    ['other values of a multi-valued name are ignored', [['Ann Smith', 'asmith', 'Ann Smith/Sales/Acme']], 'ann smith', ['/']],
    ['astral code points stay whole', [['𠮷野家'], ['𠮷田']], '𠮷', ['野', '田']],
    ['filter specials are characters like others', [['a*b'], ['a(b'], ['a\\b']], 'a', ['*', '(', '\\']],
    ['nothing when no value starts with the prefix', [['Zoë']], 'a', []],
  ])('%s', (_name, values, prefix, expected) => {
    expect(nextCharacters(values.map(entry), 'cn', prefix)).toEqual(expected);
  });

  it('reads the attribute case-insensitively (entries carry lower-cased names)', () => {
    const e: LdapEntry = { dn: 'x', attributes: { dominounid: ['8F3E'] }, buffers: {} };
    expect(nextCharacters([e], 'dominoUNID', '')).toEqual(['8']);
  });
});

describe('filters', () => {
  it('has no filter for the empty prefix (the whole search)', () => {
    expect(prefixFilter('cn', '')).toBeUndefined();
  });

  it.each([
    ['山田', '(cn=山田*)'],
    ['a*b', '(cn=a\\2ab*)'],
    ['a(b)', '(cn=a\\28b\\29*)'],
    ['a\\b', '(cn=a\\5cb*)'],
    ['project name ', '(cn=project name *)'],
    ['a\u0000b', '(cn=a\\00b*)'],
    ['a\u0007', '(cn=a\\07*)'],
  ])('prefix %j is %j, a valid filter', (prefix, text) => {
    const filter = prefixFilter('cn', prefix);
    expect(filter).toBe(text);
    expect(() => parseFilter(text)).not.toThrow();
  });

  it.each<[string, string[], string | undefined]>([
    ['', [], undefined],
    ['', ['山'], '(!(cn=山*))'],
    ['dl', ['-', 'a', '*'], '(!(|(cn=dl-*)(cn=dla*)(cn=dl\\2a*)))'],
    ['project name', [' '], '(!(cn=project name *))'],
  ])('the remainder of %j without %j is %j', (prefix, characters, text) => {
    const filter = remainderFilter('cn', prefix, characters);
    expect(filter).toBe(text);
    if (filter) expect(() => parseFilter(filter)).not.toThrow();
  });

  it('escapes every RFC 4515 special and control character, leaving Unicode as it is', () => {
    expect(escapeAssertion('*()\\\u0000\u001f\u007f é山-')).toBe('\\2a\\28\\29\\5c\\00\\1f\\7f é山-');
  });
});

describe('splitAttributes', () => {
  it.each([
    ['cn', ['cn', 'dominoUNID']],
    ['sn', ['sn', 'dominoUNID']],
    ['dominounid', ['dominounid']],
  ])('%s then %j', (configured, expected) => {
    expect(splitAttributes(configured)).toEqual(expected);
  });
});

describe('describeSplit', () => {
  it('names the cap, the first characters and the searches', () => {
    const report = { ...emptySplitReport(), cap: 200, searches: 40, capped: 5, parts: 35, depth: 3, firstAttribute: 'cn', first: ['山', '佐'] };
    expect(describeSplit(report)).toBe('answers capped at 200 entries; split by the first characters of cn ("山", "佐") and the rest, 35 parts, prefixes up to 3 characters, 40 searches (5 cut short)');
  });

  it('shortens a long list of characters and names the fallback', () => {
    const report = { ...emptySplitReport(), cap: 5, searches: 90, capped: 12, parts: 78, depth: 9, fallbacks: 2, firstAttribute: 'cn', first: [...'abcdefghij'] };
    expect(describeSplit(report)).toMatch(/\("a", "b", "c", "d", "e", "f", "g", "h", … \(10\)\) and the rest, .*; 2 parts of identical cn split by dominoUNID$/);
  });

  it('says when nothing was cut short', () => {
    expect(describeSplit({ ...emptySplitReport(), searches: 1 })).toBe('one answer, 1 search');
  });
});
