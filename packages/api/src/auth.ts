import type { FastifyReply, FastifyRequest } from 'fastify';
import { type ApiKey, type ApiScope, authenticateApiKey, type Db, scopeAllows } from '@dirsync/db';
import { ProblemError } from './problems.ts';

/** The caller of an authenticated request. */
export interface Caller {
  readonly key: ApiKey;
  /** The key's account; undefined for a platform key. */
  readonly accountId: string | undefined;
  /** Recorded in audit events and as `requested_by`. */
  readonly actor: string;
}

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

/**
 * Authenticates the request's key (401 when missing, unknown or revoked). `challenge` adds a
 * Basic `WWW-Authenticate` so browsers prompt for it (the dashboard); API clients get Bearer.
 */
export async function authenticate(db: Db, request: FastifyRequest, challenge: 'bearer' | 'basic'): Promise<Caller> {
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
  return { key, accountId: key.accountId ?? undefined, actor: actorOf(key) };
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
    throw new ProblemError(403, 'account-required', 'this is a platform key: it has no account, so it cannot use account routes');
  }
  return caller.accountId;
}

/** Pre-handler that refuses callers without `scope` (403). */
export function requireScope(scope: ApiScope) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const caller = callerOf(request);
    if (!scopeAllows(caller.key.scopes, scope)) {
      throw new ProblemError(403, 'insufficient-scope', `this route needs the "${scope}" scope; the key has ${caller.key.scopes.map((s) => `"${s}"`).join(', ')}`, {
        extensions: { requiredScope: scope },
      });
    }
  };
}
