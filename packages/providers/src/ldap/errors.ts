import { SearchResponse, StatusCodeParser } from 'ldapts';
import { AuthError, ConfigError, ProtocolError, ProviderError, UnavailableError } from '../errors.ts';
import { serverText } from '../text.ts';
import type { LdapResult } from './protocol.ts';
import { LdapProtocolError } from './protocol-error.ts';

export { LdapProtocolError };

/** What was being done when an error happened; shapes the message. Never holds a secret. */
export interface LdapErrorContext {
  readonly url: string;
  readonly operation: 'connect' | 'starttls' | 'bind' | 'search' | 'read' | 'extended';
  /** The step of `connect` under way (TCP connect, TLS handshake, StartTLS, bind, ...), when known. */
  readonly step?: string;
  /** Search base or entry DN, when the operation had one. */
  readonly base?: string;
  readonly bindDn?: string;
}

/** Raised by the connection when the server stays silent past the operation timeout. */
export class LdapTimeoutError extends Error {
  override readonly name = 'LdapTimeoutError';
}

/** Raised when the server closed the connection (or announced it would) while work was pending. */
export class LdapConnectionClosedError extends Error {
  override readonly name = 'LdapConnectionClosedError';
}

/** Carries the LDAP result code on the `cause` chain of a mapped error. */
export class LdapResultError extends Error {
  override readonly name = 'LdapResultError';
  readonly resultCode: number;
  readonly matchedDn: string;
  constructor(result: LdapResult) {
    // ldapts knows the RFC 4511 names of the codes; reuse its wording as the cause.
    // The diagnostic is the server's text: only its sanitised head reaches any message.
    const named = StatusCodeParser.parse(
      new SearchResponse({ messageId: 0, status: result.resultCode, errorMessage: serverText(result.diagnosticMessage) }),
    );
    super(named.message, { cause: named });
    this.resultCode = result.resultCode;
    this.matchedDn = serverText(result.matchedDn);
  }
}

/**
 * The LDAP result code behind a mapped error, if any: callers that treat a code specially (a
 * Domino search answering sizeLimitExceeded is split, not failed) look it up here.
 */
export function ldapResultCode(error: unknown): number | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof LdapResultError) return e.resultCode;
  }
  return undefined;
}

function where(c: LdapErrorContext): string {
  return c.base === undefined ? c.url : `${c.base} on ${c.url}`;
}

// The diagnostic message is whatever the server chose to send (megabytes, terminal escapes):
// taken sanitised and capped, as is every other server string that reaches a message.
function diag(result: LdapResult): string {
  const text = serverText(result.diagnosticMessage);
  return text ? ` (server says: ${text})` : '';
}

// Active Directory (and Samba) explain a refused bind with a Win32 code: "…, data 52e, v1db1".
const adBindReasons: Readonly<Record<string, string>> = {
  '525': 'no such account',
  '52e': 'wrong password',
  '530': 'the account may not log on at this time',
  '531': 'the account may not log on from this workstation',
  '532': 'the password has expired',
  '533': 'the account is disabled',
  '701': 'the account has expired',
  '773': 'the password must be changed before the account can bind',
  '775': 'the account is locked out',
};

function activeDirectoryBindReason(diagnostic: string): string {
  const code = /\bdata ([0-9a-f]{3,4})\b/i.exec(diagnostic)?.[1]?.toLowerCase();
  const text = code === undefined ? undefined : adBindReasons[code];
  return text ? `: ${text}` : '';
}

