import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { eq } from 'drizzle-orm';
import {
  close,
  connect,
  createAccount,
  createIntegration,
  createKeyRing,
  generateSecretKey,
  getIntegration,
  integrations,
  listIntegrations,
  NotFoundError,
  rotateSecretKeys,
  SecretDecryptError,
  setIntegrationSecret,
  withIntegrationSecret,
  type Db,
  type KeyRing,
} from '../src/index.ts';

let database: TestDatabase;
let db: Db;
let accountId: string;

const oldKey = generateSecretKey();
const oldRing = createKeyRing({ current: oldKey });
const newKey = generateSecretKey();
const newRing = createKeyRing({ current: newKey, previous: [oldKey] });

beforeAll(async () => {
  database = await createTestDatabase('integration_secrets');
  db = connect(database.url, { max: 2 });
  accountId = (await createAccount(db, { name: 'acme' })).id;
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

async function rawSecret(id: string) {
  const [row] = await db
    .select({ ciphertext: integrations.secretCiphertext, keyId: integrations.secretKeyId })
    .from(integrations)
    .where(eq(integrations.id, id));
  return row;
}

function reveal(ring: KeyRing, id: string): Promise<string | undefined> {
  return withIntegrationSecret(db, ring, id, async (secret) => secret);
}

async function newIntegration(name: string, plaintext?: string) {
  return createIntegration(
    db,
    { accountId, kind: 'ldap', name, settings: { url: 'ldaps://ldap.example.test' } },
    plaintext === undefined ? undefined : { ring: oldRing, plaintext },
  );
}

test('a secret is stored encrypted and reaches only the callback', async () => {
  const integration = await newIntegration('secret at create', 'Corr3ct-Horse!');
  expect(integration.hasSecret).toBe(true);
  expect(JSON.stringify(integration)).not.toContain('Corr3ct-Horse!');
  expect(JSON.stringify(await listIntegrations(db))).not.toContain('Corr3ct-Horse!');

  const raw = await rawSecret(integration.id);
  expect(raw?.keyId).toBe(oldRing.currentKeyId);
  expect(raw?.ciphertext).toBeTruthy();
  expect(raw?.ciphertext).not.toContain('Corr3ct-Horse!');
  expect(Buffer.from(raw?.ciphertext ?? '', 'base64').toString('latin1')).not.toContain('Corr3ct-Horse!');

  const result = await withIntegrationSecret(db, oldRing, integration.id, async (secret) => `bound with ${secret?.length} chars`);
  expect(result).toBe('bound with 14 chars');
  expect(await reveal(oldRing, integration.id)).toBe('Corr3ct-Horse!');
});

test('set, replace and clear a secret', async () => {
  const integration = await newIntegration('secret later');
  expect(await reveal(oldRing, integration.id)).toBeUndefined();

  await setIntegrationSecret(db, oldRing, integration.id, 'first');
  expect((await getIntegration(db, integration.id))?.hasSecret).toBe(true);
  await setIntegrationSecret(db, oldRing, integration.id, 'second');
  expect(await reveal(oldRing, integration.id)).toBe('second');

  await setIntegrationSecret(db, oldRing, integration.id, null);
  expect(await rawSecret(integration.id)).toEqual({ ciphertext: null, keyId: null });
  expect((await getIntegration(db, integration.id))?.hasSecret).toBe(false);

  const missing = '5d1c2b3a-0000-4000-8000-00000000abcd';
  await expect(setIntegrationSecret(db, oldRing, missing, 'x')).rejects.toThrow(NotFoundError);
  await expect(reveal(oldRing, missing)).rejects.toThrow(NotFoundError);
});

test('a ciphertext copied onto another integration does not decrypt', async () => {
  const source = await newIntegration('source', 'only-for-source');
  const target = await newIntegration('target', 'target-password');
  const raw = await rawSecret(source.id);
  await db
    .update(integrations)
    .set({ secretCiphertext: raw?.ciphertext ?? null, secretKeyId: raw?.keyId ?? null })
    .where(eq(integrations.id, target.id));

  const failure = await reveal(oldRing, target.id).catch((error: unknown) => error);
  expect(failure).toBeInstanceOf(SecretDecryptError);
  expect((failure as SecretDecryptError).reason).toBe('tampered');
  expect((failure as Error).message).toContain(target.id);
  expect((failure as Error).message).not.toContain('only-for-source');
  // Leave the database consistent for the rotation test below.
  await setIntegrationSecret(db, oldRing, target.id, 'target-password');
});

test('rotation re-encrypts every secret under the new key; old ciphertexts still decrypt meanwhile', async () => {
  const a = await newIntegration('rotate a', 'alpha');
  const b = await newIntegration('rotate b', 'bravo');
  const before = await rawSecret(a.id);

  // Before rotation, a ring with the new current key still reads old ciphertexts.
  expect(await reveal(newRing, a.id)).toBe('alpha');
  // A ring without the old key cannot, and says which key is missing.
  const newOnly = createKeyRing({ current: generateSecretKey() });
  await expect(reveal(newOnly, a.id)).rejects.toThrow(oldRing.currentKeyId);

  const withSecrets = (await listIntegrations(db)).filter((i) => i.hasSecret).length;
  expect((await rotateSecretKeys(db, newRing)).reencrypted).toBe(withSecrets);
  expect((await rotateSecretKeys(db, newRing)).reencrypted).toBe(0);

  const after = await rawSecret(a.id);
  expect(after?.keyId).toBe(newRing.currentKeyId);
  expect(after?.ciphertext).not.toBe(before?.ciphertext);
  expect(await reveal(newRing, a.id)).toBe('alpha');
  expect(await reveal(newRing, b.id)).toBe('bravo');
  // After rotation the old key can be dropped from configuration.
  expect(await reveal(createKeyRing({ current: newKey }), b.id)).toBe('bravo');

  // An old ciphertext (restored from a backup, say) still decrypts with a ring holding the old key.
  await db
    .update(integrations)
    .set({ secretCiphertext: before?.ciphertext ?? null, secretKeyId: before?.keyId ?? null })
    .where(eq(integrations.id, a.id));
  expect(await reveal(newRing, a.id)).toBe('alpha');
  expect((await rotateSecretKeys(db, newRing)).reencrypted).toBe(1);
});

test('rotation refuses to change anything when a key is missing', async () => {
  const orphanRing = createKeyRing({ current: generateSecretKey() });
  const orphan = await newIntegration('orphan key');
  await setIntegrationSecret(db, orphanRing, orphan.id, 'lost');
  const untouched = await rawSecret(orphan.id);

  const ringWithoutOrphan = createKeyRing({ current: generateSecretKey(), previous: [newKey, oldKey] });
  await expect(rotateSecretKeys(db, ringWithoutOrphan)).rejects.toThrow(orphan.id);
  expect(await rawSecret(orphan.id)).toEqual(untouched);
  const keyIds = (await db.select({ keyId: integrations.secretKeyId }).from(integrations)).map((r) => r.keyId);
  expect(keyIds).not.toContain(ringWithoutOrphan.currentKeyId);
});
