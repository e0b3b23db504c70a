import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AccessToken, TokenCredential } from '@azure/identity';
import type { Client } from '@microsoft/microsoft-graph-client';
import { AuthError, ConfigError, ProtocolError, ProviderError, UnavailableError } from '../errors.ts';
import { DestinationPolicy, findDestinationRefusal } from '../net/destination.ts';
import { type CheckedHttp, checkedHttp } from '../net/undici.ts';
import { type EntraIdSettings, isKnownAuthorityHost } from './config.ts';
import { answerText, FailureCapture, GraphRequestState, throttleRetryHandler, UndiciSender } from './graph-middleware.ts';
import { type MicrosoftSdks, microsoftSdks } from './sdk.ts';

/** How an Entra app proves who it is: a certificate (connectors) or a client secret (legacy). */
export type EntraCredential =
  | { readonly kind: 'certificate'; readonly clientId: string; readonly certificatePem: string; readonly privateKeyPem: string }
  | { readonly kind: 'secret'; readonly clientId: string; readonly clientSecret: string };

/** What went wrong with Entra ID authentication. */
export type EntraAuthProblem =
  /** The tenant has not granted (or has revoked) consent, or Graph refuses the app's access. */
  | 'consent'
  /** The app's own credential (certificate or client secret) was refused. */
  | 'credential';

/**
 * Entra ID refused the app: retrying cannot help. `problem: 'consent'` means an administrator of
 * the tenant must grant consent (again); nothing may be deleted because of it.
 */
export class EntraAuthError extends AuthError {
  readonly problem: EntraAuthProblem;
  readonly tenantId: string;
  /** HTTP status of the refusal (token endpoint or Graph), when one was received. */
  readonly status?: number;
  /**
   * Entra ID's `AADSTS…` code (token endpoint) or Graph's `error.code`, when one was given. Not
   * named `code`: that is {@link ProviderError.code}, the error's category (`auth`).
   */
  readonly entraCode?: string;
  constructor(
    problem: EntraAuthProblem,
    tenantId: string,
    message: string,
    options?: ErrorOptions & { readonly status?: number | undefined; readonly entraCode?: string | undefined },
  ) {
    super(message, options);
    this.problem = problem;
    this.tenantId = tenantId;
    if (options?.status !== undefined) this.status = options.status;
    if (options?.entraCode !== undefined) this.entraCode = options.entraCode;
  }
}

/** Graph no longer knows the delta or skip token (410 Gone, `syncStateNotFound`): start over. */
export class DeltaTokenExpiredError extends ProviderError {
  /** The `Location` of a 410 answer, when Graph named where to start over. */
  readonly location?: string;
  constructor(message: string, location?: string) {
    super('delta_token_expired', message, false);
    if (location !== undefined) this.location = location;
  }
}

/** The parts of the settings token acquisition and Graph requests use. */
export type GraphConnectionSettings = Pick<
  EntraIdSettings,
  'tenantId' | 'authorityHost' | 'graphBaseUrl' | 'caPem' | 'retry' | 'requestTimeoutMs'
>;

// ---- tokens ----

function credentialKey(settings: GraphConnectionSettings, credential: EntraCredential, destinations: DestinationPolicy): string {
  // The secret part is hashed so the key itself (a Map key) never holds it.
  const material = credential.kind === 'certificate' ? credential.certificatePem : credential.clientSecret;
  const fingerprint = createHash('sha256').update(material).digest('hex');
  // A credential's connections pass the policy it was built with: another policy, another credential.
  return [settings.authorityHost, settings.tenantId.toLowerCase(), credential.clientId.toLowerCase(), credential.kind, fingerprint, settings.caPem ?? '', destinations.id].join('\n');
}

/**
 * Token credentials (`@azure/identity`) per authority, tenant, app and credential, kept so that
 * MSAL's in-memory token cache serves repeated syncs of the same tenant without a token request.
 * A new certificate (after a rotation) is a new key, so acquisition switches to it at once.
 */
