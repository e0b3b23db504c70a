import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  type ApiKey,
  type ApiScope,
  authenticateApiKey,
  type ConsoleRole,
  type ConsoleSession,
  type Db,
  findConsoleSession,
  getAccount,
  isUuid,
  listAccounts,
  scopeAllows,
} from '@dirsync/db';
import { type ConsoleSessionSettings, csrfTokenMatches, scopesOfRole, sessionTokenOf } from './console/session.ts';
import { ProblemError } from './problems.ts';

/**
 * The caller of an authenticated request: an API key, or a console session acting on one of its
 * accounts. Routes check `scopes` (through {@link requireScope}) and `accountId` (through
 * {@link accountOf}) and need not know which.
 */
export interface Caller {
  /** The API key; null for a console session. */
  readonly key: ApiKey | null;
  /** The console session; null for an API key. */
  readonly session: ConsoleSession | null;
  /** What the caller may do: the key's scopes, or those of the session's role on the account. */
  readonly scopes: readonly ApiScope[];
  /**
   * The account acted on: the key's; for a session the one `X-Dirsync-Account` names, or its only
   * one. Undefined for a platform key, and for a session that has several and named none.
   */
  readonly accountId: string | undefined;
  /** A platform key (no account), or a console platform operator (every account). */
  readonly platform: boolean;
  /** Recorded in audit events and as `requested_by`. */
  readonly actor: string;
  /** What the per-caller rate limit counts by: the key's or the session's id. */
  readonly rateLimitKey: string;
}

/** Header naming the account a console request acts on. */
export const accountHeader = 'x-dirsync-account';
/** Header carrying a console session's CSRF token on every change. */
export const csrfHeader = 'x-csrf-token';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the authentication hook on every route that needs a key. */
    caller: Caller | null;
  }
}

/** Realm of the Basic challenge the queue dashboard answers with, so a browser asks for the key. */
export const dashboardRealm = 'dirsync queue dashboard';

/**
 * The token of a request: `Authorization: Bearer <token>`, or Basic with the token as password
 * (any user name), which is what a browser sends after the dashboard's challenge.
 */
function tokenOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  const [scheme, value] = header.split(/\s+/, 2);
  if (value === undefined) return undefined;
  if (scheme?.toLowerCase() === 'bearer') return value;
  if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

function actorOf(key: ApiKey): string {
  return `api-key:${key.name.slice(0, 150)} (${key.id})`;
}

function sessionActorOf(session: ConsoleSession): string {
  return `console:${(session.email ?? session.subject).slice(0, 150)} (session ${session.id.slice(0, 8)})`;
}

const roleRank: Record<ConsoleRole, number> = { viewer: 0, operator: 1, admin: 2 };

/** The higher of two roles (a platform operator may also hold a higher grant on one account). */
function higherRole(a: ConsoleRole | null, b: ConsoleRole | null): ConsoleRole | null {
  if (a === null) return b;
  if (b === null) return a;
  return roleRank[a] >= roleRank[b] ? a : b;
}

/** The role a session holds on an account, or null when it has none there. */
export function sessionRoleOn(session: ConsoleSession, accountId: string): ConsoleRole | null {
  const granted = session.grants.filter((grant) => grant.accountId === accountId).reduce<ConsoleRole | null>((role, grant) => higherRole(role, grant.role), null);
  return higherRole(granted, session.platformRole);
}

const safeMethods = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Authenticates a console session from its cookie: CSRF token and origin on changes, then the
 * account the request acts on. 401 when the session is unknown or over, 403 for a missing or
 * wrong CSRF token, another origin, or an account the session has no role on.
 */
