import { BerWriter } from 'ldapts';
import { LdapProtocolError } from './errors.ts';
import { MessageFramer, Op, decodeEntry, decodeResponse, entryLength, maxAttributesPerEntry, messageHeader, pagedResultsCookie } from './protocol.ts';

function entryMessage(id: number, dn: string, attributes: [string, (string | Buffer)[]][]): Buffer {
  const w = new BerWriter();
  w.startSequence();
  w.writeInt(id);
  w.startSequence(Op.searchEntry);
  w.writeString(dn);
  w.startSequence();
  for (const [type, values] of attributes) {
    w.startSequence();
    w.writeString(type);
    w.startSequence(0x31);
    for (const v of values) {
      if (Buffer.isBuffer(v)) w.writeBuffer(v, 0x04);
      else w.writeString(v);
    }
    w.endSequence();
    w.endSequence();
  }
  w.endSequence();
  w.endSequence();
  w.endSequence();
  return w.buffer;
}

function doneMessage(id: number, code: number, options: { matched?: string; diag?: string; referrals?: string[]; cookie?: Buffer } = {}): Buffer {
  const w = new BerWriter();
  w.startSequence();
  w.writeInt(id);
  w.startSequence(Op.searchDone);
  w.writeEnumeration(code);
  w.writeString(options.matched ?? '');
  w.writeString(options.diag ?? '');
  if (options.referrals) {
    w.startSequence(0xa3);
    for (const r of options.referrals) w.writeString(r);
    w.endSequence();
  }
  w.endSequence();
  if (options.cookie !== undefined) {
    const value = new BerWriter();
    value.startSequence();
    value.writeInt(0);
    value.writeBuffer(options.cookie, 0x04);
    value.endSequence();
    w.startSequence(0xa0);
    w.startSequence();
    w.writeString('1.2.840.113556.1.4.319');
    w.writeBuffer(value.buffer, 0x04);
    w.endSequence();
    w.endSequence();
  }
  w.endSequence();
  return w.buffer;
}

function collect(chunks: Buffer[]): Buffer[] {
  const framer = new MessageFramer();
  const out: Buffer[] = [];
  for (const chunk of chunks) framer.push(chunk, (buf, start, end) => out.push(Buffer.from(buf.subarray(start, end))));
  return out;
}

