import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { getIntegration, type Integration, type KeyRing } from '@dirsync/db';
import { accountOf } from '../auth.ts';
import type { ApiDeps } from '../context.ts';
import { notFound, ProblemError, problemSchema } from '../problems.ts';

/** The integration `id` of the caller's account; 404 for any other (another account's reads as absent). */
export async function ownIntegration(deps: ApiDeps, request: FastifyRequest, id: string): Promise<Integration> {
  const accountId = accountOf(request);
  const integration = await getIntegration(deps.db, id);
  if (!integration || integration.accountId !== accountId) throw notFound(`integration ${id}`);
  return integration;
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
