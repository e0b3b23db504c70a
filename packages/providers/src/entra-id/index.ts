import { type CompiledMapping, compileMapping } from '../mapping/engine.ts';
import { ConfigError, ProviderError } from '../errors.ts';
import { type DestinationPolicy, DestinationRefusedError } from '../net/destination.ts';
import type { ConnectionCheck, ConnectionReport, Cursor, FetchPage, MapResult, Provider, ProviderOptions } from '../types.ts';
import { type EntraCredential, EntraAuthError, type EntraTokenCache, GraphClient, type GraphClientOptions } from './client.ts';
import { type EntraIdSettings, entraIdSettingsSchema } from './config.ts';
import { fetchAllEntries, fetchChangedEntries, parseCursor } from './fetch.ts';
import { type EntraEntry, mapEntraEntry } from './map.ts';

export {
  entraIdSettingsSchema,
  defaultAuthorityHost,
  defaultGraphBaseUrl,
  isGuid,
  httpsBaseUrl,
  pemCertificates,
  entraClouds,
  entraCloud,
  isKnownAuthorityHost,
} from './config.ts';
export type { EntraIdSettings, EntraIdSettingsInput, EntraCloud } from './config.ts';
export {
  EntraAuthError,
  EntraTokenCache,
  GraphClient,
  DeltaTokenExpiredError,
  sharedTokenCache,
  mapTokenError,
  parseRetryAfter,
  backoffDelay,
  maxGraphAnswerBytes,
} from './client.ts';
export type { EntraCredential, EntraAuthProblem, GraphClientOptions, GraphConnectionSettings } from './client.ts';
export { mapEntraEntry, userProperties, groupProperties } from './map.ts';
export type { EntraEntry, GraphRecord } from './map.ts';
export { parseCursor as parseEntraCursor, selectionFingerprint } from './fetch.ts';
export type { EntraCursor } from './fetch.ts';
export { generateCertificate, certificateInfo } from './certificate.ts';
export type { GeneratedCertificate, CertificateInfo } from './certificate.ts';
export { ApplicationKeys, createProofJwt, proofAudience } from './applications.ts';
export { AdminSignInRefusedError, consentGrantingRoles, maxSignInAgeSeconds, verifyAdminSignIn } from './sign-in.ts';
export type { AdminSignInInput, VerifiedAdminSignIn } from './sign-in.ts';
export type { AppKeyCredential, CertificateKeyPair } from './applications.ts';

/** Options of {@link EntraIdProvider} beyond settings and credential. */
export interface EntraIdProviderOptions {
  /** Token cache shared across providers of the process (default: the shared one). */
  readonly tokenCache?: EntraTokenCache | undefined;
  /** Waits between retries (tests shorten them). */
  readonly sleep?: ((ms: number, signal: AbortSignal) => Promise<void>) | undefined;
  /** Where token and Graph requests may connect (default: the strict policy, public addresses only). */
  readonly destinations?: DestinationPolicy | undefined;
  /**
   * Other credentials of the same app, tried in order when Entra ID refuses the primary one
   * (a rotated key still propagating): see {@link GraphClientOptions.fallbackCredentials}.
   */
  readonly fallbackCredentials?: readonly EntraCredential[] | undefined;
}

/**
 * Provider of kind `entra_id`: Microsoft Entra ID through Microsoft Graph delta queries. External
 * id: the object id. Full sync = the initial delta rounds of users and groups; delta = the rounds
 * from the stored delta links, with `@removed` deletions and `members@delta` edge changes.
 */
export class EntraIdProvider implements Provider<EntraEntry> {
  readonly kind = 'entra_id';
  readonly settings: EntraIdSettings;
  readonly #client: GraphClient;
  readonly #mapping: CompiledMapping;

