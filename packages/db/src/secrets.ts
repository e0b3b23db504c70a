import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { SecretDecryptError, SecretKeyError } from './errors.ts';

/**
 * Secrets at rest: AES-256-GCM under a key ring. The current key encrypts; previous keys only
 * decrypt, so a key can be replaced without losing what it protected (see rotateSecretKeys).
 *
 * Stored ciphertext = base64(version | iv(12) | tag(16) | data). The caller's associated data
 * (for example `integration:<id>`) is authenticated but not stored, so a ciphertext copied onto
 * another record fails to decrypt.
 */

const version = 1;
const ivLength = 12;
const tagLength = 16;
const keyLength = 32;
const headerLength = 1 + ivLength + tagLength;
const keyIdLabel = 'dirsync secret key id v1\0';
const base64Pattern = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * The configured keys, by key id. The object carries only the ids: the key bytes live in a
 * module-private map, so logging or serialising a ring cannot reveal them.
 */
export interface KeyRing {
  /** Id of the key new ciphertexts are made with. */
  readonly currentKeyId: string;
  /** Ids of every key that can decrypt, current first. */
  readonly keyIds: readonly string[];
}

/** A ciphertext and the id of the key that made it, as stored side by side. */
export interface EncryptedSecret {
  keyId: string;
  ciphertext: string;
}

/** Keys as configuration gives them: base64 of 32 random bytes each. */
export interface KeyRingOptions {
  current: string;
  previous?: readonly string[];
}

const ringKeys = new WeakMap<KeyRing, ReadonlyMap<string, Buffer>>();

function parseKey(encoded: string, label: string): Buffer {
  const text = encoded.trim();
  const key = base64Pattern.test(text) ? Buffer.from(text, 'base64') : undefined;
  if (key?.length !== keyLength) {
    // Only the shape is described: the value itself must never reach a message.
    throw new SecretKeyError(
      `the ${label} secret key must be ${keyLength} random bytes encoded in base64 (44 characters); generate one with generateSecretKey()`,
    );
  }
  return key;
}

/** Short stable fingerprint naming a key beside each ciphertext; reveals nothing usable about the key. */
export function secretKeyId(key: Buffer): string {
  return createHash('sha256').update(keyIdLabel).update(key).digest('hex').slice(0, 16);
}

/**
 * Builds a key ring from configuration. Throws {@link SecretKeyError} when a key is not 32 bytes
 * of base64. Previous keys equal to the current one are ignored.
 */
export function createKeyRing(options: KeyRingOptions): KeyRing {
  const current = parseKey(options.current, 'current');
  const keys = new Map<string, Buffer>([[secretKeyId(current), current]]);
  (options.previous ?? []).forEach((encoded, index) => {
    if (encoded.trim() === '') return;
    const key = parseKey(encoded, `previous (#${index + 1})`);
    const id = secretKeyId(key);
    if (!keys.has(id)) keys.set(id, key);
  });
  const ring: KeyRing = Object.freeze({ currentKeyId: secretKeyId(current), keyIds: Object.freeze([...keys.keys()]) });
  ringKeys.set(ring, keys);
  return ring;
}

/** A fresh random key, base64, suitable for `DIRSYNC_SECRET_KEY`. */
export function generateSecretKey(): string {
  return randomBytes(keyLength).toString('base64');
}

function keysOf(ring: KeyRing): ReadonlyMap<string, Buffer> {
  const keys = ringKeys.get(ring);
  if (!keys) throw new SecretKeyError('key ring was not made by createKeyRing()');
  return keys;
}

function associatedData(aad: string): Buffer {
  // The version byte is authenticated too, so a downgraded header cannot pass.
  return Buffer.concat([Buffer.from([version]), Buffer.from(aad, 'utf8')]);
}

/** Encrypts `plaintext` under the ring's current key, bound to `aad` (for example `integration:<id>`). */
export function encryptSecret(ring: KeyRing, plaintext: string, aad: string): EncryptedSecret {
  const key = keysOf(ring).get(ring.currentKeyId);
  if (!key) throw new SecretKeyError('the current secret key is missing from the key ring');
  const iv = randomBytes(ivLength);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: tagLength });
  cipher.setAAD(associatedData(aad));
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const ciphertext = Buffer.concat([Buffer.from([version]), iv, cipher.getAuthTag(), data]).toString('base64');
  return { keyId: ring.currentKeyId, ciphertext };
}

/**
 * Decrypts a stored secret with the key its id names. Throws {@link SecretDecryptError} when that
 * key is not configured, the ciphertext is malformed, or authentication fails (altered data,
 * wrong key, or a ciphertext moved from another record).
 */
export function decryptSecret(ring: KeyRing, secret: EncryptedSecret, aad: string): string {
  const key = keysOf(ring).get(secret.keyId);
  if (!key) {
    throw new SecretDecryptError(
      'unknown_key',
      `secret was encrypted with key ${secret.keyId}, which is not configured (add the old key to the previous secret keys)`,
    );
  }
  const raw = base64Pattern.test(secret.ciphertext) ? Buffer.from(secret.ciphertext, 'base64') : Buffer.alloc(0);
  if (raw.length < headerLength || raw[0] !== version) {
    throw new SecretDecryptError('malformed', 'stored secret is not a ciphertext this version can read');
  }
  const iv = raw.subarray(1, 1 + ivLength);
  const tag = raw.subarray(1 + ivLength, headerLength);
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: tagLength });
  decipher.setAAD(associatedData(aad));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(raw.subarray(headerLength)), decipher.final()]).toString('utf8');
  } catch {
    throw new SecretDecryptError('tampered', 'stored secret failed authentication (altered, or not made for this record)');
  }
}
