import { inspect } from 'node:util';
import { SecretDecryptError, SecretKeyError } from './errors.ts';
import { createKeyRing, decryptSecret, encryptSecret, generateSecretKey } from './secrets.ts';

const aad = 'integration:7b0c2f4e-0000-4000-8000-000000000001';

function flipByte(ciphertext: string, index: number): string {
  const raw = Buffer.from(ciphertext, 'base64');
  raw[index] = (raw[index] ?? 0) ^ 0x01;
  return raw.toString('base64');
}

function decryptFailure(run: () => unknown): SecretDecryptError {
  try {
    run();
  } catch (error) {
    if (error instanceof SecretDecryptError) return error;
    throw error;
  }
  throw new Error('expected decryption to fail');
}

describe('secret encryption', () => {
  const ring = createKeyRing({ current: generateSecretKey() });

  test('round trip, including non-ASCII and empty plaintexts', () => {
    for (const plaintext of ['s3cr3t!', 'pässwörd ✓', '']) {
      const sealed = encryptSecret(ring, plaintext, aad);
      expect(sealed.keyId).toBe(ring.currentKeyId);
      expect(sealed.ciphertext).not.toContain(plaintext || '\u0000');
      expect(decryptSecret(ring, sealed, aad)).toBe(plaintext);
    }
  });

  test('every encryption uses a fresh IV', () => {
    const a = encryptSecret(ring, 'same', aad);
    const b = encryptSecret(ring, 'same', aad);
    expect(a.ciphertext).not.toBe(b.ciphertext);
  });

  test('flipping any byte of the stored ciphertext is detected', () => {
    const sealed = encryptSecret(ring, 'service-account-password', aad);
    const length = Buffer.from(sealed.ciphertext, 'base64').length;
    // Version byte, IV, tag and data: every region is covered.
    for (const index of [0, 1, 12, 13, 28, 29, length - 1]) {
      const failure = decryptFailure(() => decryptSecret(ring, { ...sealed, ciphertext: flipByte(sealed.ciphertext, index) }, aad));
      expect(['tampered', 'malformed']).toContain(failure.reason);
    }
  });

  test('a ciphertext moved to another record (other associated data) fails', () => {
    const sealed = encryptSecret(ring, 'password', aad);
    const failure = decryptFailure(() => decryptSecret(ring, sealed, 'integration:someone-else'));
    expect(failure.reason).toBe('tampered');
    expect(failure.retryable).toBe(false);
  });

  test('truncated or non-base64 ciphertexts are malformed', () => {
    const sealed = encryptSecret(ring, 'password', aad);
    expect(decryptFailure(() => decryptSecret(ring, { ...sealed, ciphertext: 'AQID' }, aad)).reason).toBe('malformed');
    expect(decryptFailure(() => decryptSecret(ring, { ...sealed, ciphertext: 'not base64!' }, aad)).reason).toBe('malformed');
  });

  test('an unknown key id is refused with its id named', () => {
    const other = createKeyRing({ current: generateSecretKey() });
    const sealed = encryptSecret(other, 'password', aad);
    const failure = decryptFailure(() => decryptSecret(ring, sealed, aad));
    expect(failure.reason).toBe('unknown_key');
    expect(failure.message).toContain(other.currentKeyId);
  });

  test('a forged key id pointing at the wrong key fails authentication', () => {
    const previous = generateSecretKey();
    const rotated = createKeyRing({ current: generateSecretKey(), previous: [previous] });
    const sealed = encryptSecret(rotated, 'password', aad);
    const otherId = rotated.keyIds[1] ?? '';
    expect(decryptFailure(() => decryptSecret(rotated, { ...sealed, keyId: otherId }, aad)).reason).toBe('tampered');
  });
});

describe('key ring', () => {
  test('rotation: the new ring encrypts with the new key and still decrypts the old', () => {
    const oldKey = generateSecretKey();
    const before = createKeyRing({ current: oldKey });
    const sealed = encryptSecret(before, 'password', aad);

    const after = createKeyRing({ current: generateSecretKey(), previous: [oldKey] });
    expect(after.currentKeyId).not.toBe(before.currentKeyId);
    expect(after.keyIds).toEqual([after.currentKeyId, before.currentKeyId]);
    expect(decryptSecret(after, sealed, aad)).toBe('password');
    expect(encryptSecret(after, 'password', aad).keyId).toBe(after.currentKeyId);
  });

  test('key ids are stable fingerprints of the key', () => {
    const key = generateSecretKey();
    const a = createKeyRing({ current: key });
    const b = createKeyRing({ current: ` ${key}\n`, previous: [key, ''] });
    expect(a.currentKeyId).toMatch(/^[0-9a-f]{16}$/);
    expect(b.currentKeyId).toBe(a.currentKeyId);
    expect(b.keyIds).toEqual([a.currentKeyId]);
  });

  test('invalid keys are refused without echoing them', () => {
    const short = Buffer.alloc(16, 7).toString('base64');
    for (const bad of [short, 'not-base64-at-all-but-long-enough-to-matter!!', '']) {
      let failure: unknown;
      try {
        createKeyRing({ current: bad });
      } catch (error) {
        failure = error;
      }
      expect(failure).toBeInstanceOf(SecretKeyError);
      if (bad) expect((failure as Error).message).not.toContain(bad);
    }
    expect(() => createKeyRing({ current: generateSecretKey(), previous: [short] })).toThrow(/previous \(#1\)/);
  });

  test('a ring shows only key ids when logged or serialised', () => {
    const key = generateSecretKey();
    const ring = createKeyRing({ current: key });
    const hex = Buffer.from(key, 'base64').toString('hex');
    for (const shown of [JSON.stringify(ring), inspect(ring, { depth: 5, showHidden: true })]) {
      expect(shown).not.toContain(key);
      expect(shown).not.toContain(hex);
      expect(shown).toContain(ring.currentKeyId);
    }
  });
});
