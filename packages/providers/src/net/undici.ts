import type * as Undici from 'undici';
import { checkedUndiciConnector, type DestinationPolicy } from './destination.ts';

/**
 * undici, the HTTP client of the Entra ID provider and of checked HTTPS connections, imported on
 * first use (later calls get the module the first one loaded): it takes about 7 MB of a process's
 * memory (5.4 MB of it heap), which a worker that syncs only LDAP directories would otherwise
 * carry from start to end.
 */
export function undiciLibrary(): Promise<typeof Undici> {
  return import('undici');
}

/** An undici agent whose every connection passes a destination policy, and the request to send through it. */
export interface CheckedHttp {
  readonly agent: Undici.Agent;
  readonly request: typeof Undici.request;
}

/** Options of {@link checkedHttp}. */
export interface CheckedHttpOptions {
  /** PEM of the only CA trusted, when not the system's. */
  readonly caPem?: string | undefined;
  /** Longest wait for an answer's headers, and between two parts of its body. */
  readonly timeoutMs: number;
  readonly keepAliveTimeoutMs?: number | undefined;
}

/**
 * Loads undici and makes an agent whose connections are checked by `policy` at connect time, on
 * the resolved address (see {@link checkedUndiciConnector}). Close its agent when done.
 */
export async function checkedHttp(policy: DestinationPolicy, options: CheckedHttpOptions): Promise<CheckedHttp> {
  const undici = await undiciLibrary();
  const agent = new undici.Agent({
    connect: checkedUndiciConnector(undici.buildConnector, policy, options.caPem === undefined ? {} : { ca: options.caPem }),
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    ...(options.keepAliveTimeoutMs === undefined ? {} : { keepAliveTimeout: options.keepAliveTimeoutMs }),
  });
  return { agent, request: undici.request };
}
