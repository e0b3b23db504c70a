import {
  clearConsentRefusals,
  type ConsentRefusalPolicy,
  type Db,
  defaultConsentRefusalPolicy,
  displayText,
  getConnector,
  getConsent,
  getLegacyMigrationDeadline,
  type KeyRing,
  recordConsentRefusal,
  withCurrentAndPreviousCredentials,
} from '@dirsync/db';
import {
  ConfigError,
  type ConnectionReport,
  type Cursor,
  type DestinationPolicy,
  createProvider,
  createEntraIdProvider,
  EntraAuthError,
  entraIdSettingsSchema,
  type EntraIdSettings,
  type EntraTokenCache,
  encodeCertificateSecret,
  type FetchPage,
  formatSettingsIssues,
  type MapResult,
  type Provider,
  UnavailableError,
} from '@dirsync/providers';
import type { ProviderFactory } from '../processor.ts';

/** Dependencies of {@link createEntraAwareProviderFactory}. */
export interface EntraProviderFactoryOptions {
  readonly db: Db;
  readonly keyRing: KeyRing;
  /** Token cache shared by this process's Entra providers (default: the providers package's). */
  readonly tokenCache?: EntraTokenCache | undefined;
  /** Builds providers of every other kind (default: the providers package's registry). */
  readonly fallback?: ProviderFactory | undefined;
  /** Clock for the legacy migration deadline. */
  readonly now?: (() => Date) | undefined;
  /** Waits between Graph retries (tests shorten them). */
  readonly sleep?: ((ms: number, signal: AbortSignal) => Promise<void>) | undefined;
  /** Where providers may connect (default: the strict policy, public addresses only). */
  readonly destinations?: DestinationPolicy | undefined;
  /**
   * When Entra ID's consent refusals in a tenant revoke the account's consent (default
   * {@link defaultConsentRefusalPolicy}: 30 minutes after the grant, then 3 refused runs in a row).
   */
  readonly consentRefusal?: ConsentRefusalPolicy | undefined;
}

/**
 * Entra ID or Graph refused the connector for lack of consent while the account's consent is
 * granted, within the grace after the grant or before enough refused runs: a grant (or a
 * permission added to it) takes a while to reach every replica. Retryable: the job backs off and
 * tries again; the consent stays granted and the integration does not show `needs_consent`.
 */
export class ConsentPropagationError extends UnavailableError {
  /** Refused runs in a row past the grace so far (0 within it). */
  readonly failures: number;
  constructor(tenantId: string, failures: number, policy: ConsentRefusalPolicy, graceEndsAt: Date | null, reason: string) {
    const where =
      failures === 0 && graceEndsAt !== null
        ? `within the grace after the grant, until ${graceEndsAt.toISOString()}`
        : `refused run ${failures} of ${policy.failuresToRevoke} before the consent counts as revoked`;
    super(`Entra ID refused the connector in tenant ${tenantId} after its consent was granted: waiting for permissions to propagate (${where}): ${reason}`);
    this.name = 'ConsentPropagationError';
    this.failures = failures;
  }
}

/**
 * The worker's provider factory. Every kind but `entra_id` goes to the registry. An Entra
 * integration on a connector gets the connector's cloud (authority, Graph, trusted CA) and its
 * current certificate, decrypted here and handed to the provider only, after checking that the
 * integration's own account holds a granted consent of the tenant (before anything is read); a
 * consent problem found while syncing is recorded for that account (its integrations of the
 * tenant then show `needs_consent`). A legacy integration uses its own client secret until
 * the migration deadline, after which it is refused with a clear error before anything is read.
 */
