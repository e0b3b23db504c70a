import { ConfigError, ProviderError } from '../errors.ts';
import { type DestinationPolicy, DestinationRefusedError, UnexpectedPeerError } from '../net/destination.ts';
import { serverText } from '../text.ts';
import type { ConnectionCheck } from '../types.ts';
import { LdapConnection, parseLdapUrl } from './connection.ts';
import { type LdapConnectionSettings, connectOptionsOf, tlsModeOf } from './settings.ts';

/** Longest error message shown on a checklist line. */
const describedErrorLimit = 1000;

/**
 * The message of any error, for a checklist line (provider errors never hold secrets). Server
 * text in it was sanitised where it was read; an error from elsewhere may quote a server too, so
 * every message is sanitised and capped again here.
 */
export function describeError(error: unknown): string {
  return serverText(error instanceof Error ? error.message : String(error), describedErrorLimit);
}

// The layer words every TLS failure this way (see errors.ts and connection.ts).
function isTlsProblem(error: unknown): boolean {
  return error instanceof ConfigError && /^TLS |refused StartTLS|during the TLS handshake/.test(error.message);
}

/**
 * The `destination` line of a connection the destination policy refused (the address is not
 * allowed, or the peer did not answer as LDAP): nothing was sent, so no later line applies.
 */
export function destinationCheck(error: unknown): ConnectionCheck | undefined {
  if (error instanceof DestinationRefusedError || error instanceof UnexpectedPeerError) {
    return { name: 'destination', ok: false, detail: `refused: ${error.message}` };
  }
  return undefined;
}

/** True when `signal` ended because its deadline passed (AbortSignal.timeout), not by a caller's abort. */
export function deadlinePassed(signal: AbortSignal | undefined): boolean {
  const reason: unknown = signal?.aborted ? signal.reason : undefined;
  // By name: the DOMException may come from another realm than this module's Error.
  return typeof reason === 'object' && reason !== null && (reason as { name?: unknown }).name === 'TimeoutError';
}

/**
 * The checklist line for a step still waiting when Test Connection's deadline passed, naming the
 * step instead of a bare "operation was aborted"; undefined when the signal was aborted for
 * another reason (the caller rethrows that).
 */
export function hungCheck(name: string, what: string, signal: AbortSignal | undefined): ConnectionCheck | undefined {
  if (!deadlinePassed(signal)) return undefined;
  return { name, ok: false, detail: `${what} did not answer before the Test Connection deadline (the server hung at this step)` };
}

/**
 * Ends a checklist whose step hung past the deadline with that step's line; rethrows the abort
 * reason when the signal was aborted for another reason.
 */
export function hungReport(checks: ConnectionCheck[], name: string, what: string, signal: AbortSignal): { ok: false; checks: ConnectionCheck[] } {
  const line = hungCheck(name, what, signal);
  if (!line) throw signal.reason;
  checks.push(line);
  return { ok: false, checks };
}

/** Thrown inside a Test Connection once a step hung past the deadline: the checklist ends there. */
export class StepHung extends Error {
  override readonly name = 'StepHung';
}

/** The checklist line a step of opening a connection belongs to. */
function checkNameOf(step: string): 'connect' | 'tls' | 'bind' {
  if (step === 'bind') return 'bind';
  if (step === 'StartTLS') return 'tls';
  return 'connect';
}

/** The `tls` line: how the connection is secured and against what the certificate was verified. */
export function tlsCheck(settings: Pick<LdapConnectionSettings, 'url' | 'tls'>, inUse?: 'ldaps' | 'starttls'): ConnectionCheck {
  const mode = tlsModeOf(settings);
  if (mode === 'none') {
    return { name: 'tls', ok: true, warning: true, detail: 'not in use: plain LDAP allowed by tls.allowInsecure; the bind password crosses the network unencrypted' };
  }
  const trust = settings.tls.caPem ? 'the configured CA' : 'the system CAs';
  const how = (inUse ?? mode) === 'ldaps' ? 'LDAPS' : 'StartTLS';
  return { name: 'tls', ok: true, detail: `${how}, certificate verified against ${trust}` };
}

/** Outcome of the first steps of a Test Connection. */
export interface CheckedConnection {
  /** The bound connection, when connect, TLS and bind all worked; the caller closes it. */
  readonly connection: LdapConnection | undefined;
  /** `connect`, `tls` and `bind` lines, as far as they got. */
  readonly checks: ConnectionCheck[];
}

/**
 * Connect, TLS and bind as a checklist. Never throws for directory problems (each becomes a
 * failed line); an abort is rethrown. Without a password it still tells whether the server and
 * TLS work, by connecting without binding.
 */
export async function connectForCheck(
  settings: LdapConnectionSettings,
  password: string | undefined,
  signal?: AbortSignal,
  destinations?: DestinationPolicy,
): Promise<CheckedConnection> {
  const checks: ConnectionCheck[] = [];
  const target = parseLdapUrl(settings.url).normalized;
  let step = 'TCP connect';
  const onStep = (next: string) => {
    step = next;
  };
  // Lines of the steps before `step`, which all worked, then the line of the one that hung.
  const hung = (): CheckedConnection | undefined => {
    const name = checkNameOf(step);
    const line = hungCheck(name, `${target} (${step})`, signal);
    if (!line) return undefined;
    if (name !== 'connect') checks.push({ name: 'connect', ok: true, detail: `connected to ${target}` });
    if (name === 'bind') checks.push(tlsCheck(settings));
    checks.push(line);
    return { connection: undefined, checks };
  };
  if (password === undefined || password === '') {
    try {
      const anonymous = await LdapConnection.open({ ...connectOptionsOf(settings, undefined, signal, destinations), bindDn: undefined, onStep });
      checks.push({ name: 'connect', ok: true, detail: `connected to ${target}` });
      checks.push(tlsCheck(settings, anonymous.tlsInUse));
      await anonymous.close();
    } catch (error) {
      if (signal?.aborted) return hung() ?? Promise.reject(signal.reason);
      checks.push(destinationCheck(error) ?? { name: 'connect', ok: false, detail: describeError(error) });
      return { connection: undefined, checks };
    }
    checks.push({ name: 'bind', ok: false, detail: `no bind password is stored for ${settings.bindDn}` });
    return { connection: undefined, checks };
  }
  try {
    const connection = await LdapConnection.open({ ...connectOptionsOf(settings, password, signal, destinations), onStep });
    checks.push({ name: 'connect', ok: true, detail: `connected to ${target}` });
    checks.push(tlsCheck(settings, connection.tlsInUse));
    checks.push({ name: 'bind', ok: true, detail: `bound as ${settings.bindDn}` });
    return { connection, checks };
  } catch (error) {
    if (signal?.aborted) return hung() ?? Promise.reject(signal.reason);
    const refused = destinationCheck(error);
    if (refused) {
      checks.push(refused);
    } else if (error instanceof ProviderError && error.code === 'auth') {
      // Bind comes after connect and TLS, so both worked.
      checks.push({ name: 'connect', ok: true, detail: `connected to ${target}` });
      checks.push(tlsCheck(settings));
      checks.push({ name: 'bind', ok: false, detail: describeError(error) });
    } else if (isTlsProblem(error)) {
      checks.push({ name: 'connect', ok: true, detail: `reached ${target}` });
      checks.push({ name: 'tls', ok: false, detail: describeError(error) });
    } else {
      checks.push({ name: 'connect', ok: false, detail: describeError(error) });
    }
    return { connection: undefined, checks };
  }
}
