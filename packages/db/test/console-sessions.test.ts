import { createHash } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import {
  close,
  connect,
  consoleOidcLogins,
  consoleSessions,
  consoleSignInLinks,
  consumeConsoleSignInLink,
  createAccount,
  createConsoleOidcLogin,
  createConsoleSession,
  createConsoleSignInLink,
  deleteConsoleSession,
  findConsoleSession,
  InvalidInputError,
  NotFoundError,
  purgeExpiredConsoleSignIns,
  takeConsoleOidcLogin,
  type Db,
} from '../src/index.ts';

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase('console_sessions');
  db = connect(database.url, { max: 12 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Waits until the database's clock has passed `time` (expiry is judged by the database). */
async function untilPast(time: Date): Promise<void> {
  for (;;) {
    const [row] = await db.$client<Array<{ past: boolean }>>`select now() > ${new Date(time.getTime() + 1).toISOString()}::timestamptz as past`;
    if (row?.past) return;
  }
}

test('a session is found by its token only, stored as a hash, and ends at logout', async () => {
  const account = await createAccount(db, { name: 'sessions-acme' });
  const { session, token } = await createConsoleSession(db, {
    subject: 'sub-1',
    name: 'Ann',
    email: 'ann@example.com',
    method: 'oidc',
    grants: [{ accountId: account.id, role: 'operator' }],
    ttlMs: 60_000,
  });
  expect(token).toMatch(/^dcs_[A-Za-z0-9_-]{43}$/);
  expect(session).toMatchObject({ subject: 'sub-1', email: 'ann@example.com', grants: [{ accountId: account.id, role: 'operator' }], platformRole: null });
  expect(session).not.toHaveProperty('tokenHash');

  const [row] = await db.select().from(consoleSessions);
  expect(row?.tokenHash).toBe(sha256(token));
  expect(JSON.stringify(row)).not.toContain(token);

  expect((await findConsoleSession(db, token))?.id).toBe(session.id);
  expect(await findConsoleSession(db, `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`)).toBeUndefined();
  expect(await findConsoleSession(db, 'not a token')).toBeUndefined();
  expect(await deleteConsoleSession(db, token)).toBe(true);
  expect(await findConsoleSession(db, token)).toBeUndefined();
  expect(await deleteConsoleSession(db, token)).toBe(false);
});

test('an expired session is not found, and is purged', async () => {
  const account = await createAccount(db, { name: 'sessions-expiring' });
  const { session, token } = await createConsoleSession(db, { subject: 's', name: 'S', method: 'oidc', grants: [{ accountId: account.id, role: 'viewer' }], ttlMs: 1 });
  await untilPast(session.expiresAt);
  expect(await findConsoleSession(db, token)).toBeUndefined();
  expect(await purgeExpiredConsoleSignIns(db)).toBeGreaterThanOrEqual(1);
  expect((await db.select().from(consoleSessions)).map((r) => r.id)).not.toContain(session.id);
});

test('a session needs a grant or a platform role, valid roles and a lifetime', async () => {
  const account = await createAccount(db, { name: 'sessions-invalid' });
  await expect(createConsoleSession(db, { subject: 's', name: 'S', method: 'oidc', grants: [], ttlMs: 1000 })).rejects.toBeInstanceOf(InvalidInputError);
  await expect(
    createConsoleSession(db, { subject: 's', name: 'S', method: 'oidc', grants: [{ accountId: account.id, role: 'owner' as 'admin' }], ttlMs: 1000 }),
  ).rejects.toBeInstanceOf(InvalidInputError);
  await expect(createConsoleSession(db, { subject: 's', name: 'S', method: 'oidc', grants: [{ accountId: account.id, role: 'admin' }], ttlMs: 0 })).rejects.toBeInstanceOf(InvalidInputError);
  const platform = await createConsoleSession(db, { subject: 'p', name: 'P', method: 'oidc', grants: [], platformRole: 'viewer', ttlMs: 1000 });
  expect(platform.session.platformRole).toBe('viewer');
});

test('a one-time link is stored as a hash and signs in once, into its account and role', async () => {
  const account = await createAccount(db, { name: 'links-acme' });
  const { link, token } = await createConsoleSignInLink(db, { accountId: account.id, role: 'viewer', createdBy: 'test' });
  expect(token).toMatch(/^dcl_[A-Za-z0-9_-]{43}$/);
  // 15 minutes by default.
  expect(link.expiresAt.getTime() - link.createdAt.getTime()).toBe(15 * 60_000);
  const [row] = await db.select().from(consoleSignInLinks);
  expect(row?.tokenHash).toBe(sha256(token));

  const used = await consumeConsoleSignInLink(db, token, { sessionTtlMs: 60_000 });
  expect(used.ok).toBe(true);
  if (!used.ok) return;
  expect(used.created.session).toMatchObject({ method: 'link', grants: [{ accountId: account.id, role: 'viewer' }], platformRole: null, name: 'viewer of links-acme (one-time link)' });
  expect((await findConsoleSession(db, used.created.token))?.id).toBe(used.created.session.id);
  expect(await consumeConsoleSignInLink(db, token, { sessionTtlMs: 60_000 })).toEqual({ ok: false, reason: 'used' });
  expect(await consumeConsoleSignInLink(db, `dcl_${'x'.repeat(43)}`, { sessionTtlMs: 60_000 })).toEqual({ ok: false, reason: 'unknown' });
  expect(await consumeConsoleSignInLink(db, 'garbage', { sessionTtlMs: 60_000 })).toEqual({ ok: false, reason: 'unknown' });
});

test('an expired link is refused as expired; links need a real account and role', async () => {
  const account = await createAccount(db, { name: 'links-expiring' });
  const { link, token } = await createConsoleSignInLink(db, { accountId: account.id, role: 'admin', ttlMs: 1 });
  await untilPast(link.expiresAt);
  expect(await consumeConsoleSignInLink(db, token, { sessionTtlMs: 60_000 })).toEqual({ ok: false, reason: 'expired' });
  await expect(createConsoleSignInLink(db, { accountId: '00000000-0000-4000-8000-000000000000', role: 'admin' })).rejects.toBeInstanceOf(NotFoundError);
  await expect(createConsoleSignInLink(db, { accountId: 'acme', role: 'admin' })).rejects.toBeInstanceOf(NotFoundError);
  await expect(createConsoleSignInLink(db, { accountId: account.id, role: 'root' as 'admin' })).rejects.toBeInstanceOf(InvalidInputError);
});

test('of concurrent uses of one link, exactly one creates a session', async () => {
  const account = await createAccount(db, { name: 'links-race' });
  const { token } = await createConsoleSignInLink(db, { accountId: account.id, role: 'operator' });
  const results = await Promise.all(Array.from({ length: 10 }, () => consumeConsoleSignInLink(db, token, { sessionTtlMs: 60_000 })));
  expect(results.filter((result) => result.ok)).toHaveLength(1);
  expect(results.filter((result) => !result.ok).map((result) => (result.ok ? '' : result.reason))).toEqual(Array(9).fill('used'));
  const sessions = await db.select().from(consoleSessions);
  expect(sessions.filter((session) => session.method === 'link' && session.grants.some((grant) => grant.accountId === account.id))).toHaveLength(1);
});

test('an OpenID Connect sign-in is taken once, by the browser that started it, before it expires', async () => {
  const state = 'S'.repeat(43);
  const browserSecret = 'B'.repeat(43);
  await createConsoleOidcLogin(db, { state, browserSecret, returnTo: '/console/runs/1', ttlMs: 60_000 });
  const [row] = await db.select().from(consoleOidcLogins);
  expect(JSON.stringify(row)).not.toContain(state);
  expect(JSON.stringify(row)).not.toContain(browserSecret);
  expect(await takeConsoleOidcLogin(db, { state, browserSecret })).toEqual({ ok: true, returnTo: '/console/runs/1' });
  expect(await takeConsoleOidcLogin(db, { state, browserSecret })).toEqual({ ok: false, reason: 'unknown' });

  await createConsoleOidcLogin(db, { state: 'T'.repeat(43), browserSecret, returnTo: '/console/', ttlMs: 60_000 });
  expect(await takeConsoleOidcLogin(db, { state: 'T'.repeat(43), browserSecret: 'C'.repeat(43) })).toEqual({ ok: false, reason: 'other-browser' });
  // Refused once, gone for everyone.
  expect(await takeConsoleOidcLogin(db, { state: 'T'.repeat(43), browserSecret })).toEqual({ ok: false, reason: 'unknown' });

  await createConsoleOidcLogin(db, { state: 'U'.repeat(43), browserSecret, returnTo: '/console/', ttlMs: 1 });
  const [pending] = (await db.select().from(consoleOidcLogins)).filter((r) => r.stateHash === sha256('U'.repeat(43)));
  await untilPast(pending!.expiresAt);
  expect(await takeConsoleOidcLogin(db, { state: 'U'.repeat(43), browserSecret })).toEqual({ ok: false, reason: 'expired' });
  await expect(createConsoleOidcLogin(db, { state: 'short', browserSecret, returnTo: '/console/', ttlMs: 1000 })).rejects.toBeInstanceOf(InvalidInputError);
});