export function createEntraAwareProviderFactory(options: EntraProviderFactoryOptions): ProviderFactory {
  const fallback: ProviderFactory = options.fallback ?? ((kind, settings, secret) => createProvider(kind, settings, secret, { destinations: options.destinations }));
  const now = options.now ?? (() => new Date());
  return async (kind, settings, secret, owner) => {
    if (kind !== 'entra_id') return fallback(kind, settings, secret, owner);
    const parsed = entraIdSettingsSchema.safeParse(settings);
    if (!parsed.success) throw new ConfigError(`invalid entra_id settings: ${formatSettingsIssues(parsed.error).join('; ')}`);
    const providerOptions = { tokenCache: options.tokenCache, sleep: options.sleep, destinations: options.destinations };
    if (parsed.data.legacyApp !== undefined) {
      const deadline = await getLegacyMigrationDeadline(options.db);
      if (deadline !== null && now().getTime() > deadline.getTime()) {
        throw new ConfigError(
          `this legacy Entra ID integration (own app registration ${parsed.data.legacyApp.clientId}) passed its migration deadline of ${deadline.toISOString().slice(0, 10)} and no longer syncs: migrate it to a connector (dirsync integrations migrate <integration> --connector <connector> --description "…")`,
        );
      }
      return createEntraIdProvider(parsed.data, secret, providerOptions);
    }
    const connectorId = parsed.data.connectorId as string;
    const connector = await getConnector(options.db, connectorId);
    if (!connector) throw new ConfigError(`connector ${connectorId} of this integration does not exist`);
    // Read again before every run: the integration's account must hold the grant itself (another
    // account's consent of the same tenant is not its to use), and it may have been revoked since.
    if (owner === undefined) {
      throw new ConfigError('an Entra ID integration on a connector is built only for a known account (its consent is checked against that account)');
    }
    const consent = await getConsent(options.db, owner.accountId, connector.id, parsed.data.tenantId);
    if (consent?.status !== 'granted') {
      const state = consent === undefined ? 'has not been requested by this account' : `is ${consent.status}${consent.errorDescription ? ` (${displayText(consent.errorDescription)})` : ''}`;
      throw new EntraAuthError(
        'consent',
        parsed.data.tenantId,
        `this integration's account holds no granted consent of tenant ${parsed.data.tenantId} to connector "${connector.name}": its consent ${state}; send the tenant's administrator a consent URL of this account (dirsync connectors consent-url ${connector.name} --account <account> --tenant ${parsed.data.tenantId})`,
      );
    }
    // The connector's cloud, never the integration's: its certificate must not go anywhere else.
    const { caPem: _integrationCa, ...rest } = parsed.data;
    const effective: EntraIdSettings = {
      ...rest,
      authorityHost: connector.authorityHost,
      graphBaseUrl: connector.graphBaseUrl,
      ...(connector.tlsCaPem === null ? {} : { caPem: connector.tlsCaPem }),
    };
    const certificate = (credential: { certificatePem: string; privateKeyPem: string }) => ({
      kind: 'certificate' as const,
      clientId: connector.clientId,
      certificatePem: credential.certificatePem,
      privateKeyPem: credential.privateKeyPem,
    });
    // Right after a rotation a tenant may still refuse the new key: the previous one (still on the
    // app until the next rotation) is the fallback there.
    const provider = await withCurrentAndPreviousCredentials(options.db, options.keyRing, connector.id, async (current, previous) =>
      createEntraIdProvider(effective, encodeCertificateSecret(certificate(current)), {
        ...providerOptions,
        ...(previous === undefined ? {} : { fallbackCredentials: [certificate(previous)] }),
      }),
    );
    const policy = options.consentRefusal ?? defaultConsentRefusalPolicy;
    const tenantId = parsed.data.tenantId;
    return new ConsentTrackingProvider(provider, {
      refused: async (reason) => {
        const refusal = await recordConsentRefusal(options.db, owner.accountId, connector.id, tenantId, reason, policy);
        return refusal.revoked ? undefined : new ConsentPropagationError(tenantId, refusal.failures, policy, refusal.graceEndsAt, reason);
      },
      read: () => clearConsentRefusals(options.db, owner.accountId, connector.id, tenantId),
    });
  };
}

/** What {@link ConsentTrackingProvider} reports to. */
interface ConsentTracking {
  /**
   * Entra ID refused for lack of consent: records it; returns the error to throw instead while
   * the consent stays granted (grace), or undefined when it is now revoked.
   */
  refused(reason: string): Promise<Error | undefined>;
  /** A read of the tenant succeeded. */
  read(): Promise<void>;
}

/**
 * Passes everything to the Entra provider. When it fails for lack of consent the refusal is
 * recorded for the account's consent before the failure goes on (nothing is deleted: the run
 * fails as a whole): within the grace after the grant it goes on as a retryable
 * {@link ConsentPropagationError}, after it the consent is revoked and the original error goes on.
 * A complete read clears the count of refused runs.
 */
class ConsentTrackingProvider<S> implements Provider<S> {
  readonly kind: string;
  readonly #inner: Provider<S>;
  readonly #tracking: ConsentTracking;

  constructor(inner: Provider<S>, tracking: ConsentTracking) {
    this.kind = inner.kind;
    this.#inner = inner;
    this.#tracking = tracking;
  }

  /** Whether tokens come from the current key or the previous one (see `GraphClient.credentialUsed`). */
  get credentialUsed(): 'primary' | 'fallback' | undefined {
    const inner = this.#inner as { credentialUsed?: unknown };
    return inner.credentialUsed === 'primary' || inner.credentialUsed === 'fallback' ? inner.credentialUsed : undefined;
  }

  private async noted(error: unknown): Promise<never> {
    if (error instanceof EntraAuthError && error.problem === 'consent') {
      const instead = await this.#tracking.refused(error.message);
      if (instead) throw instead;
    }
    throw error;
  }

  async testConnection(signal?: AbortSignal): Promise<ConnectionReport> {
    const report = await this.#inner.testConnection(signal);
    const consent = report.checks.find((check) => check.name === 'consent' && !check.ok);
    if (consent) {
      const instead = await this.#tracking.refused(consent.detail);
      if (instead) {
        return { ...report, checks: report.checks.map((check) => (check === consent ? { ...check, detail: `${check.detail} — ${instead.message}` } : check)) };
      }
    } else if (report.ok) {
      await this.#tracking.read();
    }
    return report;
  }

  async *fetchFull(signal: AbortSignal): AsyncIterable<FetchPage<S>> {
    try {
      yield* this.#inner.fetchFull(signal);
    } catch (error) {
      await this.noted(error);
    }
    await this.#tracking.read();
  }

  async *fetchDelta(cursor: Cursor, signal: AbortSignal): AsyncIterable<FetchPage<S>> {
    try {
      yield* this.#inner.fetchDelta(cursor, signal);
    } catch (error) {
      await this.noted(error);
    }
    await this.#tracking.read();
  }

  map(entry: S): MapResult {
    return this.#inner.map(entry);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
