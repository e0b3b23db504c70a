import { BerWriter } from 'ldapts';
import { ProviderError } from '../errors.ts';
import { type LdapEntry, messageHeader } from './protocol.ts';
import { type EntryReader, RawEntries, collectRangedValues, completeRanges, parseRangeKey } from './search.ts';

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

describe('RawEntries', () => {
  // A SearchResultEntry as sent: message id 7, `uid=a,dc=x`, mail with two values, a binary value.
  function entryBytes(): { buf: Buffer; opStart: number } {
    const w = new BerWriter();
    w.startSequence();
    w.writeInt(7);
    w.startSequence(0x64);
    w.writeString('uid=a,dc=x');
    w.startSequence();
    for (const [type, values] of [['mail', ['a@x', 'b@x']], ['objectGUID', ['\u0001\u0002']]] as const) {
      w.startSequence();
      w.writeString(type);
      w.startSequence(0x31);
      for (const v of values) w.writeString(v);
      w.endSequence();
      w.endSequence();
    }
    w.endSequence();
    w.endSequence();
    w.endSequence();
    const padded = Buffer.concat([Buffer.from([9, 9, 9]), w.buffer, Buffer.from([9])]);
    return { buf: padded, opStart: 3 + messageHeader(w.buffer, 0, w.buffer.length).opStart };
  }
  const context = { url: 'ldap://x:389', operation: 'search' as const };

  test('decodes each kept entry on demand, every time the same', () => {
    const { buf, opStart } = entryBytes();
    const page = new RawEntries(new Set(['objectguid']), context);
    page.add(buf, opStart, buf.length - 1);
    page.add(buf, opStart, buf.length - 1);
    expect(page.length).toBe(2);
    const first = page.entry(0);
    expect(first.dn).toBe('uid=a,dc=x');
    expect(first.attributes['mail']).toEqual(['a@x', 'b@x']);
    expect(first.buffers['objectguid']).toEqual([Buffer.from([1, 2])]);
    expect(page.entry(1)).toEqual(first);
    // The entry ends one byte before the end of the padded buffer.
    expect(page.size(0)).toBe(buf.length - 1 - opStart);
  });

  test('a malformed entry is a typed provider error, an absent one a range error', () => {
    const { buf, opStart } = entryBytes();
    const page = new RawEntries(undefined, context);
    const truncated = Buffer.from(buf.subarray(0, buf.length - 12));
    page.add(truncated, opStart, truncated.length);
    expect(() => page.entry(0)).toThrow(ProviderError);
    expect(() => page.entry(1)).toThrow(RangeError);
  });
});
