import {
  type ConsentOutcome,
  type ConsentVerification,
  type Db,
  getConnector,
  getConsentRequest,
  type KeyRing,
  recordConsentVerification,
  withCurrentCredential,
} from '@dirsync/db';
import { type DestinationPolicy, EntraAuthError, EntraTokenCache, entraIdSettingsSchema, type EntraIdSettings, GraphClient, ProviderError } from '@dirsync/providers';

/** Dependencies of {@link verifyTenantConsent}. */
export interface ConsentVerificationOptions {
  readonly db: Db;
  readonly keyRing: KeyRing;
  /** Longest the token request may take (default 30 s). */
  readonly timeoutMs?: number | undefined;
  /** Where the token request may connect (default: the strict policy, public addresses only). */
  readonly destinations?: DestinationPolicy | undefined;
}

/** The claims of an access token this check reads; the token came straight from the authority over TLS. */
function tokenClaims(token: string): { tid: unknown; roles: unknown; appid: unknown; azp: unknown } {
  const payload = token.split('.')[1];
  if (payload === undefined) throw new Error('the access token is not a JWT');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { tid: unknown; roles: unknown; appid: unknown; azp: unknown };
}

/**
 * Checks an answered admin-consent request against Entra ID itself and records the result: the
 * connector's current certificate asks the tenant's token endpoint for a Graph token (never from
 * a cache: the consent may have changed a moment ago), and the token's `tid` and `roles` claims
 * are what {@link recordConsentVerification} decides on. A tenant that has not consented gets no
 * token (AADSTS700016) or one without the roles; only then is the redirect's `admin_consent=True`
 * believed. Runs on a worker (the only processes that talk to Entra ID); the CLI may run it too.
 */
export async function verifyTenantConsent(options: ConsentVerificationOptions, nonce: string): Promise<ConsentOutcome> {
  const { db } = options;
  const request = await getConsentRequest(db, nonce);
  if (!request) throw new Error('consent request not found');
  if (request.outcome !== null) return recordConsentVerification(db, nonce, { ok: false, outcome: 'failed', detail: 'already recorded' });
  const connector = await getConnector(db, request.connectorId);
  if (!connector) return recordConsentVerification(db, nonce, { ok: false, outcome: 'failed', detail: 'the connector no longer exists' });
  const base = entraIdSettingsSchema.parse({ tenantId: request.tenantId, connectorId: connector.id });
  const settings: EntraIdSettings = {
    ...base,
    authorityHost: connector.authorityHost,
    graphBaseUrl: connector.graphBaseUrl,
    ...(connector.tlsCaPem === null ? {} : { caPem: connector.tlsCaPem }),
  };
  let result: ConsentVerification;
  try {
    const token = await withCurrentCredential(db, options.keyRing, connector.id, async (credential) => {
      const client = new GraphClient(
        settings,
        { kind: 'certificate', clientId: connector.clientId, certificatePem: credential.certificatePem, privateKeyPem: credential.privateKeyPem },
        // A cache of its own: this answer must come from the token endpoint now.
        { tokenCache: new EntraTokenCache(1), destinations: options.destinations },
      );
      try {
        return await client.token(AbortSignal.timeout(options.timeoutMs ?? 30_000));
      } finally {
        await client.close();
      }
    });
    const claims = tokenClaims(token);
    const appId = typeof claims.appid === 'string' ? claims.appid : claims.azp;
    if (typeof claims.tid !== 'string' || (typeof appId === 'string' && appId.toLowerCase() !== connector.clientId.toLowerCase())) {
      result = { ok: false, outcome: 'not_granted', detail: 'the token issued for the tenant does not name the tenant or the connector' };
    } else {
      const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [];
      result = { ok: true, tenantGuid: claims.tid, roles };
    }
  } catch (error) {
    if (error instanceof EntraAuthError && error.problem === 'consent') {
      // The AADSTS sentence says why in few words; the whole message would be cut by the display cap.
      const reason = /AADSTS\d+:[^()]*/.exec(error.message)?.[0]?.trim() ?? error.message;
      result = { ok: false, outcome: 'not_granted', detail: `Entra ID issued no token for the tenant: ${reason}` };
    } else if (error instanceof ProviderError) {
      result = { ok: false, outcome: 'failed', detail: `the consent could not be checked: ${error.message}` };
    } else {
      throw error;
    }
  }
  return recordConsentVerification(db, nonce, result);
}