export class EntraTokenCache {
  readonly #entries = new Map<string, TokenCredential>();
  readonly #maxEntries: number;

  constructor(maxEntries = 1000) {
    this.#maxEntries = maxEntries;
  }

  /** Number of credentials held. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The credential for these settings, created on first use; its token requests go only where
   * `destinations` allows (default: the strict policy).
   */
  async credentialFor(settings: GraphConnectionSettings, credential: EntraCredential, destinations: DestinationPolicy = DestinationPolicy.strict()): Promise<TokenCredential> {
    const { identity } = await microsoftSdks();
    // From here on synchronous: two calls for one key cannot both create a credential.
    const key = credentialKey(settings, credential, destinations);
    const found = this.#entries.get(key);
    if (found) {
      // Least recently used goes first: re-insert to mark as used.
      this.#entries.delete(key);
      this.#entries.set(key, found);
      return found;
    }
    const created = createTokenCredential(identity, settings, credential, destinations);
    this.#entries.set(key, created);
    if (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    return created;
  }

  /** Forgets the credential (and its cached tokens), so the next token is requested anew. */
  evict(settings: GraphConnectionSettings, credential: EntraCredential, destinations: DestinationPolicy = DestinationPolicy.strict()): void {
    this.#entries.delete(credentialKey(settings, credential, destinations));
  }

  clear(): void {
    this.#entries.clear();
  }
}

/** The process-wide token cache providers use unless given another. */
export const sharedTokenCache = new EntraTokenCache();

function createTokenCredential(
  { ClientCertificateCredential, ClientSecretCredential }: MicrosoftSdks['identity'],
  settings: GraphConnectionSettings,
  credential: EntraCredential,
  destinations: DestinationPolicy,
): TokenCredential {
  const options = {
    authorityHost: settings.authorityHost,
    // Instance discovery asks Microsoft about the authority, which only Microsoft's own login
    // hosts can answer; other hosts (a proxy, the test emulator) are trusted as configured.
    disableInstanceDiscovery: !isKnownAuthorityHost(settings.authorityHost),
    // Every token request (redirects included) connects through the policy; trust of a private
    // CA stays with this credential's own connections.
    agent: destinations.httpsAgent({ keepAlive: true, ...(settings.caPem === undefined ? {} : { ca: settings.caPem }) }),
  };
  try {
    if (credential.kind === 'certificate') {
      return new ClientCertificateCredential(
        settings.tenantId,
        credential.clientId,
        { certificate: `${credential.certificatePem.trim()}\n${credential.privateKeyPem.trim()}\n` },
        options,
      );
    }
    return new ClientSecretCredential(settings.tenantId, credential.clientId, credential.clientSecret, options);
  } catch (error) {
    throw new ConfigError(`cannot use the app credential: ${describeCause(error)}`);
  }
}

function describeCause(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0] ?? error.name : String(error);
}

/** The AADSTS sentence of an MSAL error message, without trace ids and timestamps. */
function aadstsSentence(message: string): string | undefined {
  const match = /AADSTS\d+:[^]*?(?=\s+Trace ID:|$)/.exec(message);
  return match?.[0]?.replace(/\s+/g, ' ').trim();
}

interface MsalServerError {
  errorCode?: unknown;
  errorNo?: unknown;
  status?: unknown;
  errorMessage?: unknown;
}

/** What the token endpoint said, read from `@azure/identity`'s error or its MSAL cause. */
function tokenFailure(error: unknown): { code: string; status: number | undefined; text: string } | undefined {
  const candidates: unknown[] = [error, (error as { cause?: unknown } | undefined)?.cause];
  for (const candidate of candidates) {
    if (typeof candidate !== 'object' || candidate === null) continue;
    const msal = candidate as MsalServerError & { errorResponse?: { error?: unknown; errorDescription?: unknown }; statusCode?: unknown };
    const code = typeof msal.errorCode === 'string' && msal.errorCode !== '' ? msal.errorCode : typeof msal.errorResponse?.error === 'string' ? msal.errorResponse.error : undefined;
    if (code === undefined) continue;
    const status = typeof msal.status === 'number' ? msal.status : typeof msal.statusCode === 'number' ? msal.statusCode : undefined;
    const message = candidate instanceof Error ? candidate.message : '';
    const description = typeof msal.errorResponse?.errorDescription === 'string' ? msal.errorResponse.errorDescription : message;
    return { code, status, text: aadstsSentence(description) ?? aadstsSentence(message) ?? code };
  }
  return undefined;
}

