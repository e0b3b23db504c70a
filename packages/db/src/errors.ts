/**
 * Typed errors raised by the repositories and the secret store. `retryable` tells a job
 * processor whether trying again can help; messages never contain secrets or query parameters.
 */
export class DbError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  constructor(code: string, message: string, retryable: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.retryable = retryable;
  }
}

/** Input the caller should have refused (empty name, threshold out of range). */
export class InvalidInputError extends DbError {
  constructor(message: string) {
    super('invalid_input', message, false);
  }
}

/** A page cursor that no read of this package produced (garbled, edited or from elsewhere). */
export class InvalidCursorError extends DbError {
  constructor() {
    super('invalid_cursor', 'cursor is not one this API returned: start again without it', false);
  }
}

/** The named record does not exist. */
export class NotFoundError extends DbError {
  constructor(message: string) {
    super('not_found', message, false);
  }
}

/** A uniqueness rule refused the write (for example a duplicate integration name). */
export class ConflictError extends DbError {
  constructor(message: string) {
    super('conflict', message, false);
  }
}

/** The record is not in a state that allows the operation (for example approving a finished run). */
export class InvalidStateError extends DbError {
  constructor(message: string) {
    super('invalid_state', message, false);
  }
}

/** A configured secret key is unusable (wrong length, not base64): a configuration mistake. */
export class SecretKeyError extends DbError {
  constructor(message: string) {
    super('secret_key', message, false);
  }
}

/** Why a stored secret could not be decrypted. */
export type SecretDecryptFailure = 'unknown_key' | 'tampered' | 'malformed';

/**
 * A stored secret cannot be decrypted: its key is not configured, or the ciphertext was altered
 * or moved to another record (authentication failed). Retrying cannot help.
 */
export class SecretDecryptError extends DbError {
  readonly reason: SecretDecryptFailure;
  constructor(reason: SecretDecryptFailure, message: string) {
    super('secret_decrypt', message, false);
    this.reason = reason;
  }
}

/** SQLSTATE and constraint of a PostgreSQL error, looked up through drizzle's wrapping. */
export interface PgErrorInfo {
  code: string;
  constraint: string | undefined;
}

/** Finds the PostgreSQL error behind `error` (drizzle wraps it in `cause`), if there is one. */
export function pgErrorOf(error: unknown): PgErrorInfo | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth += 1) {
    const candidate = current as Error & { code?: unknown; constraint_name?: unknown };
    if (typeof candidate.code === 'string' && /^[0-9A-Z]{5}$/.test(candidate.code)) {
      const constraint = typeof candidate.constraint_name === 'string' ? candidate.constraint_name : undefined;
      return { code: candidate.code, constraint };
    }
    current = candidate.cause;
  }
  return undefined;
}

/** SQLSTATE codes the repositories translate. */
export const pgCodes = {
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
  checkViolation: '23514',
} as const;

/**
 * A write of a sync attempt that no longer owns its integration's lock (or its run) was refused:
 * another attempt took over. The attempt must stop without writing anything else.
 */
export class FencedOutError extends DbError {
  constructor(message: string) {
    super('fenced_out', message, false);
  }
}

// postgres.js codes for a connection that could not be made or was lost, and the SQLSTATEs of a
// server that refuses work for now (shutting down, starting, out of connections).
const unavailableCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006']);

/**
 * True when `error` (or what it wraps) means PostgreSQL cannot be used right now: nothing
 * listens, the connection broke or timed out, or the server refuses connections for the moment.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  // Duck-typed: socket errors may come from another realm (a test runner's), where
  // `instanceof Error` is false.
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth += 1) {
    const { code, errors, cause } = current as { code?: unknown; errors?: unknown; cause?: unknown };
    if (typeof code === 'string' && unavailableCodes.has(code)) return true;
    // An AggregateError (every address of a host refused) carries the reasons in `errors`.
    if (Array.isArray(errors) && errors.some((inner) => isDatabaseUnavailable(inner))) return true;
    current = cause;
  }
  return false;
}