async function authenticateSession(db: Db, request: FastifyRequest, settings: ConsoleSessionSettings, token: string): Promise<Caller> {
  const session = await findConsoleSession(db, token);
  if (!session) {
    throw new ProblemError(401, 'unauthenticated', 'the console session has ended or is not valid: sign in again', {
      headers: { 'www-authenticate': 'Bearer realm="dirsync"' },
    });
  }
  if (!safeMethods.has(request.method)) {
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== settings.origin) {
      throw new ProblemError(403, 'origin-not-allowed', `a change with the console's session must come from the console (${settings.origin}), not from ${origin.slice(0, 200)}`);
    }
    if (!csrfTokenMatches(token, request.headers[csrfHeader])) {
      throw new ProblemError(403, 'csrf-token-invalid', 'this change needs the X-CSRF-Token header with the csrfToken of GET /console/auth/session');
    }
  }
  const named = request.headers[accountHeader];
  let accountId: string | undefined;
  if (typeof named === 'string' && named !== '') {
    const role = isUuid(named) ? sessionRoleOn(session, named) : null;
    // A platform operator's role covers every account, so only existence is left to check.
    const exists = role !== null && (session.grants.some((grant) => grant.accountId === named) || (await getAccount(db, named))?.id === named);
    if (!exists) throw new ProblemError(403, 'account-not-granted', 'you have no role on the account named by X-Dirsync-Account');
    accountId = named;
  } else if (session.platformRole !== null) {
    const all = await listAccounts(db);
    if (all.length === 1) accountId = all[0]?.id;
  } else {
    const ids = new Set(session.grants.map((grant) => grant.accountId));
    if (ids.size === 1) accountId = [...ids][0];
  }
  const role = accountId === undefined ? session.platformRole : sessionRoleOn(session, accountId);
  return {
    key: null,
    session,
    scopes: role === null ? [] : scopesOfRole(role),
    accountId,
    platform: session.platformRole !== null,
    actor: sessionActorOf(session),
    rateLimitKey: `session:${session.id}`,
  };
}

function accountChoiceNeeded(): ProblemError {
  return new ProblemError(400, 'account-required', 'you have a role on several accounts: name the one this request acts on with the X-Dirsync-Account header');
}

/**
 * Authenticates the request's key (401 when missing, unknown or revoked). `challenge` adds a
 * Basic `WWW-Authenticate` so browsers prompt for it (the dashboard); API clients get Bearer.
 * With `console` settings, a request without an `Authorization` header may instead carry a
 * console session cookie; a request with one is judged by its key alone.
 */
export async function authenticate(db: Db, request: FastifyRequest, challenge: 'bearer' | 'basic', console?: ConsoleSessionSettings): Promise<Caller> {
  if (console !== undefined && request.headers.authorization === undefined) {
    const sessionToken = sessionTokenOf(request, console);
    if (sessionToken !== undefined) return authenticateSession(db, request, console, sessionToken);
  }
  const token = tokenOf(request);
  const key = token === undefined ? undefined : await authenticateApiKey(db, token);
  if (!key) {
    const header = challenge === 'basic' ? `Basic realm="${dashboardRealm}", charset="UTF-8"` : 'Bearer realm="dirsync"';
    throw new ProblemError(
      401,
      'unauthenticated',
      token === undefined ? 'an API key is required: send "Authorization: Bearer <key>"' : 'the API key is unknown or revoked',
      { headers: { 'www-authenticate': header } },
    );
  }
  return {
    key,
    session: null,
    scopes: key.scopes,
    accountId: key.accountId ?? undefined,
    platform: key.accountId === null,
    actor: actorOf(key),
    rateLimitKey: key.id,
  };
}

/** The request's caller; throws when the route forgot its authentication hook (a bug, so 500). */
export function callerOf(request: FastifyRequest): Caller {
  if (!request.caller) throw new Error('route reached without authentication');
  return request.caller;
}

/** The caller's account (403 for platform keys, which see no account's data). */
export function accountOf(request: FastifyRequest): string {
  const caller = callerOf(request);
  if (caller.accountId === undefined) {
    if (caller.session) throw accountChoiceNeeded();
    throw new ProblemError(403, 'account-required', 'this is a platform key: it has no account, so it cannot use account routes');
  }
  return caller.accountId;
}

/** Pre-handler that refuses callers without `scope` (403). */
export function requireScope(scope: ApiScope) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const caller = callerOf(request);
    if (caller.session && caller.accountId === undefined && !caller.platform) throw accountChoiceNeeded();
    if (!scopeAllows(caller.scopes, scope)) {
      const holder = caller.session ? 'your role on this account gives' : 'the key has';
      throw new ProblemError(403, 'insufficient-scope', `this route needs the "${scope}" scope; ${holder} ${caller.scopes.map((s) => `"${s}"`).join(', ') || 'none'}`, {
        extensions: { requiredScope: scope },
      });
    }
  };
}