const consentCodes = new Set(['unauthorized_client', 'consent_required', 'interaction_required']);

/** The `AADSTS…` code named in Entra ID's error text, e.g. `AADSTS700027`. */
function aadstsCode(text: string): string | undefined {
  return /\bAADSTS\d+\b/.exec(text)?.[0];
}

/**
 * Translates a token acquisition failure into a typed error. Refused consent or credentials are
 * not retried; an unreachable authority, a busy one, or a clock out of step with Entra ID's is.
 * Codes as `reference-error-codes.md` (MicrosoftDocs/entra-docs, docs/identity-platform/)
 * documents them.
 */
export async function mapTokenError(
  error: unknown,
  settings: GraphConnectionSettings,
  credential: EntraCredential,
  destinations: DestinationPolicy = DestinationPolicy.strict(),
): Promise<ProviderError> {
  if (error instanceof ProviderError) return error;
  const refused = findDestinationRefusal(error);
  if (refused) return refused;
  const failure = tokenFailure(error);
  const who = `app ${credential.clientId} in tenant ${settings.tenantId}`;
  if (failure) {
    const aadsts = aadstsCode(failure.text);
    const details = { status: failure.status, entraCode: aadsts ?? failure.code };
    // AADSTS7000229 comes as invalid_client, yet no key can cure it: the tenant has no service
    // principal of the app, which admin consent creates (and removing the app deletes).
    if (aadsts === 'AADSTS7000229') {
      return new EntraAuthError(
        'consent',
        settings.tenantId,
        `Entra ID refused a token for ${who}: the tenant has no service principal of the app (admin consent was not granted or the app was removed from the tenant); an administrator of the tenant must grant admin consent (${failure.text})`,
        details,
      );
    }
    // AADSTS700024: the client assertion is outside its valid time range, i.e. this machine's
    // clock is off; the certificate itself may be fine, so this is retried rather than refused.
    if (aadsts === 'AADSTS700024') {
      return new UnavailableError(
        `Entra ID refused the client assertion of ${who} as outside its valid time range: the worker's clock differs from Entra ID's; check the machine's time synchronisation (${failure.text})`,
      );
    }
    if (consentCodes.has(failure.code) || (failure.code === 'invalid_grant' && /AADSTS65001/.test(failure.text))) {
      return new EntraAuthError(
        'consent',
        settings.tenantId,
        `Entra ID refused a token for ${who}: consent is missing or was revoked; an administrator of the tenant must grant admin consent again (${failure.text})`,
        details,
      );
    }
    if (failure.code === 'invalid_client') {
      const what = credential.kind === 'certificate' ? 'certificate' : 'client secret';
      return new EntraAuthError('credential', settings.tenantId, `Entra ID refused the ${what} of ${who} (${failure.text})`, details);
    }
    if (failure.code === 'invalid_request' && aadsts === 'AADSTS90002') {
      return new ConfigError(`tenant ${settings.tenantId} does not exist at ${settings.authorityHost} (${failure.text})`);
    }
    if (failure.code === 'temporarily_unavailable' || (failure.status !== undefined && (failure.status >= 500 || failure.status === 429))) {
      return new UnavailableError(`the token endpoint of ${settings.authorityHost} is unavailable (${failure.text})`);
    }
    return new ConfigError(`Entra ID refused a token for ${who}: ${failure.code} (${failure.text})`);
  }
  // MSAL reports every transport failure as an endpoint resolution error; a probe of the
  // authority's metadata tells an untrusted certificate (settings) from an unreachable host.
  const probe = await probeAuthority(settings, destinations);
  if (probe) return probe;
  return new UnavailableError(`could not get a token for ${who} from ${settings.authorityHost}: ${describeCause(error)}`);
}

