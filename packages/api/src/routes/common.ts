import { problemSchema } from '@dirsync/contracts';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { getIntegration, type Integration, type KeyRing } from '@dirsync/db';
import { accountOf } from '../auth.ts';
import type { ApiDeps } from '../context.ts';
import { notFound, ProblemError } from '../problems.ts';

/** The integration `id` of the caller's account; 404 for any other (another account's reads as absent). */
export async function ownIntegration(deps: ApiDeps, request: FastifyRequest, id: string): Promise<Integration> {
  const accountId = accountOf(request);
  const integration = await getIntegration(deps.db, id);
  if (!integration || integration.accountId !== accountId) throw notFound(`integration ${id}`);
  return integration;
}

/**
 * Why `value` is not a console page to send a browser back to, or undefined when it is: a path
 * under `/console/` with an optional query. Anything a browser could read as another origin or
 * another part of the site (`//host`, a backslash, a scheme, dot segments, encoded slashes, dots
 * or backslashes, whitespace or control characters, a fragment) is refused, so a redirect to it
 * can never leave the console.
 */
export function consoleReturnProblem(value: string): string | undefined {
  if (!value.startsWith('/console/')) return 'must be a path under /console/';
  if (value.includes('//') || value.includes('\\')) return 'must not contain "//" or a backslash';
  if (!/^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$/.test(value)) return 'must be a plain path: no spaces, control characters or fragment';
  if (/%(2e|2f|5c|00)/i.test(value)) return 'must not contain encoded dots, slashes or backslashes';
  const path = value.split('?')[0] ?? '';
  if (path.split('/').some((segment) => segment === '.' || segment === '..')) return 'must not contain "." or ".." segments';
  return undefined;
}

/** A 422 listing problems of body fields (`[field, message]`), each under `errors`. */
export function invalidFields(problems: ReadonlyArray<readonly [string, string]>): ProblemError {
  const detail = problems.map(([field, message]) => `${field}: ${message}`).join('; ');
  return new ProblemError(422, 'invalid-input', detail, { extensions: { errors: problems.map(([path, message]) => ({ in: 'body', path, message })) } });
}

/** Error answers every authenticated route may give, for the OpenAPI document. */
export function withProblems<R extends Record<number, z.ZodType>>(responses: R) {
  return { ...responses, 400: problemSchema, 401: problemSchema, 403: problemSchema, 404: problemSchema, 429: problemSchema };
}

/** OpenAPI security requirement of authenticated routes. */
export const bearer = [{ apiKey: [] }];

/** The server's key ring; 503 when it has none (secrets, and signed consent states, need it). */
export function requireKeyRing(deps: ApiDeps, consequence = 'secrets cannot be stored'): KeyRing {
  if (!deps.keyRing) throw new ProblemError(503, 'secrets-unavailable', `this API server has no secret key configured (DIRSYNC_SECRET_KEY): ${consequence}`);
  return deps.keyRing;
}
