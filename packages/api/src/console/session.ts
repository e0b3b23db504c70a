import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiScope, ConsoleRole } from '@dirsync/db';

/** What the API's authentication needs to know about console sessions. */
export interface ConsoleSessionSettings {
  /** `dirsync_session`, or `__Host-dirsync_session` when the console is served over https. */
  readonly cookieName: string;
  /** Origin of the console's public URL: a change request from any other origin is refused. */
  readonly origin: string;
  /** Secure cookies (https console URL). */
  readonly secure: boolean;
  /** How long a session lives. */
  readonly sessionTtlMs: number;
}

/** Name of the session cookie for a console served over https or not. */
export function sessionCookieName(secure: boolean): string {
  return secure ? '__Host-dirsync_session' : 'dirsync_session';
}

/** Name of the cookie binding an OpenID Connect sign-in to the browser that started it. */
export function loginCookieName(secure: boolean): string {
  return secure ? '__Host-dirsync_login' : 'dirsync_login';
}

/** Scopes of a console role: the same checks as an API key with these scopes. */
export function scopesOfRole(role: ConsoleRole): ApiScope[] {
  switch (role) {
    case 'viewer':
      return ['read'];
    case 'operator':
      return ['read', 'sync'];
    case 'admin':
      return ['admin'];
  }
}

/**
 * The CSRF token of a session: an HMAC keyed by the cookie's secret token, so it is never stored,
 * only a holder of the cookie can compute it, and it dies with the session.
 */
export function csrfTokenOf(sessionToken: string): string {
  return createHmac('sha256', sessionToken).update('dirsync console csrf').digest('base64url');
}

/** Constant-time check of a request's `X-CSRF-Token` against the session's. */
export function csrfTokenMatches(sessionToken: string, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string') return false;
  const expected = Buffer.from(csrfTokenOf(sessionToken));
  const actual = Buffer.from(header);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** The session cookie's value, when the request carries one. */
export function sessionTokenOf(request: FastifyRequest, settings: ConsoleSessionSettings): string | undefined {
  // Registered with the console only: without it there are no cookies to read.
  const cookies = (request as FastifyRequest & { cookies?: Record<string, string | undefined> }).cookies;
  const value = cookies?.[settings.cookieName];
  return value === undefined || value === '' ? undefined : value;
}

/** Cookie attributes of the session cookie (HttpOnly, SameSite=Lax, Path=/, Secure over https). */
export function sessionCookieOptions(settings: ConsoleSessionSettings, maxAgeSeconds?: number) {
  return {
    httpOnly: true,
    sameSite: 'lax' as const,
    path: '/',
    secure: settings.secure,
    ...(maxAgeSeconds === undefined ? {} : { maxAge: maxAgeSeconds }),
  };
}

/** Sets the session cookie for a token that lives `ttlMs`. */
export function setSessionCookie(reply: FastifyReply, settings: ConsoleSessionSettings, token: string, ttlMs: number): void {
  void reply.setCookie(settings.cookieName, token, sessionCookieOptions(settings, Math.floor(ttlMs / 1000)));
}

/** Clears the session cookie. */
export function clearSessionCookie(reply: FastifyReply, settings: ConsoleSessionSettings): void {
  void reply.clearCookie(settings.cookieName, sessionCookieOptions(settings));
}
