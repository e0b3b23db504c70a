import { randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import {
  consumeConsoleSignInLink,
  createConsoleOidcLogin,
  createConsoleSession,
  type ConsoleRole,
  type ConsoleSession,
  type Db,
  deleteConsoleSession,
  isDatabaseUnavailable,
  findConsoleSession,
  findUsableConsoleSignInLink,
  listAccounts,
  purgeExpiredConsoleSignIns,
  recordAudit,
  takeConsoleOidcLogin,
} from '@dirsync/db';
import { csrfHeader } from '../auth.ts';
import type { ApiApp } from '../context.ts';
import { ProblemError } from '../problems.ts';
import { mapRolesClaim } from './claims.ts';
import { type ConsoleOidcClient, describeOidcError, OidcSignInError } from './oidc.ts';
import { sendConsolePage, sendLinkConfirmationPage } from './pages.ts';
import {
  clearSessionCookie,
  type ConsoleSessionSettings,
  csrfTokenMatches,
  csrfTokenOf,
  loginCookieName,
  sessionTokenOf,
  setSessionCookie,
} from './session.ts';
import { setConsoleSecurityHeaders } from './static.ts';

/** Paths of the console's sign-in routes. */
export const consoleAuthPaths = {
  login: '/console/auth/login',
  callback: '/console/auth/callback',
  link: '/console/auth/link',
  session: '/console/auth/session',
  logout: '/console/auth/logout',
  config: '/console/auth/config',
} as const;

/** What the sign-in routes need. */
export interface ConsoleAuthDeps {
  readonly db: Db;
  readonly logger: Logger;
  readonly settings: ConsoleSessionSettings;
  /** Absent when no identity provider is configured (one-time links only). */
  readonly oidc: ConsoleOidcClient | undefined;
  /** Public base URL of the console (`https://dirsync.example.com`), no trailing slash. */
  readonly publicUrl: string;
  readonly oidcLoginTtlMs: number;
}

/** `returnTo` when it is a path under `/console/` of this site; otherwise the console's home. */
export function safeReturnTo(value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('/console/') || value.length > 2000 || /[\\\u0000-\u001f]/.test(value)) return '/console/';
  const parsed = new URL(value, 'http://console.invalid');
  if (parsed.origin !== 'http://console.invalid' || !parsed.pathname.startsWith('/console/') || parsed.pathname.split('/').includes('..')) return '/console/';
  return `${parsed.pathname}${parsed.search}`;
}

function queryOf(request: FastifyRequest): URLSearchParams {
  const url = request.url;
  return new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
}

function cookieOf(request: FastifyRequest, name: string): string | undefined {
  const value = (request as FastifyRequest & { cookies?: Record<string, string | undefined> }).cookies?.[name];
  return value === undefined || value === '' ? undefined : value;
}

/**
 * Whether a browser's POST comes from the console's own pages. `Origin` decides when it names an
 * origin; a page with `Referrer-Policy: no-referrer` (the link's confirmation page) makes the
 * browser send `Origin: null` for its own form, so then `Sec-Fetch-Site` must say same-origin.
 * A client that sends neither (not a browser) is not refused: login CSRF needs a victim's browser.
 */
export function sentByConsole(request: FastifyRequest, consoleOrigin: string): boolean {
  const origin = request.headers.origin;
  const fetchSite = request.headers['sec-fetch-site'];
  if (origin !== undefined && origin !== 'null') return origin === consoleOrigin;
  if (fetchSite === undefined) return origin === undefined;
  return fetchSite === 'same-origin';
}

/** The JSON of `GET /console/auth/session`. */
export interface ConsoleSessionAnswer {
  readonly user: { readonly subject: string; readonly name: string; readonly email: string | null };
  readonly csrfToken: string;
  readonly accounts: ReadonlyArray<{ readonly id: string; readonly name: string; readonly role: ConsoleRole }>;
  readonly platform: null | { readonly role: ConsoleRole };
  readonly expiresAt: string;
}

const rank: Record<ConsoleRole, number> = { viewer: 0, operator: 1, admin: 2 };

