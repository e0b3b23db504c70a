import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Problem } from '@dirsync/contracts';
import { DbError, isDatabaseUnavailable, pgErrorOf } from '@dirsync/db';
import { ControlJobFailedError, ControlTimeoutError, InvalidJobPayloadError, isQueueUnavailable } from '@dirsync/jobs';

/**
 * Seconds a client is asked to wait (`Retry-After`) when a dependency is down: long enough not
 * to hammer a recovering server, short enough that a blip costs little.
 */
export const unavailableRetryAfterSeconds = 5;

/** Media type of every error answer (RFC 9457). */
export const problemContentType = 'application/problem+json';

/** Where problem types are documented: relative to the API, so they resolve on any deployment. */
const typeBase = '/v1/problems/';

/** One problem found in a request, for `errors` of a validation problem. */
export interface FieldProblem {
  /** Where: `body`, `querystring` or `params`. */
  readonly in: string;
  /** Dotted path inside it (`settings.users.baseDns[0]`); empty for the whole part. */
  readonly path: string;
  readonly message: string;
}

const titles: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  410: 'Gone',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/**
 * An error answered as problem+json. `code` becomes the problem type
 * (`/v1/problems/<code>`); `extensions` are extra members (validation errors, a checklist).
 */
export class ProblemError extends Error {
  readonly statusCode: number;
  readonly code: string;
  readonly extensions: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    statusCode: number,
    code: string,
    detail: string,
    options: { extensions?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    super(detail);
    this.name = 'ProblemError';
    this.statusCode = statusCode;
    this.code = code;
    this.extensions = options.extensions ?? {};
    this.headers = options.headers ?? {};
  }
}

/** 404 for a resource the key's account does not have (or that does not exist: the same answer). */
export function notFound(what: string): ProblemError {
  return new ProblemError(404, 'not-found', `${what} not found`);
}

function problemOf(status: number, code: string, detail: string, instance: string, extensions: Record<string, unknown> = {}): Problem {
  return {
    ...extensions,
    type: `${typeBase}${code}`,
    title: titles[status] ?? 'Error',
    status,
    detail,
    instance,
  };
}

function pathOf(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');
}

/** Translates what a handler or a hook threw into status and problem; unknown errors are 500s without details. */
function translate(error: unknown): { status: number; code: string; detail: string; extensions?: Record<string, unknown>; headers?: Record<string, string> } {
  if (error instanceof ProblemError) {
    return { status: error.statusCode, code: error.code, detail: error.message, extensions: { ...error.extensions }, headers: { ...error.headers } };
  }
  if (hasZodFastifySchemaValidationErrors(error)) {
    const part = (error as FastifyError).validationContext ?? 'body';
    const errors: FieldProblem[] = error.validation.map((issue) => ({
      in: part,
      path: pathOf(
        issue.instancePath
          .split('/')
          .filter((p) => p !== '')
          .map((p) => (/^\d+$/.test(p) ? Number(p) : p)),
      ),
      message: issue.message ?? 'invalid',
    }));
    const summary = errors.map((e) => (e.path === '' ? e.message : `${e.path}: ${e.message}`)).join('; ');
    return { status: 400, code: 'invalid-request', detail: `invalid ${part}: ${summary}`, extensions: { errors } };
  }
  if (error instanceof DbError) {
    const byCode: Record<string, [number, string]> = {
      not_found: [404, 'not-found'],
      conflict: [409, 'conflict'],
      invalid_state: [409, 'invalid-state'],
      invalid_input: [422, 'invalid-input'],
      invalid_cursor: [400, 'invalid-cursor'],
    };
    const [status, code] = byCode[error.code] ?? [500, 'internal'];
    return status === 500 ? { status, code, detail: 'internal error' } : { status, code, detail: error.message };
  }
  if (isDatabaseUnavailable(error)) {
    return { status: 503, code: 'database-unavailable', detail: 'the database cannot be reached right now: retry later', headers: { 'retry-after': String(unavailableRetryAfterSeconds) } };
  }
  if (isQueueUnavailable(error)) {
    return { status: 503, code: 'queue-unavailable', detail: 'the queue (Redis) cannot be reached right now: retry later', headers: { 'retry-after': String(unavailableRetryAfterSeconds) } };
  }
  if (error instanceof InvalidJobPayloadError) return { status: 400, code: 'invalid-request', detail: error.message };
  if (error instanceof ControlTimeoutError) return { status: 504, code: 'worker-timeout', detail: error.message };
  if (error instanceof ControlJobFailedError) return { status: 502, code: 'worker-failed', detail: error.message };
  const fastifyError = error as Partial<FastifyError>;
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    // Fastify's own client errors (malformed JSON, body too large, unsupported media type): their
    // messages describe the request, never stored data.
    return { status: fastifyError.statusCode, code: 'invalid-request', detail: fastifyError.message ?? 'invalid request' };
  }
  return { status: 500, code: 'internal', detail: 'internal error' };
}

/** Sends `error` as problem+json; logs server-side failures (5xx) with the error's class, never a body. */
export function sendProblem(error: unknown, request: FastifyRequest, reply: FastifyReply, logger: Logger): FastifyReply {
  const { status, code, detail, extensions, headers } = translate(error);
  if (status >= 500) {
    // A database error's message (and a wrapped query's parameters) can quote what the request
    // sent, secrets included: only its SQLSTATE is logged.
    const pg = pgErrorOf(error);
    const err =
      pg !== undefined
        ? { type: 'DatabaseError', code: pg.code }
        : error instanceof Error
          ? { type: error.name, message: isResponseSerializationError(error) ? 'response did not match its schema' : error.message }
          : { type: typeof error };
    logger.error({ err, reqId: request.id, url: request.routeOptions.url }, 'request failed');
  }
  for (const [name, value] of Object.entries(headers ?? {})) void reply.header(name, value);
  return reply.code(status).type(problemContentType).send(problemOf(status, code, detail, request.url.split('?')[0] ?? '', extensions));
}
