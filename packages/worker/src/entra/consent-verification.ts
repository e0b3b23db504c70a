import { setTimeout as delay } from 'node:timers/promises';
import {
  consentSignInInFlight,
  type ConsentOutcome,
  type ConsentVerification,
  type Db,
  getConnector,
  getConsentOutcome,
  getConsentRequest,
  type KeyRing,
  recordConsentVerification,
  requiredConsentRoles,
  takeConsentSignIn,
  type ConnectorCredentialWithKey,
  withCurrentAndPreviousCredentials,
} from '@dirsync/db';
import {
  AdminSignInRefusedError,
  DestinationPolicy,
  EntraAuthError,
  EntraTokenCache,
  entraIdSettingsSchema,
  type EntraIdSettings,
  GraphClient,
  ProviderError,
  type VerifiedAdminSignIn,
  verifyAdminSignIn,
} from '@dirsync/providers';

/** Dependencies of {@link verifyTenantConsent}. */
export interface ConsentVerificationOptions {
  readonly db: Db;
  readonly keyRing: KeyRing;
  /** Longest the token request may take (default 30 s). */
  readonly timeoutMs?: number | undefined;
  /** Where the token request may connect (default: the strict policy, public addresses only). */
  readonly destinations?: DestinationPolicy | undefined;
  /**
   * How long fresh tokens are asked for again while they lack permissions the administrator just
   * granted (default 120 s): Entra ID may take a while to reflect a consent in tokens.
   */
  readonly propagationWaitMs?: number | undefined;
}

/** First pause between token requests waiting for granted permissions; doubles up to the cap. */
const propagationPollMs = 500;
const propagationPollCapMs = 8_000;

/** The application permissions a token's `roles` claim carries. */
function rolesOf(token: string): string[] {
  const { roles } = tokenClaims(token);
  return Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : [];
}

/** How much longer than its own deadline a run waits for another run's result (database writes). */
const otherRunGraceMs = 5_000;
const otherRunPollMs = 200;

/** Another run of the same request took the code and has not recorded its result in time. */
export class ConsentVerificationInFlightError extends Error {
  constructor() {
    super('another verification of this consent request took its authorization code and has not recorded a result');
    this.name = 'ConsentVerificationInFlightError';
  }
}

/**
 * Waits for the result of the run that took the request's code. Nothing is recorded here: if
 * that run died, the caller's own deadline ends the request (as when no worker answers).
 */
async function outcomeOfOtherRun(db: Db, nonce: string, waitMs: number): Promise<ConsentOutcome> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const outcome = await getConsentOutcome(db, nonce);
    if (outcome) return outcome;
    if (Date.now() >= deadline) throw new ConsentVerificationInFlightError();
    await delay(otherRunPollMs);
  }
}

/** The claims of an access token this check reads; the token came straight from the authority over TLS. */
function tokenClaims(token: string): { tid: unknown; roles: unknown; appid: unknown; azp: unknown } {
  const payload = token.split('.')[1];
  if (payload === undefined) throw new Error('the access token is not a JWT');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { tid: unknown; roles: unknown; appid: unknown; azp: unknown };
}

