import { z } from 'zod';
import type { DestinationPolicy } from '../net/destination.ts';
import type { LdapConnectOptions, LdapReadLimits } from './connection.ts';
import { defaultMaxBufferedBytes, parseLdapUrl } from './connection.ts';
import { isDnWithin, normalizeDn, parseDn } from './dn.ts';
import { parseFilter } from './filter.ts';

/**
 * Settings building blocks shared by the LDAP-based providers' schemas (Active Directory,
 * Domino): DN and filter strings, bounded integers, attribute names, and the checks that span
 * several fields (TLS mode against the URL scheme, nested base DNs).
 */

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A DN string; `what` names it in messages (`base DN is not a valid DN: …`). */
export const dnString = (what: string) =>
  z.string({ error: `${what} must be a string` }).superRefine((value, ctx) => {
    if (value.trim() === '') {
      ctx.addIssue({ code: 'custom', message: `${what} is empty` });
      return;
    }
    try {
      parseDn(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `${what} is not a valid DN: ${reason(error)}` });
    }
  });

/** An RFC 4515 filter string (`what` names it when it is not a string at all). */
export const filterString = (what: string) =>
  z.string({ error: `${what} must be a string` }).superRefine((value, ctx) => {
    try {
      parseFilter(value);
    } catch (error) {
      // The issue's path names the field already.
      ctx.addIssue({ code: 'custom', message: reason(error) });
    }
  });

const attributeName = /^[A-Za-z][A-Za-z0-9-]*$/;

/** Attribute or object class names. */
export const attributeNames = (what: string) =>
  z.array(z.string().regex(attributeName, `${what} must be attribute or object class names (letters, digits, hyphens)`));

/** A whole number within bounds. */
export const boundedInt = (what: string, min: number, max: number) =>
  z
    .number({ error: `${what} must be a number` })
    .int(`${what} must be a whole number`)
    .min(min, `${what} must be at least ${min}`)
    .max(max, `${what} must be at most ${max}`);

/** A problem found across fields: where it is and what it is. */
export interface SettingsProblem {
  readonly path: (string | number)[];
  readonly message: string;
}

/** TLS settings as the connection settings carry them. */
export interface TlsSettings {
  readonly mode?: 'ldaps' | 'starttls' | 'none' | undefined;
  readonly caPem?: string | undefined;
  readonly allowInsecure: boolean;
  readonly serverName?: string | undefined;
}

/** The fields every LDAP-based provider's settings share. */
export interface LdapConnectionSettings {
  readonly url: string;
  readonly bindDn: string;
  readonly tls: TlsSettings;
  readonly timeouts: { readonly connectMs: number; readonly operationMs: number; readonly searchTimeLimitSeconds: number };
  readonly limits: { readonly maxMessageMiB: number };
}

/**
 * TLS mode against URL scheme, and plain LDAP only with `allowInsecure`. Takes the raw
 * (possibly invalid) settings, so every problem can be reported at once.
 */
export function tlsProblems(settings: { url?: unknown; tls?: unknown } | undefined): SettingsProblem[] {
  const problems: SettingsProblem[] = [];
  const url = typeof settings?.url === 'string' ? settings.url : undefined;
  let scheme: 'ldap' | 'ldaps' | undefined;
  if (url !== undefined) {
    try {
      scheme = parseLdapUrl(url).secure ? 'ldaps' : 'ldap';
    } catch {
      scheme = undefined;
    }
  }
  const tls = typeof settings?.tls === 'object' && settings.tls !== null ? (settings.tls as { mode?: unknown; allowInsecure?: unknown }) : undefined;
  const mode = tls?.mode;
  if (scheme === 'ldaps' && mode !== undefined && mode !== 'ldaps') {
    problems.push({ path: ['tls', 'mode'], message: `an ldaps:// URL needs tls.mode "ldaps", not "${String(mode)}"` });
  }
  if (scheme === 'ldap' && mode === 'ldaps') problems.push({ path: ['tls', 'mode'], message: 'tls.mode "ldaps" needs an ldaps:// URL' });
  if (mode === 'none' && tls?.allowInsecure !== true) {
    problems.push({
      path: ['tls', 'allowInsecure'],
      message: 'tls.mode "none" sends the bind password unencrypted: use ldaps or starttls, or set tls.allowInsecure: true to accept the risk',
    });
  }
  return problems;
}

/**
 * Base DNs listed twice or, for subtree searches, nested in one another (their entries would be
 * read twice). One-level searches of nested bases read disjoint entries: only repeats count.
 */
export function nestedBaseProblems(bases: readonly unknown[] | undefined, scope: 'one' | 'sub' = 'sub'): string[] {
  const strings = (bases ?? []).filter((b): b is string => typeof b === 'string');
  let normalized: string[];
  try {
    normalized = strings.map((b) => normalizeDn(b));
  } catch {
    return [];
  }
  const problems: string[] = [];
  normalized.forEach((b, i) =>
    normalized.forEach((other, j) => {
      if (i !== j && (scope === 'sub' ? isDnWithin(b, other) : b === other) && (b !== other || i > j)) {
        problems.push(`base DN "${strings[i]}" ${b === other ? 'is listed twice' : `lies within "${strings[j]}"`}; entries would be read twice`);
      }
    }),
  );
  return problems;
}

/** The TLS mode in effect: explicit, or derived from the URL scheme (StartTLS for ldap://). */
export function tlsModeOf(settings: Pick<LdapConnectionSettings, 'url' | 'tls'>): 'ldaps' | 'starttls' | 'none' {
  return settings.tls.mode ?? (parseLdapUrl(settings.url).secure ? 'ldaps' : 'starttls');
}

/** Connection options from validated settings, going only where `destinations` allows (default: the strict policy). */
export function connectOptionsOf(
  settings: LdapConnectionSettings,
  password: string | undefined,
  signal: AbortSignal | undefined,
  destinations?: DestinationPolicy,
): LdapConnectOptions {
  return {
    url: settings.url,
    tls: {
      mode: tlsModeOf(settings),
      caPem: settings.tls.caPem,
      allowInsecure: settings.tls.allowInsecure,
      serverName: settings.tls.serverName,
    },
    bindDn: settings.bindDn,
    password,
    connectTimeoutMs: settings.timeouts.connectMs,
    operationTimeoutMs: settings.timeouts.operationMs,
    limits: readLimitsOf(settings),
    signal,
    ...(destinations ? { destinations } : {}),
  };
}

const mebibyte = 1024 * 1024;

/**
 * The read bounds an integration's `limits` setting gives: its largest message, and room to hold
 * that message beside the page's other entries (never less than the default per-request bound).
 */
export function readLimitsOf(settings: Pick<LdapConnectionSettings, 'limits'>): LdapReadLimits {
  const maxMessageBytes = settings.limits.maxMessageMiB * mebibyte;
  return { maxMessageBytes, maxBufferedBytes: Math.max(defaultMaxBufferedBytes, maxMessageBytes + 64 * mebibyte) };
}
