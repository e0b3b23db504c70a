import { createHash, randomBytes } from 'node:crypto';
import { and, eq, getTableColumns, gt, isNull, lte, sql } from 'drizzle-orm';
import type { Db } from './client.ts';
import { InvalidInputError, NotFoundError, pgCodes, pgErrorOf } from './errors.ts';
import { isUuid } from './ids.ts';
import { accounts } from './schema.ts';
import { consoleOidcLogins, consoleRoles, consoleSessions, consoleSignInLinks } from './schema-console.ts';

/** A console user's role on an account: `viewer`, `operator` or `admin`. */
export type ConsoleRole = (typeof consoleRoles)[number];

/** One account a console session may act on, with its role. */
export interface ConsoleGrant {
  readonly accountId: string;
  readonly role: ConsoleRole;
}

/** How a console user signed in. */
export type ConsoleSignInMethod = 'oidc' | 'link';

/** A console session as every reader sees it: never its token nor the token's hash. */
export interface ConsoleSession {
  readonly id: string;
  readonly subject: string;
  readonly name: string;
  readonly email: string | null;
  readonly method: ConsoleSignInMethod;
  readonly grants: readonly ConsoleGrant[];
  /** The role on every account of a platform operator; null for everyone else. */
  readonly platformRole: ConsoleRole | null;
  readonly createdAt: Date;
  readonly expiresAt: Date;
}

/** Input of {@link createConsoleSession}. */
export interface NewConsoleSession {
  subject: string;
  name: string;
  email?: string | null | undefined;
  method: ConsoleSignInMethod;
  grants: readonly ConsoleGrant[];
  platformRole?: ConsoleRole | null | undefined;
  /** How long the session lives. */
  ttlMs: number;
}

/** A session just made, with its token: the cookie's value, never available again. */
export interface CreatedConsoleSession {
  readonly session: ConsoleSession;
  readonly token: string;
}

/** A one-time sign-in link as stored, without its token. */
export type ConsoleSignInLink = Omit<typeof consoleSignInLinks.$inferSelect, 'tokenHash' | 'role'> & { role: ConsoleRole };

/** Input of {@link createConsoleSignInLink}. */
export interface NewConsoleSignInLink {
  accountId: string;
  role: ConsoleRole;
  /** How long the link can be used (default 15 minutes). */
  ttlMs?: number | undefined;
  createdBy?: string | undefined;
}

/** Why a one-time link signed nobody in. */
export type ConsoleLinkRefusal = 'unknown' | 'used' | 'expired';

/** Why a returning OpenID Connect sign-in was refused. */
export type ConsoleOidcLoginRefusal = 'unknown' | 'expired' | 'other-browser';

/** Default life of a one-time sign-in link. */
export const defaultConsoleLinkTtlMs = 15 * 60_000;

/** Session cookie values start with this, so secret scanners can recognise them. */
export const consoleSessionTokenPrefix = 'dcs_';
/** One-time link tokens start with this. */
export const consoleLinkTokenPrefix = 'dcl_';

const sessionTokenPattern = /^dcs_[A-Za-z0-9_-]{43}$/;
const linkTokenPattern = /^dcl_[A-Za-z0-9_-]{43}$/;

/** SHA-256 (hex) of a token: the tokens carry 256 random bits, so a fast hash is enough. */
function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** True for the roles a console user may hold. */
export function isConsoleRole(value: unknown): value is ConsoleRole {
  return typeof value === 'string' && (consoleRoles as readonly string[]).includes(value);
}

const { tokenHash: _sessionHash, ...sessionColumns } = getTableColumns(consoleSessions);
const { tokenHash: _linkHash, ...linkColumns } = getTableColumns(consoleSignInLinks);

function toSession(row: Omit<typeof consoleSessions.$inferSelect, 'tokenHash'>): ConsoleSession {
  return {
    id: row.id,
    subject: row.subject,
    name: row.name,
    email: row.email,
    method: row.method === 'link' ? 'link' : 'oidc',
    grants: row.grants.filter((grant) => isUuid(grant.accountId) && isConsoleRole(grant.role)),
    platformRole: isConsoleRole(row.platformRole) ? row.platformRole : null,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
  };
}

function toLink(row: Omit<typeof consoleSignInLinks.$inferSelect, 'tokenHash'>): ConsoleSignInLink {
  return { ...row, role: isConsoleRole(row.role) ? row.role : 'viewer' };
}

type Executor = Pick<Db, 'insert'>;

