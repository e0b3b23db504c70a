import { BerWriter } from 'ldapts';
import { DirSyncFlags, dirSyncControl, extendedDnControl, parseDirSyncResponse, parseExtendedDn } from './controls.ts';

function encoded(control: { write(writer: BerWriter): void }): Buffer {
  const writer = new BerWriter();
  control.write(writer);
  return writer.buffer;
}

describe('extended DN values', () => {
  it.each([
    ['GUID and SID', '<GUID=BB9D5A7F-DC2C-421A-8DE8-7CF705441896>;<SID=S-1-5-21-1-2-3-1104>;CN=Ann,DC=x', { dn: 'CN=Ann,DC=x', guid: 'bb9d5a7f-dc2c-421a-8de8-7cf705441896', sid: 'S-1-5-21-1-2-3-1104' }],
    ['GUID only (a contact)', '<GUID=bb9d5a7f-dc2c-421a-8de8-7cf705441896>;CN=Kit,DC=x', { dn: 'CN=Kit,DC=x', guid: 'bb9d5a7f-dc2c-421a-8de8-7cf705441896', sid: undefined }],
    ['a plain DN', 'CN=Ann,DC=x', { dn: 'CN=Ann,DC=x', guid: undefined, sid: undefined }],
  ])('splits %s', (_name, value, expected) => {
    expect(parseExtendedDn(value)).toEqual(expected);
  });
});

describe('controls', () => {
  it('encodes the extended DN control asking for the string form', () => {
    // SEQUENCE { OID, FALSE, OCTET STRING { SEQUENCE { INTEGER 1 } } }
    expect(encoded(extendedDnControl()).toString('hex')).toBe(`30${'22'}0416${Buffer.from('1.2.840.113556.1.4.529').toString('hex')}010100040530030201${'01'}`);
  });

  it('encodes a DirSync request and reads a response cookie', () => {
    const request = encoded(dirSyncControl({ flags: DirSyncFlags.objectSecurity, maxBytes: 1024, cookie: Buffer.from('abc') }));
    expect(request.includes(Buffer.from('1.2.840.113556.1.4.841'))).toBe(true);
    expect(request.subarray(-5).toString('hex')).toBe('0403616263');

    const writer = new BerWriter();
    writer.startSequence();
    writer.writeInt(1);
    writer.writeInt(0);
    writer.writeBuffer(Buffer.from('cookie'), 0x04);
    writer.endSequence();
    expect(parseDirSyncResponse(writer.buffer)).toEqual({ more: true, cookie: Buffer.from('cookie') });
    expect(parseDirSyncResponse(undefined)).toBeUndefined();
  });
});
