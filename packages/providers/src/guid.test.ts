import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { guidBytes, guidWord, isGuid, readGuid, writeGuid } from './guid.ts';

// The definition the hand-written check replaces.
const canonical = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Strings near the canonical form: one character of a GUID replaced, removed or added. */
const nearGuid = fc
  .tuple(fc.uuid(), fc.nat(36), fc.string({ unit: 'binary', minLength: 0, maxLength: 2 }), fc.nat(2))
  .map(([id, at, text, cut]) => id.slice(0, at) + text + id.slice(at + cut));

describe('GUIDs', () => {
  it.each([
    ['3f2504e0-4f89-11d3-9a0c-0305e82c3301', true],
    ['00000000-0000-0000-0000-000000000000', true],
    ['ffffffff-ffff-ffff-ffff-ffffffffffff', true],
    ['3F2504E0-4F89-11D3-9A0C-0305E82C3301', false],
    ['3f2504e0-4f89-11d3-9a0c-0305e82c330', false],
    ['3f2504e0-4f89-11d3-9a0c-0305e82c33011', false],
    ['3f2504e04f89-11d3-9a0c-0305e82c3301-', false],
    ['3f2504e0-4f89-11d3-9a0c-0305e82c330g', false],
    ['3f2504e0-4f89-11d3-9a0c-0305e82c330\u0100', false],
    ['3f2504e0-4f89-11d3-9a0c-0305e82c33\u{1f44d}', false],
    ['{3f2504e0-4f89-11d3-9a0c-0305e82c33}', false],
    ['', false],
  ])('%j is canonical: %s', (text, expected) => {
    expect(isGuid(text)).toBe(expected);
    expect(canonical.test(text)).toBe(expected);
  });

  it('checks as the regular expression does, for any string and for strings one edit from a GUID', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), nearGuid, fc.uuid()), (text) => isGuid(text) === canonical.test(text)),
      { numRuns: 20_000, seed: 20261208 },
    );
  });

  it('packs to the bytes of the dashless hex text, words as parseInt reads them, and reads back the same text', () => {
    fc.assert(
      fc.property(fc.uuid(), fc.nat(8), (id, at) => {
        const packed = new Uint8Array(at + guidBytes + 3).fill(0xee);
        writeGuid(id, packed, at);
        const hex = id.replaceAll('-', '');
        expect(Buffer.from(packed.subarray(at, at + guidBytes)).toString('hex')).toBe(hex);
        // Nothing written outside the 16 bytes.
        expect([...packed.subarray(0, at), ...packed.subarray(at + guidBytes)].every((byte) => byte === 0xee)).toBe(true);
        for (let word = 0; word < 4; word += 1) expect(guidWord(id, word)).toBe(Number.parseInt(hex.slice(8 * word, 8 * word + 8), 16));
        expect(readGuid(packed, at)).toBe(id);
      }),
      { numRuns: 5_000, seed: 20261208 },
    );
    const id = randomUUID();
    const packed = Buffer.alloc(guidBytes);
    writeGuid(id, packed, 0);
    expect(readGuid(packed, 0)).toBe(id);
  });
});