async function insertSession(db: Executor, input: NewConsoleSession): Promise<CreatedConsoleSession> {
  if (!(input.ttlMs > 0)) throw new InvalidInputError('a console session needs a positive lifetime');
  if (input.subject.trim() === '') throw new InvalidInputError('a console session needs a subject');
  if (input.grants.length === 0 && !input.platformRole) throw new InvalidInputError('a console session needs at least one grant');
  for (const grant of input.grants) {
    if (!isUuid(grant.accountId) || !isConsoleRole(grant.role)) throw new InvalidInputError('a console grant names an account id and a role (viewer, operator, admin)');
  }
  const token = `${consoleSessionTokenPrefix}${randomBytes(32).toString('base64url')}`;
  const [row] = await db
    .insert(consoleSessions)
    .values({
      tokenHash: hashToken(token),
      subject: input.subject,
      name: input.name.trim() === '' ? input.subject : input.name,
      email: input.email ?? null,
      method: input.method,
      grants: input.grants.map((grant) => ({ accountId: grant.accountId, role: grant.role })),
      platformRole: input.platformRole ?? null,
      expiresAt: sql`now() + make_interval(secs => ${input.ttlMs / 1000})`,
    })
    .returning(sessionColumns);
  if (!row) throw new Error('insert returned no row');
  return { session: toSession(row), token };
}

/**
 * Creates a console session and returns its token, the only time it is available: only its
 * SHA-256 is stored. Throws {@link InvalidInputError} for a session without grants or lifetime.
 */
export async function createConsoleSession(db: Db, input: NewConsoleSession): Promise<CreatedConsoleSession> {
  return insertSession(db, input);
}

/** The live session a cookie token belongs to; undefined for a malformed, unknown or expired one. */
export async function findConsoleSession(db: Db, token: string): Promise<ConsoleSession | undefined> {
  if (!sessionTokenPattern.test(token)) return undefined;
  const [row] = await db
    .select(sessionColumns)
    .from(consoleSessions)
    .where(and(eq(consoleSessions.tokenHash, hashToken(token)), gt(consoleSessions.expiresAt, sql`now()`)));
  return row ? toSession(row) : undefined;
}

/** Ends the session a token belongs to (signing out); true when there was one. */
export async function deleteConsoleSession(db: Db, token: string): Promise<boolean> {
  if (!sessionTokenPattern.test(token)) return false;
  const rows = await db.delete(consoleSessions).where(eq(consoleSessions.tokenHash, hashToken(token))).returning({ id: consoleSessions.id });
  return rows.length > 0;
}

/**
 * Creates a one-time sign-in link for one account and role, and returns its token, the only
 * time it is available. Throws {@link NotFoundError} for an unknown account.
 */
export async function createConsoleSignInLink(db: Db, input: NewConsoleSignInLink): Promise<{ link: ConsoleSignInLink; token: string }> {
  if (!isUuid(input.accountId)) throw new NotFoundError('account not found');
  if (!isConsoleRole(input.role)) throw new InvalidInputError(`unknown role "${String(input.role)}": use ${consoleRoles.join(', ')}`);
  const ttlMs = input.ttlMs ?? defaultConsoleLinkTtlMs;
  if (!(ttlMs > 0)) throw new InvalidInputError('a sign-in link needs a positive lifetime');
  const token = `${consoleLinkTokenPrefix}${randomBytes(32).toString('base64url')}`;
  try {
    const [row] = await db
      .insert(consoleSignInLinks)
      .values({
        tokenHash: hashToken(token),
        accountId: input.accountId,
        role: input.role,
        createdBy: input.createdBy ?? null,
        expiresAt: sql`now() + make_interval(secs => ${ttlMs / 1000})`,
      })
      .returning(linkColumns);
    if (!row) throw new Error('insert returned no row');
    return { link: toLink(row), token };
  } catch (error) {
    if (pgErrorOf(error)?.code === pgCodes.foreignKeyViolation) throw new NotFoundError('account not found');
    throw error;
  }
}

/** A one-time link that can still sign in, as its confirmation page names it. */
export interface UsableConsoleSignInLink {
  readonly link: ConsoleSignInLink;
  readonly accountName: string;
}

/**
 * The link a token belongs to when it can still sign in (known, unused, unexpired), without
 * using it: what the confirmation page before the sign-in shows. Undefined for every other token,
 * whatever the reason, so the page tells nothing more than "not valid any more".
 */
export async function findUsableConsoleSignInLink(db: Db, token: string): Promise<UsableConsoleSignInLink | undefined> {
  if (!linkTokenPattern.test(token)) return undefined;
  const [row] = await db
    .select({ ...linkColumns, accountName: accounts.name })
    .from(consoleSignInLinks)
    .innerJoin(accounts, eq(accounts.id, consoleSignInLinks.accountId))
    .where(and(eq(consoleSignInLinks.tokenHash, hashToken(token)), isNull(consoleSignInLinks.usedAt), gt(consoleSignInLinks.expiresAt, sql`now()`)));
  if (!row) return undefined;
  const { accountName, ...link } = row;
  return { link: toLink(link), accountName };
}

