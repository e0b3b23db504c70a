import { ConfigError, ProviderError } from '../errors.ts';
import { type DestinationPolicy, DestinationRefusedError, UnexpectedPeerError } from '../net/destination.ts';
import type { ConnectionCheck } from '../types.ts';
import { LdapConnection, parseLdapUrl } from './connection.ts';
import { type LdapConnectionSettings, connectOptionsOf, tlsModeOf } from './settings.ts';

/** The message of any error, for a checklist line (provider errors never hold secrets). */
export function describeError(error: unknown): string {
  return error instanceof ProviderError ? error.message : error instanceof Error ? error.message : String(error);
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
  if (password === undefined || password === '') {
    try {
      const anonymous = await LdapConnection.open({ ...connectOptionsOf(settings, undefined, signal, destinations), bindDn: undefined });
      checks.push({ name: 'connect', ok: true, detail: `connected to ${target}` });
      checks.push(tlsCheck(settings, anonymous.tlsInUse));
      await anonymous.close();
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      checks.push(destinationCheck(error) ?? { name: 'connect', ok: false, detail: describeError(error) });
      return { connection: undefined, checks };
    }
    checks.push({ name: 'bind', ok: false, detail: `no bind password is stored for ${settings.bindDn}` });
    return { connection: undefined, checks };
  }
  try {
    const connection = await LdapConnection.open(connectOptionsOf(settings, password, signal, destinations));
    checks.push({ name: 'connect', ok: true, detail: `connected to ${target}` });
    checks.push(tlsCheck(settings, connection.tlsInUse));
    checks.push({ name: 'bind', ok: true, detail: `bound as ${settings.bindDn}` });
    return { connection, checks };
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
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