describe('decodeEntry', () => {
  it('decodes the DN and lower-cased attributes, every value as an array', () => {
    const msg = entryMessage(7, 'uid=Zoë,ou=people,dc=x', [
      ['entryUUID', ['0a1b']],
      ['mail', ['a@x', 'b@x']],
      ['cn', []],
    ]);
    const { messageId, op, opStart } = messageHeader(msg, 0, msg.length);
    expect(messageId).toBe(7);
    expect(op).toBe(Op.searchEntry);
    const entry = decodeEntry(msg, opStart, msg.length, undefined);
    expect(entry.dn).toBe('uid=Zoë,ou=people,dc=x');
    expect(entry.attributes).toEqual({ entryuuid: ['0a1b'], mail: ['a@x', 'b@x'], cn: [] });
    expect(entry.buffers).toEqual({});
  });

  it('returns requested binary attributes and ;binary options as Buffers', () => {
    const guid = Buffer.from([0xff, 0x00, 0x80, 0x7f]);
    const msg = entryMessage(2, 'cn=a', [
      ['objectGUID', [guid]],
      ['userCertificate;binary', [Buffer.from([1, 2])]],
      ['cn', ['a']],
    ]);
    const entry = decodeEntry(msg, messageHeader(msg, 0, msg.length).opStart, msg.length, new Set(['objectguid']));
    expect(entry.buffers['objectguid']).toEqual([guid]);
    expect(entry.buffers['usercertificate;binary']).toEqual([Buffer.from([1, 2])]);
    expect(entry.attributes).toEqual({ cn: ['a'] });
  });

  it('reads up to the attribute limit and refuses an entry with more attributes', () => {
    const attributes = (n: number): [string, string[]][] => Array.from({ length: n }, (_, i) => [`a${i}`, []]);
    const atLimit = entryMessage(3, 'cn=a', attributes(maxAttributesPerEntry));
    expect(Object.keys(decodeEntry(atLimit, messageHeader(atLimit, 0, atLimit.length).opStart, atLimit.length, undefined).attributes)).toHaveLength(maxAttributesPerEntry);
    const over = entryMessage(3, 'cn=a', attributes(maxAttributesPerEntry + 1));
    const error = (() => {
      try {
        decodeEntry(over, messageHeader(over, 0, over.length).opStart, over.length, undefined);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(LdapProtocolError);
    expect(error).toMatchObject({ kind: 'limit', message: `an entry has more than ${maxAttributesPerEntry} attributes, over the limit this client reads` });
  });

  it('handles long-form lengths (values over 127 and 65535 bytes)', () => {
    const big = 'x'.repeat(70_000);
    const msg = entryMessage(300, 'cn=big', [['description', [big, 'y'.repeat(200)]]]);
    const { messageId, opStart } = messageHeader(msg, 0, msg.length);
    expect(messageId).toBe(300);
    expect(decodeEntry(msg, opStart, msg.length, undefined).attributes['description']?.map((v) => v.length)).toEqual([70_000, 200]);
  });
});

describe('decodeResponse', () => {
  it('reads the result code, matched DN, diagnostic and referrals', () => {
    const msg = doneMessage(5, 32, { matched: 'dc=x', diag: 'no such base', referrals: ['ldap://other/dc=x'] });
    const response = decodeResponse(msg, 0, msg.length);
    expect(response).toMatchObject({
      messageId: 5,
      op: Op.searchDone,
      result: { resultCode: 32, matchedDn: 'dc=x', diagnosticMessage: 'no such base', referrals: ['ldap://other/dc=x'] },
      controls: [],
    });
  });

  it('reads response controls and the paged results cookie', () => {
    const msg = doneMessage(6, 0, { cookie: Buffer.from('abc') });
    const response = decodeResponse(msg, 0, msg.length);
    expect(response.controls).toHaveLength(1);
    expect(response.controls[0]?.oid).toBe('1.2.840.113556.1.4.319');
    expect(pagedResultsCookie(response.controls[0]?.value)).toEqual(Buffer.from('abc'));
  });

  it('reports an empty cookie as the last page', () => {
    const msg = doneMessage(6, 0, { cookie: Buffer.alloc(0) });
    expect(pagedResultsCookie(decodeResponse(msg, 0, msg.length).controls[0]?.value)).toBeUndefined();
  });
});

describe('MessageFramer', () => {
  const messages = [
    entryMessage(2, 'cn=a', [['cn', ['a']]]),
    entryMessage(2, 'cn=b', [['description', ['z'.repeat(100_000)]]]),
    doneMessage(2, 0),
  ];
  const stream = Buffer.concat(messages);

  it('yields whole messages from one chunk', () => {
    expect(collect([stream])).toEqual(messages);
  });

  it('reassembles messages split at every byte', () => {
    const bytes = [...stream.subarray(0, 400)].map((b) => Buffer.from([b]));
    const rest = stream.subarray(400);
    expect(collect([...bytes, rest])).toEqual(messages);
  });

  it('reassembles messages split across uneven chunks', () => {
    const chunks: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 4093) chunks.push(stream.subarray(i, i + 4093));
    expect(collect(chunks)).toEqual(messages);
  });

  it('rejects bytes that are not an LDAP message', () => {
    expect(() => collect([Buffer.from('HTTP/1.1 400 Bad Request\r\n')])).toThrow(LdapProtocolError);
  });

  it('refuses a header claiming more than the limit before buffering any of it', () => {
    const framer = new MessageFramer(1024 * 1024);
    // SEQUENCE claiming 2 GiB, then the first bytes of its contents.
    const header = Buffer.from([0x30, 0x84, 0x80, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01]);
    expect(() => framer.push(header, () => undefined)).toThrow(expect.objectContaining({ kind: 'limit' }));
    expect(framer.pendingBytes).toBe(0);
  });

  it('accepts a message of exactly the limit, split in chunks', () => {
    const msg = entryMessage(3, 'cn=big', [['description', ['q'.repeat(5000)]]]);
    expect(collect([msg.subarray(0, 10), msg.subarray(10)])).toEqual([msg]);
    const framer = new MessageFramer(msg.length);
    const out: number[] = [];
    framer.push(msg.subarray(0, 10), () => out.push(1));
    expect(framer.pendingBytes).toBe(10);
    framer.push(msg.subarray(10), (_b, start, end) => out.push(end - start));
    expect(out).toEqual([msg.length]);
    expect(() => new MessageFramer(msg.length - 1).push(msg, () => undefined)).toThrow(LdapProtocolError);
  });

  it('refuses the indefinite length form and lengths over four bytes', () => {
    expect(() => collect([Buffer.from([0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00])])).toThrow(/length form/);
    expect(() => collect([Buffer.from([0x30, 0x85, 0, 0, 0, 0, 9])])).toThrow(/length form/);
  });
});

/** Offset of the first occurrence of `needle` in `haystack`, which must exist. */
function offsetOf(haystack: Buffer, needle: string): number {
  const at = haystack.indexOf(needle);
  if (at < 0) throw new Error(`${needle} not found`);
  return at;
}

describe('bounds', () => {
  // The attack measured against the unbounded decoder: a value's length runs past its entry, into
  // the next message, and another entry's bytes are stored as this user's cn.
  it('refuses a value length that runs into the next message', () => {
    const first = entryMessage(2, 'uid=alice,dc=x', [['cn', ['Alice']]]);
    const second = entryMessage(2, 'uid=bob,dc=x', [['userPassword', ['MARKER-secret']]]);
    const stream = Buffer.concat([first, second]);
    // The length byte of "Alice" is the byte before it; claim the value runs 60 bytes on.
    const valueAt = offsetOf(stream, 'Alice');
    stream[valueAt - 1] = 60;
    const { opStart } = messageHeader(stream, 0, first.length);
    expect(() => decodeEntry(stream, opStart, first.length, undefined)).toThrow(LdapProtocolError);
    expect(() => decodeEntry(stream, opStart, first.length, undefined)).toThrow(/enclosing element/);
  });

  it('refuses an attribute or attribute list longer than its entry, and an entry longer than its message', () => {
    const msg = entryMessage(2, 'uid=a,dc=x', [['cn', ['a']], ['sn', ['b']]]);
    const padded = Buffer.concat([msg, Buffer.from('MARKER'.repeat(20))]);
    const { opStart } = messageHeader(msg, 0, msg.length);
    // The attribute list is the SEQUENCE after the DN.
    const listAt = offsetOf(padded, 'uid=a,dc=x') + 'uid=a,dc=x'.length;
    expect(padded[listAt]).toBe(0x30);
    const longer = Buffer.from(padded);
    longer[listAt + 1] = (longer[listAt + 1] as number) + 30;
    expect(() => decodeEntry(longer, opStart, msg.length, undefined)).toThrow(LdapProtocolError);
    const entryTooLong = Buffer.from(padded);
    entryTooLong[opStart + 1] = (entryTooLong[opStart + 1] as number) + 10;
    expect(() => entryLength(entryTooLong, opStart, msg.length)).toThrow(LdapProtocolError);
    expect(() => messageHeader(entryTooLong, 0, msg.length)).toThrow(LdapProtocolError);
  });

  it('refuses wrong tags where the protocol fixes them', () => {
    const msg = entryMessage(2, 'uid=a,dc=x', [['cn', ['a']]]);
    const { opStart } = messageHeader(msg, 0, msg.length);
    const setAt = offsetOf(msg, 'cn') + 2;
    expect(msg[setAt]).toBe(0x31);
    const wrongSet = Buffer.from(msg);
    wrongSet[setAt] = 0x30;
    expect(() => decodeEntry(wrongSet, opStart, msg.length, undefined)).toThrow(/expected an attribute value set/);
    const wrongId = Buffer.from(msg);
    wrongId[2] = 0x04;
    expect(() => messageHeader(wrongId, 0, msg.length)).toThrow(/message id/);
  });

  it('refuses a truncated entry and bytes after its last attribute', () => {
    const msg = entryMessage(2, 'uid=a,dc=x', [['cn', ['abc']]]);
    const { opStart } = messageHeader(msg, 0, msg.length);
    expect(() => decodeEntry(msg.subarray(0, msg.length - 2), opStart, msg.length - 2, undefined)).toThrow(LdapProtocolError);
  });

  it('refuses result elements running past the operation and malformed controls', () => {
    const msg = doneMessage(5, 0, { diag: 'fine', cookie: Buffer.from('abc') });
    const diagAt = offsetOf(msg, 'fine');
    const longDiag = Buffer.from(msg);
    longDiag[diagAt - 1] = 200;
    expect(() => decodeResponse(longDiag, 0, msg.length)).toThrow(LdapProtocolError);
    const cookieAt = offsetOf(msg, 'abc');
    const longCookie = Buffer.from(msg);
    longCookie[cookieAt - 1] = 9;
    // The control value stays encoded: its bytes are checked where the cookie is read.
    const value = decodeResponse(longCookie, 0, msg.length).controls[0]?.value;
    expect(() => pagedResultsCookie(value)).toThrow(LdapProtocolError);
    // [0] Controls, SEQUENCE, OCTET STRING, each with a one-byte length, then the OID.
    const controlsAt = offsetOf(msg, '1.2.840') - 6;
    expect(msg[controlsAt]).toBe(0xa0);
    const longControls = Buffer.from(msg);
    longControls[controlsAt + 1] = (longControls[controlsAt + 1] as number) + 1;
    expect(() => decodeResponse(longControls, 0, msg.length)).toThrow(LdapProtocolError);
  });

  it('a malformed paged results value is an error, never the last page', () => {
    expect(() => pagedResultsCookie(Buffer.from([0x30, 0x05, 0x02, 0x01, 0x00, 0x04, 0x09, 0x41]))).toThrow(LdapProtocolError);
    expect(() => pagedResultsCookie(Buffer.from([0x04, 0x00]))).toThrow(LdapProtocolError);
    expect(pagedResultsCookie(undefined)).toBeUndefined();
  });

  it('refuses negative and oversized message ids and result codes', () => {
    const msg = doneMessage(5, 0);
    const negative = Buffer.from(msg);
    negative[4] = 0xff;
    expect(() => decodeResponse(negative, 0, msg.length)).toThrow(/negative/);
  });
});