  constructor(settings: EntraIdSettings, credential: EntraCredential, options: EntraIdProviderOptions = {}) {
    this.settings = settings;
    this.#mapping = compileMapping(settings.attributeMapping);
    this.#client = new GraphClient(settings, credential, {
      tokenCache: options.tokenCache,
      sleep: options.sleep,
      destinations: options.destinations,
      fallbackCredentials: options.fallbackCredentials,
    });
  }

  /** Whether tokens come from the primary credential or one of the fallbacks (see {@link GraphClient.credentialUsed}). */
  get credentialUsed(): 'primary' | 'fallback' {
    return this.#client.credentialUsed;
  }

  /** Throttling answers waited out so far, and for how long in total (for reports and tests). */
  get throttling(): { readonly count: number; readonly waitedMs: number } {
    return { count: this.#client.throttledCount, waitedMs: this.#client.throttledMs };
  }

  /** The Graph client (token, requests) of this provider. */
  get client(): GraphClient {
    return this.#client;
  }

  async testConnection(signal?: AbortSignal): Promise<ConnectionReport> {
    const checks: ConnectionCheck[] = [];
    const abort = signal ?? new AbortController().signal;
    try {
      await this.#client.token(abort);
      checks.push({ name: 'token', ok: true, detail: `token issued by ${this.settings.authorityHost} for app ${this.#client.clientId} in tenant ${this.settings.tenantId}` });
    } catch (error) {
      if (abort.aborted) throw abort.reason;
      if (error instanceof DestinationRefusedError) {
        checks.push({ name: 'destination', ok: false, detail: `refused: ${error.message}` });
        return { ok: false, checks };
      }
      const name = error instanceof EntraAuthError && error.problem === 'consent' ? 'consent' : 'token';
      checks.push({ name, ok: false, detail: describe(error) });
      return { ok: false, checks };
    }
    for (const resource of ['users', 'groups'] as const) {
      try {
        const body = (await this.#client.getJson(`${this.settings.graphBaseUrl}/v1.0/${resource}?$top=1&$select=id`, abort)) as { value?: unknown[] };
        const any = Array.isArray(body?.value) && body.value.length > 0;
        checks.push({
          name: resource,
          ok: true,
          detail: any ? `${resource} can be read` : `${resource} can be read, but none is visible`,
          ...(any ? {} : { warning: true }),
        });
      } catch (error) {
        if (abort.aborted) throw abort.reason;
        checks.push({ name: resource, ok: false, detail: describe(error) });
      }
    }
    return { ok: checks.every((c) => c.ok), checks };
  }

  fetchFull(signal: AbortSignal): AsyncIterable<FetchPage<EntraEntry>> {
    return fetchAllEntries(this.#client, this.settings, signal);
  }

  async *fetchDelta(cursor: Cursor, signal: AbortSignal): AsyncIterable<FetchPage<EntraEntry>> {
    // Rejected before any request: an unusable cursor must not cost a round trip.
    const parsed = parseCursor(cursor, this.settings);
    yield* fetchChangedEntries(this.#client, this.settings, parsed, signal);
  }

  map(entry: EntraEntry): MapResult {
    return mapEntraEntry(entry, this.#mapping);
  }

  close(): Promise<void> {
    return this.#client.close();
  }
}

function describe(error: unknown): string {
  return error instanceof ProviderError ? error.message : error instanceof Error ? error.message : String(error);
}

const certificateSecretTag = 'dirsync-entra-certificate-v1';

/**
 * Packs a connector's certificate credential into the `secret` string the provider registry's
 * `create(settings, secret)` takes (the worker does this after decrypting the private key; the
 * string is as secret as the key and lives only as long as the provider is built).
 */
export function encodeCertificateSecret(credential: { clientId: string; certificatePem: string; privateKeyPem: string }): string {
  return JSON.stringify({ tag: certificateSecretTag, ...credential });
}

function decodeCertificateSecret(secret: string): EntraCredential | undefined {
  try {
    const value = JSON.parse(secret) as Record<string, unknown>;
    if (value['tag'] !== certificateSecretTag) return undefined;
    const { clientId, certificatePem, privateKeyPem } = value;
    if (typeof clientId !== 'string' || typeof certificatePem !== 'string' || typeof privateKeyPem !== 'string') return undefined;
    return { kind: 'certificate', clientId, certificatePem, privateKeyPem };
  } catch {
    return undefined;
  }
}

/**
 * Builds the provider from validated settings and the secret: for a legacy integration the
 * client secret of its own app registration; for a connector integration the connector's
 * certificate credential packed by {@link encodeCertificateSecret}.
 */
export function createEntraIdProvider(settings: EntraIdSettings, secret: string | undefined, options: EntraIdProviderOptions = {}): EntraIdProvider {
  if (settings.legacyApp !== undefined) {
    if (secret === undefined || secret === '') {
      throw new ConfigError(`no client secret is stored for the legacy app ${settings.legacyApp.clientId}; set the integration's secret`);
    }
    return new EntraIdProvider(settings, { kind: 'secret', clientId: settings.legacyApp.clientId, clientSecret: secret }, options);
  }
  const credential = secret === undefined ? undefined : decodeCertificateSecret(secret);
  if (!credential) {
    throw new ConfigError(`connector ${settings.connectorId ?? ''} credentials are loaded by the worker: build this provider with the connector's certificate`);
  }
  return new EntraIdProvider(settings, credential, options);
}

/** The `entra_id` entry of the provider kind registry. */
export const entraIdKind = {
  kind: 'entra_id',
  description: 'Microsoft Entra ID through Microsoft Graph delta queries (connector certificate or legacy app secret)',
  settingsSchema: entraIdSettingsSchema,
  create: (settings: EntraIdSettings, secret: string | undefined, options: ProviderOptions = {}) =>
    createEntraIdProvider(settings, secret, options.destinations ? { destinations: options.destinations } : {}),
} as const;
