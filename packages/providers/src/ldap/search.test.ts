import type { LdapEntry } from './protocol.ts';
import { type EntryReader, collectRangedValues, completeRanges, parseRangeKey } from './search.ts';

const dn = 'cn=big,ou=groups,dc=x';
const members = Array.from({ length: 3210 }, (_, i) => `uid=u${i},ou=people,dc=x`);

/** Answers like Active Directory: at most `cap` values per answer, the last range ends in `*`. */
function adLike(cap: number, requests: string[]): EntryReader {
  return async (attributes) => {
    const [description] = attributes;
    requests.push(description as string);
    const m = /^member;range=(\d+)-(\d+|\*)$/i.exec(description as string);
    if (!m) return { dn, attributes: { member: members }, buffers: {} };
    const low = Number(m[1]);
    const wanted = m[2] === '*' ? Infinity : Number(m[2]);
    const high = Math.min(wanted, low + cap - 1, members.length - 1);
    const last = high >= members.length - 1;
    const key = `member;range=${low}-${last ? '*' : high}`;
    return { dn, attributes: { [key]: members.slice(low, high + 1) }, buffers: {} };
  };
}

describe('range retrieval', () => {
  it('follows the ranges the server caps until *', async () => {
    const requests: string[] = [];
    expect(await collectRangedValues(adLike(1500, requests), 'member')).toEqual(members);
    expect(requests).toEqual(['member;range=0-*', 'member;range=1500-*', 'member;range=3000-*']);
  });

  it('asks for explicit ranges when a range size is set', async () => {
    const requests: string[] = [];
    expect(await collectRangedValues(adLike(1500, requests), 'member', { rangeSize: 1000 })).toEqual(members);
    expect(requests).toEqual(['member;range=0-999', 'member;range=1000-1999', 'member;range=2000-2999', 'member;range=3000-3999']);
  });

  it('falls back to one plain read when the server does not do ranges', async () => {
    const requests: string[] = [];
    const plainOnly: EntryReader = async (attributes) => {
      requests.push(attributes[0] as string);
      return attributes[0] === 'member' ? { dn, attributes: { member: members }, buffers: {} } : { dn, attributes: {}, buffers: {} };
    };
    expect(await collectRangedValues(plainOnly, 'member')).toEqual(members);
    expect(requests).toEqual(['member;range=0-*', 'member']);
  });

  it('completes an entry that came back with its first range only', async () => {
    const entry: LdapEntry = { dn, attributes: { cn: ['big'], 'member;range=0-1499': members.slice(0, 1500) }, buffers: {} };
    const completed = await completeRanges(adLike(1500, []), entry, ['member']);
    expect(completed.attributes).toEqual({ cn: ['big'], member: members });
  });

  it('leaves entries without ranged keys untouched', async () => {
    const entry: LdapEntry = { dn, attributes: { member: ['a'] }, buffers: {} };
    expect(await completeRanges(adLike(1500, []), entry, ['member'])).toBe(entry);
  });

  it('parses range keys', () => {
    expect(parseRangeKey('member;range=0-1499')).toEqual({ attribute: 'member', low: 0, high: 1499 });
    expect(parseRangeKey('member;range=1500-*')).toEqual({ attribute: 'member', low: 1500, high: undefined });
    expect(parseRangeKey('member')).toBeUndefined();
  });
});
