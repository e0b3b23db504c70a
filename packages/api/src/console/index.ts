import cookie from '@fastify/cookie';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Db } from '@dirsync/db';
import type { ApiApp } from '../context.ts';
import { consoleAuthPaths, registerConsoleAuthRoutes } from './routes.ts';
import { type ConsoleOidcClient, type ConsoleOidcSettings, createConsoleOidcClient } from './oidc.ts';
import { type ConsoleSessionSettings, sessionCookieName } from './session.ts';
import { registerConsoleStatic } from './static.ts';

export { consoleAuthPaths, safeReturnTo, type ConsoleSessionAnswer } from './routes.ts';
export { mapRolesClaim, defaultRolesClaim } from './claims.ts';
export { consoleContentSecurityPolicy, assetPathUnder } from './static.ts';
export { type ConsoleOidcSettings, isLoopbackHttp } from './oidc.ts';
export { type ConsoleSessionSettings, csrfTokenOf, sessionCookieName, loginCookieName, scopesOfRole } from './session.ts';

/** Option `console` of createApiServer: the console's files, public URL and sign-in. */
export interface ApiConsoleOptions {
  /** Directory of the built SPA (`consoleAssetsDir` of @dirsync/console). */
  readonly assetsDir: string;
  /** Public base URL of the API and console (`https://dirsync.example.com`); https makes the cookie Secure. */
  readonly publicUrl: string;
  /** How long a session lives (default 8 hours). */
  readonly sessionTtlMs?: number | undefined;
  /** Absent: sign-in by one-time link only. */
  readonly oidc?: ConsoleOidcSettings | undefined;
  /** How long a user may take at the identity provider (default 10 minutes). */
  readonly oidcLoginTtlMs?: number | undefined;
}

/** The console's settings, checked once when the server is built. */
export interface ConsoleSetup {
  readonly options: ApiConsoleOptions;
  readonly settings: ConsoleSessionSettings;
  readonly publicUrl: string;
  readonly oidc: ConsoleOidcClient | undefined;
}

/** Checks the console's options (throws on a public URL that is not http(s), or an insecure issuer). */
export function prepareConsole(options: ApiConsoleOptions): ConsoleSetup {
  const url = new URL(options.publicUrl);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`the console URL must be http or https: ${options.publicUrl}`);
  // The console's pages are built for /console at the root of their origin.
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') throw new Error(`the console URL must be an origin without a path (the console is served at /console): ${options.publicUrl}`);
  const publicUrl = url.origin;
  const secure = url.protocol === 'https:';
  const settings: ConsoleSessionSettings = {
    cookieName: sessionCookieName(secure),
    origin: url.origin,
    secure,
    sessionTtlMs: options.sessionTtlMs ?? 8 * 3_600_000,
  };
  const oidc = options.oidc ? createConsoleOidcClient(options.oidc, `${publicUrl}${consoleAuthPaths.callback}`) : undefined;
  return { options, settings, publicUrl, oidc };
}

/** Registers the cookie parser and the console's static files on the whole server. */
export async function registerConsole(app: FastifyInstance, setup: ConsoleSetup): Promise<void> {
  await app.register(cookie);
  await registerConsoleStatic(app, setup.options.assetsDir);
}

/** Registers the sign-in routes (on the server's public, per-address rate-limited scope). */
export function registerConsoleAuth(app: ApiApp, setup: ConsoleSetup, deps: { db: Db; logger: Logger }): void {
  registerConsoleAuthRoutes(app, {
    db: deps.db,
    logger: deps.logger,
    settings: setup.settings,
    oidc: setup.oidc,
    publicUrl: setup.publicUrl,
    oidcLoginTtlMs: setup.options.oidcLoginTtlMs ?? 10 * 60_000,
  });
}
