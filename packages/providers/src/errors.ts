/**
 * Typed errors raised at the directory boundary. `retryable` decides whether the job is retried
 * (with backoff) or failed at once; messages never contain secrets.
 */
export class ProviderError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  constructor(code: string, message: string, retryable: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.retryable = retryable;
  }
}

/** Credentials refused or insufficient: retrying cannot help. */
export class AuthError extends ProviderError {
  constructor(message: string, options?: ErrorOptions) {
    super('auth', message, false, options);
  }
}

/** Settings that cannot work (bad base DN, filter, URL, TLS setup): retrying cannot help. */
export class ConfigError extends ProviderError {
  constructor(message: string, options?: ErrorOptions) {
    super('config', message, false, options);
  }
}

/**
 * The server broke the LDAP protocol or a client-side bound (message size, bytes or entries per
 * page). Not retried: the same server would send the same bytes, and each attempt would buffer
 * them again.
 */
export class ProtocolError extends ProviderError {
  constructor(message: string, options?: ErrorOptions) {
    super('protocol', message, false, options);
  }
}

/** Server busy, unavailable, throttling or timing out: retry with backoff. */
export class UnavailableError extends ProviderError {
  /** Server-advised delay before the next attempt, when it gave one. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options?: ErrorOptions & { retryAfterMs?: number }) {
    super('unavailable', message, true, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** The delta cursor is unusable (expired, other server, wrong shape): the run becomes a full sync. */
export class CursorRejectedError extends ProviderError {
  constructor(reason: string, options?: ErrorOptions) {
    super('cursor_rejected', reason, false, options);
  }
}