const tlsCodes = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED',
]);

function errorCodeOf(error: unknown): string | undefined {
  // Duck-typed: errors raised by Node's sockets need not be instances of this realm's Error.
  let current: unknown = error;
  for (let depth = 0; typeof current === 'object' && current !== null && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Typed error for a transport failure: TLS verification → settings; anything else → unavailable. */
export function transportError(error: unknown, target: string): ProviderError {
  const refused = findDestinationRefusal(error);
  if (refused) return refused;
  const code = errorCodeOf(error);
  if (code !== undefined && tlsCodes.has(code)) {
    return new ConfigError(`TLS verification of ${target} failed (${code}): trust its CA with the caPem setting`);
  }
  return new UnavailableError(`${target} is unreachable (${code ?? describeCause(error)})`);
}

async function probeAuthority(settings: GraphConnectionSettings, destinations: DestinationPolicy): Promise<ProviderError | undefined> {
  const { agent, request } = await checkedHttp(destinations, { caPem: settings.caPem, timeoutMs: 10_000 });
  try {
    const url = `${settings.authorityHost}/${encodeURIComponent(settings.tenantId)}/v2.0/.well-known/openid-configuration`;
    const response = await request(url, { dispatcher: agent, signal: AbortSignal.timeout(10_000) });
    await response.body.dump();
    if (response.statusCode === 400 || response.statusCode === 404) {
      return new ConfigError(`tenant ${settings.tenantId} is unknown to ${settings.authorityHost} (HTTP ${response.statusCode})`);
    }
    return undefined;
  } catch (error) {
    return transportError(error, settings.authorityHost);
  } finally {
    await agent.close().catch(() => undefined);
  }
}

// ---- Graph requests ----

/** Options of {@link GraphClient}. */
export interface GraphClientOptions {
  readonly tokenCache?: EntraTokenCache | undefined;
  /** Waits between retries; tests may shorten it. Rejects when `signal` aborts. */
  readonly sleep?: ((ms: number, signal: AbortSignal) => Promise<void>) | undefined;
  /** Where token and Graph requests may connect (default: the strict policy). */
  readonly destinations?: DestinationPolicy | undefined;
  /**
   * Credentials of the same app tried in order when Entra ID refuses the primary one as a
   * credential problem (`invalid_client`, e.g. AADSTS700027): a key added by a rotation takes
   * seconds to minutes to propagate, so the previous key keeps syncs going meanwhile. The first
   * one that gets a token is used for the rest of the client's life.
   */
  readonly fallbackCredentials?: readonly EntraCredential[] | undefined;
  /** Largest Graph answer read (default {@link maxGraphAnswerBytes}). */
  readonly maxAnswerBytes?: number | undefined;
}

/** A Graph error answer: status, `error.code` and `error.message`. */
interface GraphFailure {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly retryAfterMs: number | undefined;
}

const syncStateCodes = new Set(['syncStateNotFound', 'syncStateInvalid', 'resyncRequired']);

/** `Retry-After` in milliseconds (delta-seconds or an HTTP date), or undefined. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text.trim())) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Exponential backoff ceiling for attempt `n` (1-based), with the delay drawn from its upper half. */
export function backoffDelay(n: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(30, n - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * Talks to Microsoft Graph for one integration through `@microsoft/microsoft-graph-client`:
 * its AuthenticationHandler (token from the token cache's `@azure/identity` credential, through
 * `TokenCredentialAuthenticationProvider`), RetryHandler (429/503/504, Retry-After honoured,
 * waits abortable and budgeted) and RedirectHandler (same origin only), ending in an undici
 * sender with TLS trust scoped to this client and answers read within a bound. On top: other
 * 5xx and network failures retried, one fresh token after a 401/403, typed errors.
 */
export class GraphClient {
  readonly settings: GraphConnectionSettings;
  /** The primary credential, then the fallbacks in order. */
  readonly #credentials: readonly [EntraCredential, ...EntraCredential[]];
  /** Index in #credentials of the credential tokens are requested with. */
  #active = 0;
  readonly #tokens: EntraTokenCache;
  /** Connections through the destination policy with this client's CA trust, made on the first call. */
  #http: Promise<CheckedHttp> | undefined;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #origin: string;
  readonly #destinations: DestinationPolicy;
  /** The SDK's client with this client's middleware chain, made on the first call. */
  #graph: Client | undefined;
  readonly #maxAnswerBytes: number;
  /** The app's token source as the SDK sees it: this client's token logic (fallbacks, typed errors). */
  readonly #tokenCredential: TokenCredential;
  /** The up-front check of the authority and Graph hosts, for a clear refusal before MSAL wraps it. */
  #hostsChecked: Promise<void> | undefined;
  /** Total time spent waiting on throttling answers by this client. */
  throttledMs = 0;
  /** Number of throttling answers (429/503/504) this client waited out. */
  throttledCount = 0;

  constructor(settings: GraphConnectionSettings, credential: EntraCredential, options: GraphClientOptions = {}) {
    this.settings = settings;
    this.#credentials = [credential, ...(options.fallbackCredentials ?? [])];
    this.#tokens = options.tokenCache ?? sharedTokenCache;
    const base = new URL(settings.graphBaseUrl);
    this.#origin = base.origin;
    this.#destinations = options.destinations ?? DestinationPolicy.strict();
    this.#sleep = options.sleep ?? ((ms, signal) => sleep(ms, undefined, { signal }));
    this.#tokenCredential = {
      getToken: async (_scopes, tokenOptions) => this.#accessToken(tokenOptions?.abortSignal as AbortSignal | undefined),
    };
    this.#maxAnswerBytes = options.maxAnswerBytes ?? maxGraphAnswerBytes;
  }

  #graphClient(sdk: MicrosoftSdks, http: CheckedHttp): Client {
    this.#graph ??= this.#makeGraphClient(sdk, http);
    return this.#graph;
  }

  #checkedHttp(): Promise<CheckedHttp> {
    const { settings } = this;
    // Checked at connect time on the resolved address, whatever was checked before.
    this.#http ??= checkedHttp(this.#destinations, { caPem: settings.caPem, timeoutMs: settings.requestTimeoutMs, keepAliveTimeoutMs: 30_000 }).catch(
      (error: unknown) => {
        this.#http = undefined;
        throw error;
      },
    );
    return this.#http;
  }

  #makeGraphClient({ graph, graphAuth }: MicrosoftSdks, http: CheckedHttp): Client {
    const { AuthenticationHandler, Client, RedirectHandler, RedirectHandlerOptions } = graph;
    const { retry } = this.settings;
    const maxAnswerBytes = this.#maxAnswerBytes;
    return Client.initWithMiddleware({
      baseUrl: this.settings.graphBaseUrl,
      // AuthenticationHandler attaches the token only to Graph's public hosts or these; the
      // configured host (a national cloud, the emulator) is the one this client talks to.
      customHosts: new Set([new URL(this.settings.graphBaseUrl).hostname.toLowerCase()]),
      middleware: [
        new FailureCapture(),
        new AuthenticationHandler(new graphAuth.TokenCredentialAuthenticationProvider(this.#tokenCredential, { scopes: [this.#scope] })),
        throttleRetryHandler(graph, {
          baseDelayMs: retry.baseDelayMs,
          waitFor: (response, throttles) =>
            parseRetryAfter(response.headers.get('retry-after') ?? undefined) ?? backoffDelay(throttles + 1, retry.baseDelayMs, retry.maxDelayMs),
          maxWaitMs: retry.maxWaitMs,
          sleep: this.#sleep,
          onWait: (ms) => {
            this.throttledMs += ms;
            this.throttledCount += 1;
          },
        }),
        new RedirectHandler(new RedirectHandlerOptions(maxRedirects)),
        new UndiciSender({
          origin: this.#origin,
          http,
          readBody: (body, what) => readBoundedText(body, maxAnswerBytes, what),
        }),
      ],
    });
  }

  get #scope(): string {
    return `${this.settings.graphBaseUrl}/.default`;
  }

  /** The app's client id. */
  get clientId(): string {
    return this.#credential.clientId;
  }

  /**
   * Which credential tokens are requested with: `'fallback'` once the primary was refused as a
   * credential problem and one of {@link GraphClientOptions.fallbackCredentials} got a token.
   */
  get credentialUsed(): 'primary' | 'fallback' {
    return this.#active === 0 ? 'primary' : 'fallback';
  }

  get #credential(): EntraCredential {
    return this.#credentials[this.#active] ?? this.#credentials[0];
  }

  /**
   * An access token for Graph (`{graphBaseUrl}/.default`), from the cache while it is valid. When
   * Entra ID refuses the primary credential itself, the fallbacks are tried in order; if none
   * works the primary's refusal is thrown.
   */
  async token(signal?: AbortSignal): Promise<string> {
    return (await this.#accessToken(signal)).token;
  }

  async #accessToken(signal: AbortSignal | undefined): Promise<AccessToken> {
    await this.checkHosts();
    const active = this.#active;
    try {
      return await this.#tokenWith(this.#credentials[active] ?? this.#credentials[0], signal);
    } catch (error) {
      if (!(error instanceof EntraAuthError && error.problem === 'credential') || active !== 0) throw error;
      for (let i = 1; i < this.#credentials.length; i++) {
        const fallback = this.#credentials[i];
        if (fallback === undefined) continue;
        try {
          const token = await this.#tokenWith(fallback, signal);
          this.#active = i;
          return token;
        } catch (fallbackError) {
          // Another kind of failure (authority unavailable, consent) is the answer for now.
          if (!(fallbackError instanceof EntraAuthError && fallbackError.problem === 'credential')) throw fallbackError;
        }
      }
      throw error;
    }
  }

  async #tokenWith(credential: EntraCredential, signal: AbortSignal | undefined): Promise<AccessToken> {
    const tokenCredential = await this.#tokens.credentialFor(this.settings, credential, this.#destinations);
    try {
      const token = await tokenCredential.getToken(this.#scope, signal ? { abortSignal: signal } : {});
      if (!token) throw new UnavailableError(`no token was returned by ${this.settings.authorityHost}`);
      return token;
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw await mapTokenError(error, this.settings, credential, this.#destinations);
    }
  }

  /**
   * Checks the authority and Graph hosts against the destination policy once, so a refused
   * destination is reported as such. Connections are checked again when they are opened.
   */
  checkHosts(): Promise<void> {
    this.#hostsChecked ??= (async () => {
      for (const text of [this.settings.authorityHost, this.settings.graphBaseUrl]) {
        const url = new URL(text);
        const host = url.hostname.replace(/^\[|\]$/g, '');
        await this.#destinations.check({ host, port: Number(url.port) || 443, label: url.origin });
      }
    })().catch((error: unknown) => {
      this.#hostsChecked = undefined;
      throw findDestinationRefusal(error) ?? transportError(error, this.settings.authorityHost);
    });
    return this.#hostsChecked;
  }

  /** GET a Graph URL (absolute, on the Graph origin) and parse its JSON. */
  getJson(url: string, signal: AbortSignal, headers: Record<string, string> = {}): Promise<unknown> {
    return this.#send('GET', url, undefined, signal, headers);
  }

  /** POST JSON to a Graph URL; resolves to the parsed answer, or undefined for 204. */
  postJson(url: string, body: unknown, signal: AbortSignal): Promise<unknown> {
    return this.#send('POST', url, body, signal, { 'content-type': 'application/json' });
  }

  async close(): Promise<void> {
    await this.#http?.then(({ agent }) => agent.close()).catch(() => undefined);
  }

  /** One call through the SDK's chain; resolves to Graph's answer, whatever its status. */
  async #request(method: 'GET' | 'POST', url: string, body: unknown, state: GraphRequestState, headers: Record<string, string>): Promise<Response> {
    const [sdk, http] = await Promise.all([microsoftSdks(), this.#checkedHttp()]);
    const provider = new sdk.graphAuth.TokenCredentialAuthenticationProvider(this.#tokenCredential, {
      scopes: [this.#scope],
      getTokenOptions: { abortSignal: state.signal },
    });
    const request = this.#graphClient(sdk, http)
      .api(url)
      .middlewareOptions([state, new sdk.graph.AuthenticationHandlerOptions(provider)])
      .headers({ accept: 'application/json', ...headers })
      .responseType(sdk.graph.ResponseType.RAW);
    try {
      return (await (method === 'GET' ? request.get() : request.post(body))) as Response;
    } catch (error) {
      // The SDK wraps what a middleware threw into its GraphError; the original is kept aside.
      throw state.failure ?? error;
    }
  }

  async #send(method: 'GET' | 'POST', url: string, body: unknown, signal: AbortSignal, headers: Record<string, string>): Promise<unknown> {
    if (new URL(url).origin !== this.#origin) {
      // A link pointing elsewhere would carry our token to another host.
      throw new ConfigError(`Graph answered with a link outside ${this.#origin}; refusing to follow it`);
    }
    const path = new URL(url).pathname;
    const { retry } = this.settings;
    // One state for every attempt: the throttling budget spans them all.
    let state = new GraphRequestState(signal);
    let failures = 0;
    let tokenRenewed = false;
    for (;;) {
      signal.throwIfAborted();
      let response: Response;
      try {
        response = await this.#request(method, url, body, state, headers);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        // Typed already: token refusals, the throttling budget, a link elsewhere, an answer too large.
        if (error instanceof ProviderError) throw error;
        const typed = transportError(error, this.#origin);
        failures += 1;
        if (!typed.retryable || failures >= retry.maxAttempts) throw typed;
        await this.#sleep(backoffDelay(failures, retry.baseDelayMs, retry.maxDelayMs), signal);
        state = nextAttempt(state);
        continue;
      }
      const status = response.status;
      const text = await answerText(response);
      if (status >= 200 && status < 300) {
        if (status === 204 || text === '') return undefined;
        try {
          return JSON.parse(text) as unknown;
        } catch {
          throw new UnavailableError(`Graph answered ${method} ${path} with a body that is not JSON`);
        }
      }
      const failure = graphFailure(status, text, response.headers.get('retry-after') ?? undefined);
      if (status === 429 || status === 503 || status === 504) {
        // The SDK retried as often as it may; the budget, not a count, ends the wait.
        const wait = failure.retryAfterMs ?? backoffDelay(state.throttles + 1, retry.baseDelayMs, retry.maxDelayMs);
        if (state.throttledMs + wait > retry.maxWaitMs) {
          throw new UnavailableError(
            `Graph kept throttling ${path} (${status} ${failure.code}) for ${Math.round(state.throttledMs / 1000)} s`,
            { retryAfterMs: wait },
          );
        }
        await this.#sleep(wait, signal);
        state.throttledMs += wait;
        state.throttles += 1;
        this.throttledMs += wait;
        this.throttledCount += 1;
        state = nextAttempt(state);
        continue;
      }
      if ((status === 401 || status === 403) && !tokenRenewed) {
        // A token issued before consent, or before granted roles propagated, carries stale
        // `roles`; an expired or revoked one is refused too: one fresh token, then judge.
        tokenRenewed = true;
        this.#tokens.evict(this.settings, this.#credential, this.#destinations);
        state = nextAttempt(state);
        continue;
      }
      if (status === 401 || status === 403) {
        throw new EntraAuthError(
          'consent',
          this.settings.tenantId,
          `Graph refused ${method} ${path} for app ${this.clientId} in tenant ${this.settings.tenantId} (${status} ${failure.code}: ${failure.message}); consent may have been revoked or lack a permission: an administrator must grant admin consent again`,
          { status, entraCode: failure.code },
        );
      }
      if (status === 410 || (status >= 400 && status < 500 && syncStateCodes.has(failure.code))) {
        const location = status === 410 ? (response.headers.get('location') ?? undefined) : undefined;
        throw new DeltaTokenExpiredError(`Graph no longer knows the delta state (${status} ${failure.code}: ${failure.message})`, location);
      }
      if (status >= 500) {
        failures += 1;
        if (failures >= retry.maxAttempts) {
          throw new UnavailableError(`Graph failed ${method} ${path} ${failures} times (${status} ${failure.code}: ${failure.message})`);
        }
        await this.#sleep(failure.retryAfterMs ?? backoffDelay(failures, retry.baseDelayMs, retry.maxDelayMs), signal);
        state = nextAttempt(state);
        continue;
      }
      if (status >= 300 && status < 400) {
        throw new ConfigError(`Graph answered ${method} ${path} with a redirect (${status}) that could not be followed within ${maxRedirects} hops`);
      }
      throw new ConfigError(`Graph refused ${method} ${path} (${status} ${failure.code}: ${failure.message})`);
    }
  }
}

