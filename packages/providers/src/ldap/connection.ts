import net from 'node:net';
import tls from 'node:tls';
import {
  AbandonRequest,
  BindRequest,
  type Control,
  ExtendedRequest,
  type Filter,
  type Message,
  PresenceFilter,
  SearchRequest,
  UnbindRequest,
} from 'ldapts';
import { ConfigError, ProviderError } from '../errors.ts';
import { DestinationPolicy, UnexpectedPeerError } from '../net/destination.ts';
import { refuseUnsafeSecret } from '../net/secrets.ts';
import { serverText } from '../text.ts';
import {
  LdapConnectionClosedError,
  type LdapErrorContext,
  LdapProtocolError,
  LdapTimeoutError,
  resultError,
  toProviderError,
} from './errors.ts';
import {
  type LdapEntry,
  type LdapResponse,
  MessageFramer,
  Op,
  ResultCode,
  decodeEntry,
  decodeResponse,
  defaultMaxMessageBytes,
  messageHeader,
} from './protocol.ts';

/** How a connection is secured. */
export interface LdapTlsOptions {
  /** `ldaps`: TLS from the first byte; `starttls`: upgrade an ldap:// connection; `none`: plain. */
  readonly mode: 'ldaps' | 'starttls' | 'none';
  /** PEM of the CA(s) to trust; the system CAs when absent. Verification is never turned off. */
  readonly caPem?: string | undefined;
  /** Must be true for `mode: 'none'`: the bind password then crosses the network in clear. */
  readonly allowInsecure?: boolean | undefined;
  /** Name to verify the certificate against when it differs from the URL host. */
  readonly serverName?: string | undefined;
}