/**
 * Uses a one-time link: marks it used and creates a session with its account and role, in one
 * transaction. The mark is a conditional update, so of two concurrent uses exactly one wins;
 * the other (and every later one) gets `used`.
 */
export async function consumeConsoleSignInLink(
  db: Db,
  token: string,
  options: { sessionTtlMs: number },
): Promise<{ ok: true; created: CreatedConsoleSession; link: ConsoleSignInLink } | { ok: false; reason: ConsoleLinkRefusal }> {
  if (!linkTokenPattern.test(token)) return { ok: false, reason: 'unknown' };
  const tokenHash = hashToken(token);
  return db.transaction(async (tx) => {
    const [used] = await tx
      .update(consoleSignInLinks)
      .set({ usedAt: sql`now()` })
      .where(and(eq(consoleSignInLinks.tokenHash, tokenHash), isNull(consoleSignInLinks.usedAt), gt(consoleSignInLinks.expiresAt, sql`now()`)))
      .returning(linkColumns);
    if (!used) {
      const [existing] = await tx
        .select({ usedAt: consoleSignInLinks.usedAt })
        .from(consoleSignInLinks)
        .where(eq(consoleSignInLinks.tokenHash, tokenHash));
      return { ok: false as const, reason: !existing ? ('unknown' as const) : existing.usedAt !== null ? ('used' as const) : ('expired' as const) };
    }
    const link = toLink(used);
    const [account] = await tx.select({ name: accounts.name }).from(accounts).where(eq(accounts.id, link.accountId));
    const accountName = account?.name ?? link.accountId;
    const created = await insertSession(tx, {
      subject: `link:${link.id}`,
      name: `${link.role} of ${accountName} (one-time link)`,
      email: null,
      method: 'link',
      grants: [{ accountId: link.accountId, role: link.role }],
      platformRole: null,
      ttlMs: options.sessionTtlMs,
    });
    return { ok: true as const, created, link };
  });
}

function hashBrowser(browserSecret: string): string {
  return hashToken(`browser:${browserSecret}`);
}

/**
 * Records an OpenID Connect sign-in on its way to the identity provider: the hash of its `state`
 * and of the secret of the browser that started it, and where to go afterwards.
 */
export async function createConsoleOidcLogin(db: Db, input: { state: string; browserSecret: string; returnTo: string; ttlMs: number }): Promise<void> {
  if (input.state.length < 32 || input.browserSecret.length < 32) throw new InvalidInputError('state and browser secret must carry at least 256 bits');
  await db.insert(consoleOidcLogins).values({
    stateHash: hashToken(input.state),
    browserHash: hashBrowser(input.browserSecret),
    returnTo: input.returnTo,
    expiresAt: sql`now() + make_interval(secs => ${input.ttlMs / 1000})`,
  });
}

/**
 * Takes the sign-in a returning `state` belongs to: deleted whatever the outcome, so a callback
 * works once. Refused when unknown (or already taken), expired, or returning to a browser other
 * than the one that started it.
 */
export async function takeConsoleOidcLogin(
  db: Db,
  input: { state: string; browserSecret: string | undefined },
): Promise<{ ok: true; returnTo: string } | { ok: false; reason: ConsoleOidcLoginRefusal }> {
  const [row] = await db
    .delete(consoleOidcLogins)
    .where(eq(consoleOidcLogins.stateHash, hashToken(input.state)))
    .returning({ browserHash: consoleOidcLogins.browserHash, returnTo: consoleOidcLogins.returnTo, expired: sql<boolean>`${consoleOidcLogins.expiresAt} <= now()` });
  if (!row) return { ok: false, reason: 'unknown' };
  if (row.expired) return { ok: false, reason: 'expired' };
  if (input.browserSecret === undefined || row.browserHash !== hashBrowser(input.browserSecret)) return { ok: false, reason: 'other-browser' };
  return { ok: true, returnTo: row.returnTo };
}

/** Deletes expired sessions, links and unfinished sign-ins; returns how many rows went. */
export async function purgeExpiredConsoleSignIns(db: Db): Promise<number> {
  const now = sql`now()`;
  const sessions = await db.delete(consoleSessions).where(lte(consoleSessions.expiresAt, now)).returning({ id: consoleSessions.id });
  const links = await db.delete(consoleSignInLinks).where(lte(consoleSignInLinks.expiresAt, now)).returning({ id: consoleSignInLinks.id });
  const logins = await db.delete(consoleOidcLogins).where(lte(consoleOidcLogins.expiresAt, now)).returning({ stateHash: consoleOidcLogins.stateHash });
  return sessions.length + links.length + logins.length;
}