/** Redirects followed within one call (the SDK's default). */
const maxRedirects = 5;

/** A fresh state for the next attempt of a call, keeping what counts across attempts. */
function nextAttempt(previous: GraphRequestState): GraphRequestState {
  const next = new GraphRequestState(previous.signal);
  next.throttledMs = previous.throttledMs;
  next.throttles = previous.throttles;
  return next;
}

function graphFailure(status: number, text: string, retryAfter: string | undefined): GraphFailure {
  let code = `HTTP${status}`;
  let message = '';
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof parsed.error?.code === 'string') code = parsed.error.code;
    if (typeof parsed.error?.message === 'string') message = parsed.error.message;
  } catch {
    message = text.slice(0, 200);
  }
  return { status, code, message: message.replace(/\s+/g, ' ').slice(0, 300), retryAfterMs: parseRetryAfter(retryAfter) };
}

/**
 * Largest Graph answer read: a page of 999 records with the selected properties is a few MB, so
 * this leaves ample room while keeping one answer from growing a worker that serves everyone.
 */
export const maxGraphAnswerBytes = 64 * 1024 * 1024;

/** Bytes decoded at a time by {@link readBoundedText}. */
export const readBlockBytes = 64 * 1024;

/**
 * Reads a response body as UTF-8, refusing (and discarding the rest of) one larger than
 * `maxBytes` with a non-retryable {@link ProtocolError}: the server is not trusted to be small.
 */