/** Everything needed to open a bound connection. */
export interface LdapConnectOptions {
  /** `ldap://host[:port]` or `ldaps://host[:port]`. */
  readonly url: string;
  readonly tls: LdapTlsOptions;
  /** Simple bind DN; anonymous when absent. */
  readonly bindDn?: string | undefined;
  readonly password?: string | undefined;
  /** Deadline for TCP connect, TLS handshake, StartTLS and bind together. Default 10 s. */
  readonly connectTimeoutMs?: number | undefined;
  /** Longest silence tolerated while an operation waits for its next response. Default 120 s. */
  readonly operationTimeoutMs?: number | undefined;
  /**
   * Where this connection may go (checked on the resolved addresses before connecting).
   * Default: the strict policy (public addresses only).
   */
  readonly destinations?: DestinationPolicy | undefined;
  /** Bounds on what the server may make this connection hold; see {@link LdapReadLimits}. */
  readonly limits?: LdapReadLimits | undefined;
  /**
   * Told each step of opening as it starts (`TCP connect`, `StartTLS`, `bind`, ...), so that a
   * caller whose own deadline fires (Test Connection) can say which step hung.
   */
  readonly onStep?: ((step: string) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * What a server's answers may make one connection hold. The server is untrusted: without these a
 * single header claiming gigabytes, or a "page" that never ends, grows a worker that serves
 * every customer until it dies.
 */
export interface LdapReadLimits {
  /** Largest message accepted (refused from its header). Default {@link defaultMaxMessageBytes} (64 MiB). */
  readonly maxMessageBytes?: number | undefined;
  /**
   * Bytes held at once for one search request: the entries of its page received so far plus a
   * message still arriving. Default {@link defaultMaxBufferedBytes} (128 MiB).
   */
  readonly maxBufferedBytes?: number | undefined;
}

/**
 * Default bound on bytes held per search request: 128 MiB, room for a page of 1,000 groups of
 * about 2,000 members each, or two messages of the largest size allowed. A page needing more
 * must be asked for in smaller pages (lower the page size).
 */
export const defaultMaxBufferedBytes = 128 * 1024 * 1024;

/** One search request as sent on the wire (paging is handled by `pagedSearch`). */
export interface SearchRequestOptions {
  readonly base: string;
  readonly scope: 'base' | 'one' | 'sub';
  readonly filter: Filter;
  readonly attributes: readonly string[];
  /** Lower-cased names of attributes to return as Buffers. */
  readonly binary?: ReadonlySet<string> | undefined;
  readonly sizeLimit?: number | undefined;
  /** Server-side time limit in seconds (0: none). Always sent explicitly. */
  readonly timeLimitSeconds: number;
  readonly typesOnly?: boolean | undefined;
  readonly controls?: readonly Control[] | undefined;
  /**
   * Most entries this one request may return (the page size of a paged request): a server that
   * sends more ignores the page size, and the request fails instead of buffering without end.
   */
  readonly maxEntries?: number | undefined;
  /**
   * Longest the whole request may take, however steadily entries arrive (the silence timeout
   * alone restarts with every entry); the connection is closed when it passes.
   */
  readonly deadlineMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

interface Pending {
  readonly context: LdapErrorContext;
  readonly onEntry: ((buf: Buffer, opStart: number, end: number) => void) | undefined;
  readonly resolve: (response: LdapResponse) => void;
  readonly reject: (error: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  /** Whole-request deadline, when the request has one. */
  deadline: NodeJS.Timeout | undefined;
  readonly maxEntries: number;
  entries: number;
  /** Bytes of this request's entries received so far (held by the caller until the page ends). */
  bytes: number;
}

const startTlsOid = '1.3.6.1.4.1.1466.20037';
const noticeOfDisconnectionOid = '1.3.6.1.4.1.1466.20036';
const maxMessageId = 2 ** 31 - 1;

/** The parts of an LDAP URL a connection uses. */
export interface ParsedLdapUrl {
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  /** `scheme://host:port`, lower-cased: the server's identity in cursors and messages. */
  readonly normalized: string;
}

/** Parses `ldap[s]://host[:port][/]`; throws ConfigError for anything else. */
export function parseLdapUrl(url: string): ParsedLdapUrl {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`"${url}" is not a valid URL (expected ldap://host:port or ldaps://host:port)`);
  }
  const scheme = parsed.protocol.replace(/:$/, '').toLowerCase();
  if (scheme !== 'ldap' && scheme !== 'ldaps') throw new ConfigError(`"${url}" must start with ldap:// or ldaps://`);
  if (!parsed.hostname) throw new ConfigError(`"${url}" has no host`);
  if (parsed.username || parsed.password) throw new ConfigError(`"${url}" must not contain credentials`);
  if ((parsed.pathname && parsed.pathname !== '/') || parsed.search || parsed.hash) {
    throw new ConfigError(`"${url}" must name only the server (no base DN, attributes or filter); set bases and filters separately`);
  }
  const secure = scheme === 'ldaps';
  const port = parsed.port ? Number(parsed.port) : secure ? 636 : 389;
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  return { secure, host, port, normalized: `${scheme}://${parsed.hostname.toLowerCase()}:${port}` };
}

/**
 * A connection to one LDAP server: TCP or TLS socket, StartTLS, simple bind, and searches whose
 * entries are decoded straight from the socket buffers (see protocol.ts). Requests are encoded
 * with ldapts. Every failure surfaces as a typed {@link ProviderError}.
 */
export class LdapConnection {
  /** Normalised `scheme://host:port`. */
  readonly url: string;
  readonly operationTimeoutMs: number;
  private socket: net.Socket | tls.TLSSocket;
  private readonly framer: MessageFramer;
  private readonly maxBufferedBytes: number;
  private readonly maxMessageBytes: number;
  /** Bytes of entries of pending requests, which their callers may still hold. */
  private heldBytes = 0;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  /** Why the connection ended; mapped per operation so each message names its own context. */
  private closedCause: unknown;
  private tlsMode: 'ldaps' | 'starttls' | undefined;
  private readonly bindDn: string | undefined;
  private readonly onData = (chunk: Buffer) => {
    try {
      this.framer.push(chunk, this.dispatch);
      // A message still arriving counts too: one that claims 60 MB must not wait for its bytes
      // on top of a page that already holds the bound.
      if (this.heldBytes + this.framer.pendingBytes > this.maxBufferedBytes) {
        throw new LdapProtocolError(
          `the server sent more than ${this.maxBufferedBytes} bytes for one request; ask for smaller pages (lower the page size)`,
          'limit',
        );
      }
    } catch (error) {
      this.fail(error);
      this.socket.destroy();
    }
  };

  private constructor(
    socket: net.Socket | tls.TLSSocket,
    url: string,
    bindDn: string | undefined,
    operationTimeoutMs: number,
    limits: LdapReadLimits = {},
  ) {
    this.framer = new MessageFramer(limits.maxMessageBytes ?? defaultMaxMessageBytes);
    this.maxBufferedBytes = limits.maxBufferedBytes ?? defaultMaxBufferedBytes;
    this.maxMessageBytes = limits.maxMessageBytes ?? defaultMaxMessageBytes;
    this.socket = socket;
    this.url = url;
    this.bindDn = bindDn;
    this.operationTimeoutMs = operationTimeoutMs;
    this.attach(socket);
  }

  /** TLS in use on this connection, if any. */
  get tlsInUse(): 'ldaps' | 'starttls' | undefined {
    return this.tlsMode;
  }

  /** The read bounds of this connection (its integration's `limits`), defaults filled in. */
  get limits(): { readonly maxMessageBytes: number; readonly maxBufferedBytes: number } {
    return { maxMessageBytes: this.maxMessageBytes, maxBufferedBytes: this.maxBufferedBytes };
  }

  /** True once the connection failed or was closed. */
  get closed(): boolean {
    return this.closedCause !== undefined;
  }

  /**
   * Connects, secures and binds. Refuses plain LDAP unless `allowInsecure`. Throws AuthError for
   * refused credentials, ConfigError for TLS/URL problems, UnavailableError when unreachable.
   */
  static async open(options: LdapConnectOptions): Promise<LdapConnection> {
    const target = parseLdapUrl(options.url);
    const mode = options.tls.mode;
    if (mode === 'ldaps' && !target.secure) throw new ConfigError(`TLS mode "ldaps" needs an ldaps:// URL, got ${target.normalized}`);
    if (mode !== 'ldaps' && target.secure) throw new ConfigError(`an ldaps:// URL needs TLS mode "ldaps", got "${mode}"`);
    if (mode === 'none' && options.tls.allowInsecure !== true) {
      throw new ConfigError(`plain LDAP to ${target.normalized} would send the bind password unencrypted; use ldaps or StartTLS, or set tls.allowInsecure`);
    }
    if (options.bindDn !== undefined && options.password !== undefined) refuseUnsafeSecret(options.password, `the bind password of ${options.bindDn}`);
    const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    const context: LdapErrorContext = { url: target.normalized, operation: 'connect' };
    // The step under way, so that a timeout (or the caller's own deadline) says where it hung.
    let step = 'DNS resolution';
    const enter = (next: string) => {
      step = next;
      options.onStep?.(next);
    };
    options.onStep?.(step);
    const deadline = AbortSignal.timeout(connectTimeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
    const tlsOptions = (): tls.ConnectionOptions => ({
      host: target.host,
      port: target.port,
      servername: options.tls.serverName ?? (net.isIP(target.host) ? undefined : target.host),
      ...(options.tls.caPem ? { ca: [options.tls.caPem] } : {}),
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    }) as tls.ConnectionOptions;

    let socket: net.Socket | tls.TLSSocket | undefined;
    try {
      // Resolved once and checked address by address; the socket goes to those addresses only.
      const policy = options.destinations ?? DestinationPolicy.strict();
      const destination = await untilAborted(policy.check({ host: target.host, port: target.port, label: target.normalized }), signal);
      enter(target.secure ? 'TCP connect and TLS handshake' : 'TCP connect');
      socket = target.secure
        ? await connectSocket(() => tls.connect({ ...tlsOptions(), lookup: destination.lookup }), true, signal)
        : await connectSocket(() => net.connect({ host: target.host, port: target.port, lookup: destination.lookup }), false, signal);
      const connection = new LdapConnection(socket, target.normalized, options.bindDn, options.operationTimeoutMs ?? 120_000, options.limits);
      socket = undefined;
      try {
        if (target.secure) connection.tlsMode = 'ldaps';
        if (mode === 'starttls') {
          enter('StartTLS');
          await connection.startTls(tlsOptions(), signal);
        }
        // Before any credential: the peer must answer as an LDAP server does (an ldap:// URL aimed
        // at Redis or a web server gets this anonymous read and nothing else).
        enter('RootDSE probe');
        await connection.probeRootDse(signal);
        if (options.bindDn !== undefined) {
          enter('bind');
          await connection.bind(options.bindDn, options.password ?? '', signal);
        }
        return connection;
      } catch (error) {
        connection.destroy();
        throw error;
      }
    } catch (error) {
      socket?.destroy();
      if (options.signal?.aborted) throw options.signal.reason;
      if (deadline.aborted) {
        throw toProviderError(new LdapTimeoutError(`no answer within ${connectTimeoutMs} ms`), { ...context, step });
      }
      throw toProviderError(error, context);
    }
  }

  /**
   * Reads the root DSE anonymously and checks that the answer is LDAP. A peer sending bytes that
   * are not LDAP is refused with {@link UnexpectedPeerError}; silence and a closed connection
   * stay what they are (retryable), since a busy directory shows the same. Either way the caller
   * sends nothing more.
   */
  private async probeRootDse(signal: AbortSignal): Promise<void> {
    const request: SearchRequestOptions = {
      base: '',
      scope: 'base',
      filter: new PresenceFilter({ attribute: 'objectClass' }),
      attributes: ['supportedLDAPVersion'],
      sizeLimit: 1,
      timeLimitSeconds: 10,
      signal,
    };
    try {
      // Any result code will do (a server may refuse anonymous reads): it answered as LDAP.
      await this.searchRaw(request, () => undefined);
    } catch (error) {
      if (signal.aborted) throw error;
      if (error instanceof ProviderError && (error.code === 'protocol' || (error.code === 'config' && /not LDAP|not valid LDAP/.test(error.message)))) {
        throw new UnexpectedPeerError(
          this.url,
          `${this.url} did not answer as an LDAP server (an anonymous read of its root DSE got: ${error.message}); no credentials were sent; check the URL, port and TLS mode`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  /** Simple bind. An empty password is refused here: servers treat it as an anonymous bind. */
  async bind(dn: string, password: string, signal?: AbortSignal): Promise<void> {
    const context: LdapErrorContext = { url: this.url, operation: 'bind', bindDn: dn };
    if (password === '') throw new ConfigError(`no password for ${dn}: an empty password would bind anonymously`);
    refuseUnsafeSecret(password, `the bind password of ${dn}`);
    const id = this.allocateId();
    const response = await this.request(new BindRequest({ messageId: id, dn, password }), context, undefined, signal);
    if (response.result && response.result.resultCode !== ResultCode.success) throw resultError(response.result, context);
  }

  /** Sends one extended operation; returns the response (result code already checked). */
  async extended(oid: string, value?: Buffer, signal?: AbortSignal): Promise<LdapResponse> {
    const context: LdapErrorContext = { url: this.url, operation: 'extended', ...(this.bindDn ? { bindDn: this.bindDn } : {}) };
    const id = this.allocateId();
    const response = await this.request(new ExtendedRequest({ messageId: id, oid, ...(value ? { value } : {}) }), context, undefined, signal);
    if (response.result && response.result.resultCode !== ResultCode.success) throw resultError(response.result, context);
    return response;
  }

  /**
   * Sends one search request; `onEntry` receives each entry as it is decoded. Resolves with the
   * SearchResultDone (whatever its result code: the caller decides), rejects on transport
   * failure, timeout or abort (after sending an Abandon). Continuation references are ignored.
   */
  search(options: SearchRequestOptions, onEntry: (entry: LdapEntry) => void): Promise<LdapResponse> {
    const binary = options.binary;
    return this.searchRaw(options, (buf, opStart, end) => onEntry(decodeEntry(buf, opStart, end, binary)));
  }

  /**
   * {@link search} without decoding: `onEntry` receives each SearchResultEntry as the server's
   * bytes, the message ending at `end` (`decodeEntry(buf, opStart, end, binary)` decodes it).
   * The connection never writes into `buf` again, so the caller may keep it and decode later.
   */
  searchRaw(options: SearchRequestOptions, onEntry: (buf: Buffer, opStart: number, end: number) => void): Promise<LdapResponse> {
    const context: LdapErrorContext = {
      url: this.url,
      operation: 'search',
      base: options.base,
      ...(this.bindDn ? { bindDn: this.bindDn } : {}),
    };
    const id = this.allocateId();
    const request = new SearchRequest({
      messageId: id,
      baseDN: options.base,
      scope: options.scope,
      filter: options.filter,
      attributes: [...options.attributes],
      sizeLimit: options.sizeLimit ?? 0,
      timeLimit: options.timeLimitSeconds,
      returnAttributeValues: options.typesOnly !== true,
      ...(options.controls?.length ? { controls: [...options.controls] } : {}),
    });
    // A server returns at most the size limit it was sent (RFC 4511 §4.5.1.5).
    const maxEntries = options.maxEntries ?? (options.sizeLimit !== undefined && options.sizeLimit > 0 ? options.sizeLimit : undefined);
    return this.request(request, context, onEntry, options.signal, { maxEntries, deadlineMs: options.deadlineMs });
  }

  /** Unbinds and closes; pending operations fail. Never throws. */
  async close(): Promise<void> {
    if (this.closed) return;
    const socket = this.socket;
    try {
      socket.write(new UnbindRequest({ messageId: this.allocateId() }).write());
    } catch {
      // The socket may already be gone; closing is all that matters.
    }
    this.fail(new LdapConnectionClosedError('closed by the client'));
    await new Promise<void>((resolve) => {
      if (socket.destroyed) return resolve();
      socket.once('close', () => resolve());
      socket.end();
      setTimeout(() => socket.destroy(), 1_000).unref();
    });
  }

  /** Closes at once without unbinding (after an error). */
  destroy(): void {
    this.fail(new LdapConnectionClosedError('closed by the client'));
    this.socket.destroy();
  }

  private allocateId(): number {
    this.nextId = this.nextId >= maxMessageId ? 1 : this.nextId + 1;
    return this.nextId;
  }

  private attach(socket: net.Socket | tls.TLSSocket): void {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    socket.on('data', this.onData);
    socket.on('error', (error: Error) => this.fail(error));
    socket.on('close', () => this.fail(new LdapConnectionClosedError('the server closed the connection')));
  }

  private request(
    message: Message,
    context: LdapErrorContext,
    onEntry: ((buf: Buffer, opStart: number, end: number) => void) | undefined,
    signal: AbortSignal | undefined,
    bounds: { readonly maxEntries?: number | undefined; readonly deadlineMs?: number | undefined } = {},
  ): Promise<LdapResponse> {
    if (this.closed) return Promise.reject(toProviderError(this.closedCause, context));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const id = message.messageId;
    return new Promise<LdapResponse>((resolve, reject) => {
      const onAbort = () => {
        if (!this.pending.delete(id)) return;
        settle();
        // Tell the server to stop sending; entries already in flight are dropped by id.
        if (!this.closed) this.socket.write(new AbandonRequest({ messageId: this.allocateId(), abandonId: id }).write());
        reject(signal?.reason);
      };
      const settle = () => {
        clearTimeout(entry.timer);
        clearTimeout(entry.deadline);
        this.heldBytes -= entry.bytes;
        entry.bytes = 0;
        signal?.removeEventListener('abort', onAbort);
      };
      const entry: Pending = {
        context,
        onEntry,
        resolve: (response) => {
          settle();
          resolve(response);
        },
        reject: (error) => {
          settle();
          reject(toProviderError(error, context));
        },
        timer: undefined,
        deadline: undefined,
        maxEntries: bounds.maxEntries !== undefined && bounds.maxEntries > 0 ? bounds.maxEntries : Number.POSITIVE_INFINITY,
        entries: 0,
        bytes: 0,
      };
      this.pending.set(id, entry);
      this.arm(id, entry);
      const deadlineMs = bounds.deadlineMs;
      if (deadlineMs !== undefined && deadlineMs > 0) {
        entry.deadline = setTimeout(() => {
          if (!this.pending.has(id)) return;
          // Abandoning would leave whatever the server still streams to be read and dropped; a
          // server past its own time limit is not trusted to stop, so the connection goes.
          this.fail(new LdapTimeoutError(`the request did not finish within ${deadlineMs} ms (the search time limit, enforced by the client)`));
          this.socket.destroy();
        }, deadlineMs);
        entry.deadline.unref();
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.socket.write(message.write());
    });
  }

  // Operation timeout = silence: re-armed on every message of the operation, so a long paged
  // page that keeps streaming never times out while a hung server does.
  private arm(id: number, entry: Pending): void {
    if (this.operationTimeoutMs <= 0) return;
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      if (!this.pending.has(id)) return;
      // A silent server leaves the connection in an unknown state: close it.
      this.fail(new LdapTimeoutError(`no response for ${this.operationTimeoutMs} ms`));
      this.socket.destroy();
    }, this.operationTimeoutMs);
    entry.timer.unref();
  }

  private readonly dispatch = (buf: Buffer, start: number, end: number): void => {
    const { messageId, op, opStart } = messageHeader(buf, start, end);
    const entry = this.pending.get(messageId);
    if (op === Op.searchEntry) {
      if (entry?.onEntry) {
        // Thrown errors close the connection (see onData) and fail every pending request.
        if (++entry.entries > entry.maxEntries) {
          throw new LdapProtocolError(
            `the server sent more than ${entry.maxEntries} entries in one page although the request asked for at most ${entry.maxEntries}; it ignores the page size`,
            'limit',
          );
        }
        const size = end - start;
        entry.bytes += size;
        this.heldBytes += size;
        if (this.heldBytes > this.maxBufferedBytes) {
          throw new LdapProtocolError(
            `the server sent more than ${this.maxBufferedBytes} bytes for one request; ask for smaller pages (lower the page size)`,
            'limit',
          );
        }
        entry.onEntry(buf, opStart, end);
        if (entry.timer) entry.timer.refresh();
      }
      return;
    }
    const response = decodeResponse(buf, start, end);
    if (messageId === 0 && response.responseName === noticeOfDisconnectionOid) {
      const why = serverText(response.result?.diagnosticMessage ?? '') || 'notice of disconnection';
      this.fail(new LdapConnectionClosedError(`the server is closing the connection: ${why}`));
      this.socket.destroy();
      return;
    }
    if (!entry) return;
    if (op === Op.searchReference) {
      // Continuation references point at other servers (AD's Configuration partition): ignored.
      if (entry.timer) entry.timer.refresh();
      return;
    }
    this.pending.delete(messageId);
    entry.resolve(response);
  };

  private fail(cause: unknown): void {
    if (this.closedCause === undefined) this.closedCause = cause;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const entry of pending) entry.reject(this.closedCause);
  }

  private async startTls(options: tls.ConnectionOptions, signal: AbortSignal): Promise<void> {
    const context: LdapErrorContext = { url: this.url, operation: 'starttls' };
    const response = await this.request(new ExtendedRequest({ messageId: this.allocateId(), oid: startTlsOid }), context, undefined, signal);
    if (response.result && response.result.resultCode !== ResultCode.success) {
      const mapped = resultError(response.result, context);
      throw new ConfigError(`${this.url} refused StartTLS: ${mapped.message}`, { cause: mapped });
    }
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    plain.on('error', () => {});
    const secure = await connectSocket(() => tls.connect({ ...options, socket: plain }), true, signal);
    this.socket = secure;
    this.attach(secure);
    this.tlsMode = 'starttls';
  }
}

/** Opens a socket and waits for it to be connected (and the TLS handshake done when secure). */
function connectSocket<S extends net.Socket>(create: () => S, secure: boolean, signal: AbortSignal): Promise<S> {
  return new Promise<S>((resolve, reject) => {
    const socket = create();
    const done = (error?: unknown) => {
      socket.removeListener(secure ? 'secureConnect' : 'connect', onReady);
      socket.removeListener('error', done);
      signal.removeEventListener('abort', onAbort);
      if (error === undefined) return resolve(socket);
      socket.destroy();
      reject(error);
    };
    const onReady = () => done();
    const onAbort = () => done(signal.reason ?? new Error('aborted'));
    socket.once(secure ? 'secureConnect' : 'connect', onReady);
    socket.once('error', done);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Settles like `promise`, or rejects with the abort reason as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
