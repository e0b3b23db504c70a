import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import {
  apiKeys,
  authenticateApiKey,
  checkDatabaseReady,
  close,
  connect,
  createAccount,
  createApiKey,
  createIntegration,
  createKeyRing,
  deleteSecretCandidate,
  generateSecretKey,
  InvalidInputError,
  listApiKeys,
  NotFoundError,
  parseApiScopes,
  revokeApiKey,
  scopeAllows,
  storeSecretCandidate,
  withSecretCandidate,
  type Db,
} from '../src/index.ts';

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase('api_keys');
  db = connect(database.url, { max: 2 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

test('a key is shown once, stored only as a hash, and authenticates until revoked', async () => {
  const account = await createAccount(db, { name: 'acme' });
  const { apiKey, token } = await createApiKey(db, { accountId: account.id, name: 'billing', scopes: ['read', 'sync'], createdBy: 'cli' });
  expect(token).toMatch(/^dsk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  expect(apiKey).toMatchObject({ accountId: account.id, name: 'billing', scopes: ['read', 'sync'], revokedAt: null, lastUsedAt: null });
  expect(JSON.stringify(apiKey)).not.toContain(token.slice(-20));

  const [stored] = await db.select().from(apiKeys);
  expect(stored?.tokenHash).toMatch(/^[0-9a-f]{64}$/);
  expect(JSON.stringify(stored)).not.toContain(token.slice(-20));

  const found = await authenticateApiKey(db, token);
  expect(found?.id).toBe(apiKey.id);
  expect((await listApiKeys(db, { accountId: account.id }))[0]?.lastUsedAt).toBeInstanceOf(Date);

  // Same lookup id, another secret: refused.
  const forged = `${token.slice(0, 21)}${'A'.repeat(43)}`;
  expect(await authenticateApiKey(db, forged)).toBeUndefined();
  expect(await authenticateApiKey(db, 'dsk_nothing')).toBeUndefined();
  expect(await authenticateApiKey(db, '')).toBeUndefined();

  const revoked = await revokeApiKey(db, apiKey.id);
  expect(revoked.revokedAt).toBeInstanceOf(Date);
  expect(await authenticateApiKey(db, token)).toBeUndefined();
  expect((await revokeApiKey(db, apiKey.id)).revokedAt?.getTime()).toBe(revoked.revokedAt?.getTime());
});

test('keys are listed per account or for the platform', async () => {
  const a = await createAccount(db, { name: 'list-a' });
  const b = await createAccount(db, { name: 'list-b' });
  await createApiKey(db, { accountId: a.id, name: 'a1', scopes: ['read'] });
  await createApiKey(db, { accountId: b.id, name: 'b1', scopes: ['admin'] });
  await createApiKey(db, { accountId: null, name: 'ops', scopes: ['admin'] });
  expect((await listApiKeys(db, { accountId: a.id })).map((k) => k.name)).toEqual(['a1']);
  expect((await listApiKeys(db, { accountId: null })).map((k) => k.name)).toEqual(['ops']);
  expect((await listApiKeys(db)).map((k) => k.name)).toEqual(expect.arrayContaining(['a1', 'b1', 'ops']));
  expect(await listApiKeys(db, { accountId: 'nope' })).toEqual([]);
});

test('bad input is refused with typed errors', async () => {
  await expect(createApiKey(db, { accountId: '00000000-0000-4000-8000-000000000000', name: 'x', scopes: ['read'] })).rejects.toBeInstanceOf(NotFoundError);
  await expect(createApiKey(db, { accountId: null, name: ' ', scopes: ['read'] })).rejects.toBeInstanceOf(InvalidInputError);
  await expect(createApiKey(db, { accountId: null, name: 'x', scopes: [] })).rejects.toBeInstanceOf(InvalidInputError);
  await expect(revokeApiKey(db, 'nope')).rejects.toBeInstanceOf(NotFoundError);
  expect(parseApiScopes(' read, sync,read')).toEqual(['read', 'sync']);
  expect(() => parseApiScopes('read,write,root')).toThrow(/unknown scope "write", "root"/);
  expect(() => parseApiScopes(',')).toThrow(InvalidInputError);
  expect(scopeAllows(['admin'], 'sync')).toBe(true);
  expect(scopeAllows(['read'], 'sync')).toBe(false);
});

test('a secret candidate opens only for its integration and is gone once deleted', async () => {
  const ring = createKeyRing({ current: generateSecretKey() });
  const account = await createAccount(db, { name: 'cand' });
  const one = await createIntegration(db, { accountId: account.id, kind: 'ldap', name: 'one', settings: {} });
  const two = await createIntegration(db, { accountId: account.id, kind: 'ldap', name: 'two', settings: {} });
  const id = await storeSecretCandidate(db, ring, one.id, 'candidate-pw-1');
  const [row] = await db.$client<{ ciphertext: string }[]>`select ciphertext from integration_secret_candidates where id = ${id}`;
  expect(row?.ciphertext).not.toContain('candidate-pw-1');

  expect(await withSecretCandidate(db, ring, one.id, id, async (secret) => secret)).toBe('candidate-pw-1');
  await expect(withSecretCandidate(db, ring, two.id, id, async (secret) => secret)).rejects.toBeInstanceOf(NotFoundError);
  // Moved to the other integration's row: authentication of the ciphertext fails.
  await db.$client`update integration_secret_candidates set integration_id = ${two.id} where id = ${id}`;
  await expect(withSecretCandidate(db, ring, two.id, id, async (secret) => secret)).rejects.toThrow(/secret candidate/);
  await deleteSecretCandidate(db, id);
  await expect(withSecretCandidate(db, ring, two.id, id, async (secret) => secret)).rejects.toBeInstanceOf(NotFoundError);

  const expired = await storeSecretCandidate(db, ring, one.id, 'old');
  await db.$client`update integration_secret_candidates set expires_at = now() - interval '1 second' where id = ${expired}`;
  await expect(withSecretCandidate(db, ring, one.id, expired, async (secret) => secret)).rejects.toBeInstanceOf(NotFoundError);
  await storeSecretCandidate(db, ring, one.id, 'next');
  const [{ count } = { count: -1 }] = await db.$client<{ count: number }[]>`select count(*)::int as count from integration_secret_candidates where id = ${expired}`;
  expect(count).toBe(0);
});

test('readiness: a migrated database is ready; an unmigrated or unreachable one says why', async () => {
  expect(await checkDatabaseReady(db)).toEqual({ ok: true });
  const applied = await db.$client<{ id: number; created_at: string }[]>`select id, created_at::text from drizzle.__drizzle_migrations`;
  await db.$client`update drizzle.__drizzle_migrations set created_at = 0`;
  try {
    const stale = await checkDatabaseReady(db);
    expect(stale).toEqual({ ok: false, reason: expect.stringMatching(/not applied up to \d{4}_\w+.*dirsync db migrate/) });
  } finally {
    for (const row of applied) await db.$client`update drizzle.__drizzle_migrations set created_at = ${row.created_at}::bigint where id = ${row.id}`;
    expect(await checkDatabaseReady(db)).toEqual({ ok: true });
  }
  const unreachable = connect('postgres://postgres@127.0.0.1:1/none', { max: 1 });
  try {
    const result = await checkDatabaseReady(unreachable);
    expect(result).toEqual({ ok: false, reason: expect.stringMatching(/^database unreachable: /) });
    expect(JSON.stringify(result)).not.toContain('127.0.0.1');
  } finally {
    await close(unreachable);
  }
});