export async function readBoundedText(body: AsyncIterable<Uint8Array> & { destroy(error?: Error): unknown }, maxBytes: number, what: string): Promise<string> {
  // Decoded in blocks as it arrives rather than gathered into one buffer first: a page of
  // hundreds of KB would otherwise take a buffer of its size and another as large to decode it,
  // every page. Chunks are copied into one block, so the text has a piece per block however
  // small the server cuts its chunks (a piece per chunk would cost more than the bytes).
  // `ignoreBOM` keeps a leading byte order mark in the text, as a whole-buffer decode did.
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const block = Buffer.allocUnsafeSlow(readBlockBytes);
  let used = 0;
  let text = '';
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > maxBytes) {
      body.destroy();
      throw new ProtocolError(`${what} exceeds ${maxBytes} bytes; refusing to read it`);
    }
    for (let offset = 0; offset < chunk.byteLength; ) {
      const taken = Math.min(block.length - used, chunk.byteLength - offset);
      block.set(chunk.subarray(offset, offset + taken), used);
      used += taken;
      offset += taken;
      if (used === block.length) {
        // A character cut at the block's end is held by the decoder and completed by the next.
        text += decoder.decode(block, { stream: true });
        used = 0;
      }
    }
  }
  return text + decoder.decode(block.subarray(0, used));
}