/**
 * Checks an answered consent request against Entra ID itself and records the result, in two
 * steps with the connector's current certificate:
 * 1. the administrator's sign-in: its authorization code (taken out of the request, once) is
 *    redeemed and the id_token verified ({@link verifyAdminSignIn}: the authority's keys, the
 *    connector as audience, the request's tenant and nonce, freshness, a directory role that can
 *    grant the consent) — this is what ties the consent page's answer to the tenant's
 *    administrator, which no query string can;
 * 2. the tenant's token endpoint is asked for an app-only Graph token (never from a cache: the
 *    consent may have changed a moment ago): its `tid` must be the tenant the administrator
 *    signed in to, and its `roles` are what {@link recordConsentVerification} decides on.
 * Runs on a worker (the only processes that talk to Entra ID); the CLI may run it too.
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
  const signIn = await takeConsentSignIn(db, options.keyRing, nonce);
  if (!signIn) {
    // A second run of the same request (a replayed job, two workers) must not record "not signed
    // in" over the first run's result: the first result recorded is the one kept.
    if (await consentSignInInFlight(db, nonce)) return outcomeOfOtherRun(db, nonce, (options.timeoutMs ?? 30_000) + otherRunGraceMs);
    return recordConsentVerification(db, nonce, { ok: false, outcome: 'not_granted', detail: "the tenant's administrator has not signed in (no authorization code to redeem)" });
  }
  const destinations = options.destinations ?? DestinationPolicy.strict();
  let result: ConsentVerification;
  try {
    let admin: VerifiedAdminSignIn | undefined;
    const token = await withCurrentAndPreviousCredentials(db, options.keyRing, connector.id, async (current, previous) => {
      const asCredential = (key: ConnectorCredentialWithKey) =>
        ({ kind: 'certificate', clientId: connector.clientId, certificatePem: key.certificatePem, privateKeyPem: key.privateKeyPem }) as const;
      const redeem = (key: ConnectorCredentialWithKey) =>
        verifyAdminSignIn({
          authorityHost: connector.authorityHost,
          tenantId: request.tenantId,
          clientId: connector.clientId,
          certificatePem: key.certificatePem,
          privateKeyPem: key.privateKeyPem,
          redirectUri: connector.redirectUri,
          code: signIn.code,
          nonce: signIn.nonce,
          caPem: connector.tlsCaPem ?? undefined,
          destinations,
          signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
        });
      try {
        admin = await redeem(current);
      } catch (error) {
        // A key rotated in a moment ago may not have reached this tenant yet (AADSTS700027): the
        // client is refused before the code is looked at, so the previous key can still redeem it.
        if (!(previous && error instanceof AdminSignInRefusedError && /AADSTS700027/.test(error.message))) throw error;
        admin = await redeem(previous);
      }
      const appToken = async () => {
        const client = new GraphClient(settings, asCredential(current), {
          // A cache of its own: this answer must come from the token endpoint now.
          tokenCache: new EntraTokenCache(1),
          destinations,
          ...(previous ? { fallbackCredentials: [asCredential(previous)] } : {}),
        });
        try {
          return await client.token(AbortSignal.timeout(options.timeoutMs ?? 30_000));
        } finally {
          await client.close();
        }
      };
      // Right after a consent, tokens can lack its permissions for a while (they are fixed when a
      // token is issued, and the grant takes time to reach the token service), and the tenant's new
      // service principal may not be known everywhere yet (AADSTS700016, AADSTS7000229): ask again
      // before judging, and judge on the last answer.
      const deadline = Date.now() + (options.propagationWaitMs ?? 120_000);
      let pause = propagationPollMs;
      for (;;) {
        let issued: string;
        try {
          issued = await appToken();
        } catch (error) {
          if (!(error instanceof EntraAuthError && error.problem === 'consent') || Date.now() + pause > deadline) throw error;
          await delay(pause);
          pause = Math.min(pause * 2, propagationPollCapMs);
          continue;
        }
        const roles = rolesOf(issued);
        if (requiredConsentRoles.every((role) => roles.includes(role)) || Date.now() + pause > deadline) return issued;
        await delay(pause);
        pause = Math.min(pause * 2, propagationPollCapMs);
      }
    });
    const claims = tokenClaims(token);
    const appId = typeof claims.appid === 'string' ? claims.appid : claims.azp;
    if (!admin) throw new Error('the sign-in was not verified');
    if (typeof claims.tid !== 'string' || (typeof appId === 'string' && appId.toLowerCase() !== connector.clientId.toLowerCase())) {
      result = { ok: false, outcome: 'not_granted', detail: 'the token issued for the tenant does not name the tenant or the connector' };
    } else if (claims.tid.toLowerCase() !== admin.tenantGuid) {
      // A request by domain learns the tenant's GUID from the app-only token (issued by the
      // domain's own authority): the administrator must have signed in to that very tenant.
      result = { ok: false, outcome: 'not_granted', detail: `the administrator signed in to tenant ${admin.tenantGuid}, not to the tenant of the request` };
    } else {
      const roles = rolesOf(token);
      result = { ok: true, tenantGuid: claims.tid, roles, admin: { objectId: admin.objectId, tenantGuid: admin.tenantGuid } };
    }
  } catch (error) {
    if (error instanceof AdminSignInRefusedError) {
      result = { ok: false, outcome: 'not_granted', detail: `the administrator's sign-in was refused: ${error.message}` };
    } else if (error instanceof EntraAuthError && error.problem === 'consent') {
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