async function sessionAnswer(db: Db, session: ConsoleSession, token: string): Promise<ConsoleSessionAnswer> {
  const all = await listAccounts(db);
  const accounts: Array<{ id: string; name: string; role: ConsoleRole }> = [];
  for (const account of all) {
    let role: ConsoleRole | null = session.platformRole;
    for (const grant of session.grants) if (grant.accountId === account.id && (role === null || rank[grant.role] > rank[role])) role = grant.role;
    if (role !== null) accounts.push({ id: account.id, name: account.name, role });
  }
  return {
    user: { subject: session.subject, name: session.name, email: session.email },
    csrfToken: csrfTokenOf(token),
    accounts,
    platform: session.platformRole === null ? null : { role: session.platformRole },
    expiresAt: session.expiresAt.toISOString(),
  };
}

/**
 * The console's sign-in routes (outside `/v1`, no key): OpenID Connect login and callback, the
 * one-time link, the session's JSON, sign-out and whether OpenID Connect is offered.
 */
export function registerConsoleAuthRoutes(app: ApiApp, deps: ConsoleAuthDeps): void {
  const { db, settings, logger } = deps;
  const loginCookie = loginCookieName(settings.secure);
  const loginCookieOptions = { httpOnly: true, sameSite: 'lax' as const, path: '/', secure: settings.secure };
  const headers = async (_request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    setConsoleSecurityHeaders(reply);
    void reply.header('cache-control', 'no-store');
    return payload;
  };

  async function startSession(request: FastifyRequest, reply: FastifyReply, created: { token: string }, location: string): Promise<FastifyReply> {
    // A session the browser held before this sign-in ends: one browser, one session.
    const previous = sessionTokenOf(request, settings);
    if (previous !== undefined && previous !== created.token) await deleteConsoleSession(db, previous);
    setSessionCookie(reply, settings, created.token, settings.sessionTtlMs);
    // Sessions, links and sign-ins past their time go now and then, on a sign-in.
    await purgeExpiredConsoleSignIns(db).catch((error: unknown) => logger.warn({ err: describeOidcError(error) }, 'expired console sign-ins not purged'));
    return reply.code(303).header('location', location).send();
  }

  // Browser routes answer every failure with a page in words, never a JSON problem.
  const pageOnError = (error: Error, _request: FastifyRequest, reply: FastifyReply) => {
    const unavailable = isDatabaseUnavailable(error);
    logger.error({ err: { type: error.name, ...(unavailable ? {} : { message: error.message.slice(0, 200) }) } }, 'console sign-in failed');
    return sendConsolePage(reply, unavailable ? 503 : 500, 'Sign-in failed', [
      unavailable ? 'The dirsync database cannot be reached right now.' : 'The server could not complete the sign-in.',
      'Try again in a moment.',
    ]);
  };

  app.get(consoleAuthPaths.config, { schema: { hide: true }, onSend: headers }, async () => ({ oidc: deps.oidc !== undefined }));

  app.get(consoleAuthPaths.login, { schema: { hide: true }, onSend: headers, errorHandler: pageOnError }, async (request, reply) => {
    if (!deps.oidc) {
      return sendConsolePage(reply, 404, 'Sign-in not configured', [
        'This dirsync server has no identity provider configured (DIRSYNC_OIDC_ISSUER and DIRSYNC_OIDC_CLIENT_ID).',
        'Ask an operator for a one-time sign-in link: dirsync console login --account <name>.',
      ]);
    }
    const returnTo = safeReturnTo(queryOf(request).get('returnTo'));
    // One browser secret per browser: a second tab's sign-in keeps the first one's valid.
    const existing = cookieOf(request, loginCookie);
    const browserSecret = existing !== undefined && /^[A-Za-z0-9_-]{43}$/.test(existing) ? existing : randomBytes(32).toString('base64url');
    const state = randomBytes(32).toString('base64url');
    let url: URL;
    try {
      url = await deps.oidc.authorizationUrl({ state, browserSecret });
    } catch (error) {
      logger.warn({ err: describeOidcError(error) }, 'identity provider discovery failed');
      return sendConsolePage(reply, 502, 'Identity provider unreachable', ['The identity provider did not answer its discovery request. Try again in a moment; if it persists, check DIRSYNC_OIDC_ISSUER.']);
    }
    // Sign-ins started and never finished would pile up: the expired ones go as new ones come.
    await purgeExpiredConsoleSignIns(db);
    await createConsoleOidcLogin(db, { state, browserSecret, returnTo, ttlMs: deps.oidcLoginTtlMs });
    void reply.setCookie(loginCookie, browserSecret, { ...loginCookieOptions, maxAge: Math.ceil(deps.oidcLoginTtlMs / 1000) });
    return reply.code(302).header('location', url.href).send();
  });

  app.get(consoleAuthPaths.callback, {
    schema: { hide: true },
    onSend: headers,
    errorHandler: pageOnError,
    // The request log line would carry the code and the state: only warnings and errors are logged.
    logLevel: 'warn',
    handler: async (request, reply) => {
      if (!deps.oidc) return sendConsolePage(reply, 404, 'Sign-in not configured', ['This dirsync server has no identity provider configured.']);
      const params = queryOf(request);
      const state = params.get('state') ?? '';
      if (state === '') {
        return sendConsolePage(reply, 400, 'Sign-in not completed', ['The identity provider\'s answer names no sign-in (no state). Start again from the console.']);
      }
      const browserSecret = cookieOf(request, loginCookie);
      const taken = await takeConsoleOidcLogin(db, { state, browserSecret });
      if (!taken.ok) {
        logger.warn({ reason: taken.reason }, 'console sign-in callback refused');
        const why = {
          unknown: 'This sign-in answer was already used, or was not started by this console. Sign in again.',
          expired: 'This sign-in took too long at the identity provider and has expired. Sign in again.',
          'other-browser': 'This sign-in was started in another browser (or its cookies were cleared). Sign in again from this browser.',
        }[taken.reason];
        return sendConsolePage(reply, 400, 'Sign-in not completed', [why]);
      }
      const providerError = params.get('error');
      if (providerError !== null) {
        const description = params.get('error_description');
        logger.warn({ error: providerError.slice(0, 100) }, 'identity provider refused the console sign-in');
        return sendConsolePage(reply, 403, 'Sign-in refused', [
          `The identity provider refused the sign-in: ${providerError.slice(0, 100)}${description ? ` (${description.slice(0, 300)})` : ''}.`,
        ]);
      }
      let identity;
      try {
        identity = await deps.oidc.complete(new URL(`${deps.publicUrl}${consoleAuthPaths.callback}?${params.toString()}`), { state, browserSecret: browserSecret ?? '' });
      } catch (error) {
        logger.warn({ err: describeOidcError(error instanceof OidcSignInError && error.cause !== undefined ? error.cause : error) }, 'console sign-in not confirmed by the identity provider');
        const reason = error instanceof OidcSignInError ? error.reason : 'the identity provider could not be reached';
        return sendConsolePage(reply, 502, 'Sign-in not completed', [`${reason[0]?.toUpperCase() ?? ''}${reason.slice(1)}.`, 'Sign in again.']);
      } finally {
        void reply.clearCookie(loginCookie, loginCookieOptions);
      }
      const mapped = mapRolesClaim(identity.roles, await listAccounts(db));
      if (mapped.grants.length === 0 && mapped.platformRole === null) {
        logger.warn({ subject: identity.subject.slice(0, 200), ignoredEntries: mapped.ignored }, 'console sign-in without a dirsync role');
        return sendConsolePage(reply, 403, 'No access to dirsync', [
          `You signed in as ${identity.email ?? identity.name}, but your identity has no dirsync role.`,
          'Ask your administrator to give you a role on an account in the identity provider (for example "acme:viewer").',
        ]);
      }
      const created = await createConsoleSession(db, {
        subject: identity.subject,
        name: identity.name,
        email: identity.email,
        method: 'oidc',
        grants: mapped.grants,
        platformRole: mapped.platformRole,
        ttlMs: settings.sessionTtlMs,
      });
      logger.info({ sessionId: created.session.id.slice(0, 8), accounts: mapped.grants.length, platform: mapped.platformRole !== null }, 'console sign-in');
      return startSession(request, reply, created, taken.returnTo);
    },
  });

  const linkNotValid = (reply: FastifyReply) =>
    sendConsolePage(reply, 410, 'Sign-in link not valid', [
      'This sign-in link is not valid any more.',
      'Each link signs in once, for a short time. Make a new one with "dirsync console login".',
    ]);

  const notTheForm = (reply: FastifyReply, status: number) =>
    sendConsolePage(reply, status, 'Sign-in link not used', ['This request was not the sign-in form of a one-time link. Open the link again and press Continue.']);

  // Opening a link only asks: a page of another site (or a mail scanner) that loads it uses
  // nothing and signs nobody in. The page reveals only whether the link can still be used.
  app.get(consoleAuthPaths.link, {
    schema: { hide: true },
    onSend: headers,
    errorHandler: pageOnError,
    // The token is in the query string: only warnings and errors are logged for this route.
    logLevel: 'warn',
    handler: async (request, reply) => {
      const token = queryOf(request).get('token') ?? '';
      const usable = await findUsableConsoleSignInLink(db, token);
      if (!usable) return linkNotValid(reply);
      return sendLinkConfirmationPage(reply, { action: consoleAuthPaths.link, token, role: usable.link.role, accountName: usable.accountName });
    },
  });

  // The confirmation page's form uses the link. Its own scope, so that only this route reads
  // form bodies: no /v1 route accepts what a plain HTML form of another site can send.
  void app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_request, body, done) => {
      done(null, new URLSearchParams(typeof body === 'string' ? body : body.toString('utf8')));
    });
    scope.post(consoleAuthPaths.link, {
      schema: { hide: true },
      onSend: headers,
      errorHandler: (error: Error & { statusCode?: number }, request, reply) => {
        // A body that is not the confirmation form (type, size): said in words, nothing used.
        if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) return notTheForm(reply, error.statusCode);
        return pageOnError(error, request, reply);
      },
      // The token is in the body; the request line is logged only for warnings and errors anyway.
      logLevel: 'warn',
      handler: async (request, reply) => {
        if (!sentByConsole(request, settings.origin)) {
          logger.warn({ origin: String(request.headers.origin ?? '').slice(0, 200), fetchSite: String(request.headers['sec-fetch-site'] ?? '').slice(0, 40) }, 'one-time console link posted from another site');
          return sendConsolePage(reply, 403, 'Sign-in refused', [
            'This sign-in was not sent from the dirsync console, so the link was not used.',
            'If you asked for this link, open it again in the address bar and press Continue.',
          ]);
        }
        if (!(request.body instanceof URLSearchParams)) return notTheForm(reply, 400);
        const token = request.body.get('token') ?? '';
        const used = await consumeConsoleSignInLink(db, token, { sessionTtlMs: settings.sessionTtlMs });
        if (!used.ok) {
          logger.warn({ reason: used.reason }, 'one-time console link refused');
          return linkNotValid(reply);
        }
        logger.info({ sessionId: used.created.session.id.slice(0, 8), accountId: used.link.accountId, role: used.link.role }, 'console sign-in with a one-time link');
        await recordAudit(db, {
          accountId: used.link.accountId,
          actor: `console:one-time link (session ${used.created.session.id.slice(0, 8)})`,
          action: 'console.sign_in_link.used',
          details: { linkId: used.link.id, role: used.link.role },
        });
        return startSession(request, reply, used.created, '/console/');
      },
    });
  });

  app.get(consoleAuthPaths.session, { schema: { hide: true }, onSend: headers }, async (request) => {
    const token = sessionTokenOf(request, settings);
    const session = token === undefined ? undefined : await findConsoleSession(db, token);
    if (!session || token === undefined) throw new ProblemError(401, 'unauthenticated', 'you are not signed in to the console');
    return sessionAnswer(db, session, token);
  });

  app.post(consoleAuthPaths.logout, { schema: { hide: true }, onSend: headers }, async (request, reply) => {
    const token = sessionTokenOf(request, settings);
    if (token !== undefined) {
      const origin = request.headers.origin;
      if (origin !== undefined && origin !== settings.origin) throw new ProblemError(403, 'origin-not-allowed', 'signing out must come from the console');
      if (!csrfTokenMatches(token, request.headers[csrfHeader])) {
        throw new ProblemError(403, 'csrf-token-invalid', 'signing out needs the X-CSRF-Token header with the csrfToken of GET /console/auth/session');
      }
      await deleteConsoleSession(db, token);
    }
    clearSessionCookie(reply, settings);
    return reply.code(204).send();
  });
}