/** Maps a non-success LDAP result to the typed error that decides whether to retry. */
export function resultError(result: LdapResult, c: LdapErrorContext): ProviderError {
  const cause = new LdapResultError(result);
  const options = { cause };
  const d = diag(result);
  const who = c.bindDn ? ` as ${c.bindDn}` : '';
  switch (result.resultCode) {
    case 49:
      return new AuthError(`invalid credentials${who} on ${c.url}${activeDirectoryBindReason(result.diagnosticMessage)}${d}`, options);
    case 50:
      return new AuthError(`insufficient access rights${who} to ${c.operation} ${where(c)}${d}`, options);
    case 7:
    case 8:
    case 48:
      return new AuthError(`the server refused this kind of authentication${who} on ${c.url}: it requires stronger authentication${d}`, options);
    case 13:
      return new ConfigError(`${c.url} requires a confidential (TLS) connection; use ldaps or StartTLS${d}`, options);
    case 32:
      return new ConfigError(
        `${c.base ?? 'the entry'} does not exist on ${c.url}${result.matchedDn ? ` (closest existing entry: ${serverText(result.matchedDn)})` : ''}${d}`,
        options,
      );
    case 34:
      return new ConfigError(`invalid DN syntax in ${c.operation} of ${where(c)}${d}`, options);
    case 10:
      return new ConfigError(
        `${where(c)} is held by another server (referral${result.referrals.length ? ` to ${serverText(result.referrals.slice(0, 5).join(', '))}` : ''}); point the settings at that server`,
        options,
      );
    case 4:
      return new ConfigError(`the server's size limit was exceeded searching ${where(c)}; enable paged results or narrow the filter${d}`, options);
    case 11:
      return new ConfigError(`an administrative limit was exceeded searching ${where(c)}${d}`, options);
    case 12:
      return new ConfigError(`${c.url} does not support a control this ${c.operation} requires${d}`, options);
    case 2:
      return new ConfigError(`protocol error in ${c.operation} on ${c.url}${d}`, options);
    case 16:
    case 17:
    case 18:
    case 21:
      return new ConfigError(`the server rejected an attribute or filter in the ${c.operation} of ${where(c)}${d}`, options);
    case 53:
      return new ConfigError(`the server is unwilling to perform the ${c.operation} of ${where(c)}${d}`, options);
    case 3:
      return new UnavailableError(`the server's time limit was exceeded in the ${c.operation} of ${where(c)}${d}`, options);
    case 51:
      return new UnavailableError(`${c.url} is busy${d}`, options);
    case 52:
      return new UnavailableError(`${c.url} is unavailable${d}`, options);
    default:
      return new UnavailableError(`${c.operation} of ${where(c)} failed: ${cause.message}`, options);
  }
}

const unreachableCodes = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN',
  'ENETDOWN', 'EAI_AGAIN', 'ECONNABORTED', 'ENOTCONN',
]);

function isCertificateProblem(code: string): boolean {
  return /CERT|UNABLE_TO_|SELF_SIGNED|ALTNAME|HOSTNAME_MISMATCH|INVALID_CA/.test(code);
}

/**
 * Maps anything thrown at the directory boundary to a typed error. Provider errors pass through;
 * socket, TLS and timeout failures get a message naming the server, never a credential.
 */
export function toProviderError(error: unknown, c: LdapErrorContext): ProviderError {
  if (error instanceof ProviderError) return error;
  const options = { cause: error };
  if (error instanceof LdapTimeoutError) {
    return new UnavailableError(`${c.operation} of ${where(c)} timed out${c.step ? ` during the ${c.step}` : ''}: ${error.message}`, options);
  }
  if (error instanceof LdapConnectionClosedError) {
    return new UnavailableError(`connection to ${c.url} was lost during the ${c.operation}: ${error.message}`, options);
  }
  if (error instanceof LdapProtocolError) {
    if (error.kind === 'limit') return new ProtocolError(`${c.operation} of ${where(c)} stopped: ${error.message}`, options);
    return new ProtocolError(
      `${c.url} sent data that is not valid LDAP during the ${c.operation} (${error.message}); the connection was closed. Check the URL and TLS mode`,
      options,
    );
  }
  const code = typeof (error as { code?: unknown })?.code === 'string' ? (error as { code: string }).code : '';
  // Node's socket and TLS messages can quote the peer (a certificate's names): sanitised too.
  const message = serverText(error instanceof Error ? error.message : String(error), 500);
  if (/before secure TLS connection was established/.test(message)) {
    // Typically LDAPS spoken to a plain LDAP port: the server drops the TLS hello.
    return new ConfigError(`${c.url} closed the connection during the TLS handshake (${code || 'no code'}); check that the port serves LDAPS, or use StartTLS on the LDAP port`, options);
  }
  if (unreachableCodes.has(code)) return new UnavailableError(`cannot reach ${c.url}: ${code}`, options);
  if (code === 'ENOTFOUND') return new ConfigError(`host of ${c.url} not found (DNS)`, options);
  if (isCertificateProblem(code)) {
    return new ConfigError(
      `TLS certificate verification failed for ${c.url}: ${message} (${code}); check tls.caPem (the CA that signed the server certificate) and that the URL host matches the certificate`,
      options,
    );
  }
  if (code === 'EPROTO' || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS')) {
    return new ConfigError(`TLS handshake with ${c.url} failed: ${message}; check the TLS mode and port`, options);
  }
  return new UnavailableError(`${c.operation} of ${where(c)} failed: ${message}`, options);
}
