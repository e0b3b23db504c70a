import { BerWriter } from 'ldapts';
import { MessageFramer, Op, ProtocolDecodeError, decodeEntry, decodeResponse, messageHeader, pagedResultsCookie } from './protocol.ts';

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
    const { messageId, op, opStart } = messageHeader(msg, 0);
    expect(messageId).toBe(7);
    expect(op).toBe(Op.searchEntry);
    const entry = decodeEntry(msg, opStart, undefined);
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
    const entry = decodeEntry(msg, messageHeader(msg, 0).opStart, new Set(['objectguid']));
    expect(entry.buffers['objectguid']).toEqual([guid]);
    expect(entry.buffers['usercertificate;binary']).toEqual([Buffer.from([1, 2])]);
    expect(entry.attributes).toEqual({ cn: ['a'] });
  });

  it('handles long-form lengths (values over 127 and 65535 bytes)', () => {
    const big = 'x'.repeat(70_000);
    const msg = entryMessage(300, 'cn=big', [['description', [big, 'y'.repeat(200)]]]);
    const { messageId, opStart } = messageHeader(msg, 0);
    expect(messageId).toBe(300);
    expect(decodeEntry(msg, opStart, undefined).attributes['description']?.map((v) => v.length)).toEqual([70_000, 200]);
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
    expect(() => collect([Buffer.from('HTTP/1.1 400 Bad Request\r\n')])).toThrow(ProtocolDecodeError);
  });
});
