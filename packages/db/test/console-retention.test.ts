import { randomBytes } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import {
  close,
  connect,
  consumeConsoleSignInLink,
  createAccount,
  createConsoleOidcLogin,
  createConsoleSession,
  createConsoleSignInLink,
  findConsoleSession,
  findUsableConsoleSignInLink,
  pruneConsoleSignIns,
  takeConsoleOidcLogin,
  type Db,
} from '../src/index.ts';

let database: TestDatabase;
let db: Db;
let accountId: string;

beforeAll(async () => {
  database = await createTestDatabase('console_retention');
  db = connect(database.url, { max: 4 });
  accountId = (await createAccount(db, { name: 'acme' })).id;
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

/** Waits until the database's clock has passed `time` (expiry is judged by the database). */
async function untilPast(time: Date): Promise<void> {
  for (;;) {
    const [row] = await db.$client<{ past: boolean }[]>`select now() > ${time.toISOString()}::timestamptz as past`;
    if (row?.past) return;
  }
}

async function counts(): Promise<{ sessions: number; links: number; oidcLogins: number }> {
  const [row] = await db.$client<{ sessions: number; links: number; oidcLogins: number }[]>`
    select (select count(*)::int from console_sessions) as sessions,
           (select count(*)::int from console_sign_in_links) as links,
           (select count(*)::int from console_oidc_logins) as "oidcLogins"`;
  return row!;
}

const secret = () => randomBytes(32).toString('base64url');

test('expired sessions, used or expired links and unfinished sign-ins go in bounded batches; live ones stay usable', async () => {
  const live = await createConsoleSession(db, { subject: 'alice', name: 'Alice', method: 'oidc', grants: [{ accountId, role: 'admin' }], ttlMs: 3_600_000 });
  const liveLink = await createConsoleSignInLink(db, { accountId, role: 'viewer', ttlMs: 3_600_000 });
  const liveLogin = { state: secret(), browserSecret: secret() };
  await createConsoleOidcLogin(db, { ...liveLogin, returnTo: '/console/', ttlMs: 3_600_000 });

  let last = new Date(0);
  for (let i = 0; i < 5; i++) {
    // The sign-in first: it tells no expiry, and expires before the link made after it.
    await createConsoleOidcLogin(db, { state: secret(), browserSecret: secret(), returnTo: '/console/', ttlMs: 1 });
    const session = await createConsoleSession(db, { subject: `gone-${i}`, name: 'Gone', method: 'oidc', grants: [{ accountId, role: 'viewer' }], ttlMs: 1 });
    const link = await createConsoleSignInLink(db, { accountId, role: 'viewer', ttlMs: 1 });
    for (const time of [session.session.expiresAt, link.link.expiresAt]) if (time > last) last = time;
  }
  // Used (and unexpired) links go too: they can never sign in again.
  for (let i = 0; i < 2; i++) {
    const used = await createConsoleSignInLink(db, { accountId, role: 'operator', ttlMs: 3_600_000 });
    expect((await consumeConsoleSignInLink(db, used.token, { sessionTtlMs: 3_600_000 })).ok).toBe(true);
  }
  // The sessions those links made are live.
  await untilPast(new Date(last.getTime() + 1));
  expect(await counts()).toEqual({ sessions: 1 + 5 + 2, links: 1 + 5 + 2, oidcLogins: 1 + 5 });

  // Batches of 2, at most 2 per table: 4 of each at most, and more is due.
  expect(await pruneConsoleSignIns(db, { batchSize: 2, maxBatches: 2 })).toEqual({ sessions: 4, links: 4, oidcLogins: 4, more: true });
  expect(await counts()).toEqual({ sessions: 4, links: 4, oidcLogins: 2 });
  expect(await pruneConsoleSignIns(db, { batchSize: 2, maxBatches: 2 })).toEqual({ sessions: 1, links: 3, oidcLogins: 1, more: false });
  expect(await counts()).toEqual({ sessions: 3, links: 1, oidcLogins: 1 });
  expect(await pruneConsoleSignIns(db)).toEqual({ sessions: 0, links: 0, oidcLogins: 0, more: false });

  expect((await findConsoleSession(db, live.token))?.id).toBe(live.session.id);
  expect((await findUsableConsoleSignInLink(db, liveLink.token))?.link.id).toBe(liveLink.link.id);
  expect(await takeConsoleOidcLogin(db, liveLogin)).toEqual({ ok: true, returnTo: '/console/' });
});

test('a batch size or batch count out of range is refused', async () => {
  await expect(pruneConsoleSignIns(db, { batchSize: 0 })).rejects.toBeInstanceOf(RangeError);
  await expect(pruneConsoleSignIns(db, { maxBatches: 0 })).rejects.toBeInstanceOf(RangeError);
});
