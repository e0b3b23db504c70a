import { randomBytes } from 'node:crypto';
import { and, asc, desc, eq, ne, sql } from 'drizzle-orm';
import type { Db } from './client.ts';
import { InvalidInputError, InvalidStateError, NotFoundError } from './errors.ts';
import { isUuid } from './ids.ts';
import { auditEvents, integrations } from './schema.ts';
import { type consentRequestOutcomes, entraConsents, entraConsentStates } from './schema-entra.ts';
import { decryptSecret, encryptSecret, type KeyRing } from './secrets.ts';
import { type Connector, requireConnector } from './connectors.ts';
import { displayText } from './display.ts';
import { consentCodeAad } from './encrypted-columns.ts';
import { recordConsentWebhookEvents } from './webhooks.ts';

// Admin consent of customers' tenants to connectors. A consent belongs to the account that asked
// for it: the same tenant consented through two accounts is two rows, granted, refused and
// revoked independently. The redirects back from Microsoft are unauthenticated (anyone can type
// their query string), so they never grant anything by themselves. A request has two steps, each
// with its own signed single-use state: the admin-consent page, whose success answer only sends
// the administrator on to sign in (OpenID Connect, with a nonce kept here); and the sign-in,
// whose authorization code a worker redeems. The grant is recorded only when the worker found
// the id_token signed by the authority, naming the request's tenant, the connector, the nonce,
// and a user who holds a directory role that can grant the consent; and the tenant's app-only
// token carrying the required `roles`. Who answered the consent page is then proven, not assumed.

/** A tenant's consent to a connector, held by one account. */
export type EntraConsent = typeof entraConsents.$inferSelect;
/** How a consent request ended. */
export type ConsentRequestOutcome = (typeof consentRequestOutcomes)[number];
/** A pending or finished consent request (the single-use state of one consent URL). */
export type ConsentRequestRecord = typeof entraConsentStates.$inferSelect;

/**
 * Application permissions a connector's token must carry in a tenant for its consent to count as
 * granted: the least-privileged read permissions of the users and groups delta queries.
 */
export const requiredConsentRoles = ['User.Read.All', 'GroupMember.Read.All'] as const;

/** How long the administrator has to sign in after answering the consent page. */
const signInTtlMs = 15 * 60_000;

/** An OAuth error code as Microsoft sends them (`access_denied`); anything else is replaced. */
function errorCode(value: string | null): string {
  return value !== null && /^[A-Za-z0-9_.-]{1,64}$/.test(value) ? value : 'invalid_response';
}

const tenantPattern = /^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;

/** Lower-cases and checks a tenant as integrations name it (GUID or domain). */
export function normaliseTenant(tenantId: string): string {
  const tenant = tenantId.trim().toLowerCase();
  if (!tenantPattern.test(tenant)) throw new InvalidInputError('the tenant must be its GUID or its domain (contoso.onmicrosoft.com)');
  return tenant;
}

/** The consent rows naming `tenant` by the name it was asked for or by its GUID. */
function namesTenant(tenant: string, guid: string | null = null) {
  const names = guid === null || guid === tenant ? [tenant] : [tenant, guid];
  return sql`(${entraConsents.tenantId} in ${names} or ${entraConsents.tenantGuid} in ${names})`;
}

function integrationsOn(accountId: string, connectorId: string, tenantId: string, tenantGuid: string | null) {
  return sql`${integrations.accountId} = ${accountId} and ${integrations.kind} = 'entra_id'
    and ${integrations.settings}->>'connectorId' = ${connectorId}
    and lower(${integrations.settings}->>'tenantId') in (${tenantId}, ${tenantGuid ?? tenantId})`;
}

/** The database or a transaction of it: what the helpers below read and write through. */
type Queries = Pick<Db, 'select' | 'insert' | 'update'>;

// ---- requests and the redirect ----

const consentStateAad = 'entra-consent-state';

/** Input of {@link createConsentRequest}. */
export interface ConsentRequestInput {
  /** The account asking: the consent, once granted, is its own. */
  readonly accountId: string;
  readonly connectorId: string;
  /** The customer's tenant (GUID or domain). */
  readonly tenantId: string;
  /** How long the URL can be used (default 1 hour). */
  readonly ttlMs?: number;
  /**
   * A console page (path under `/console/`, checked by the caller) the callback sends the browser
   * back to once the request ends; without one the callback shows its own page.
   */
  readonly returnTo?: string | undefined;
}

/** An admin-consent URL and the state it carries. */
export interface ConsentRequest {
  readonly url: string;
  readonly state: string;
  readonly expiresAt: Date;
  readonly tenantId: string;
}

/**
 * Makes the admin-consent URL for a tenant ({@link adminConsentUrl}). The state is an
 * authenticated encryption (under the secret key ring) of a random nonce, the account, the
 * connector, the tenant and an expiry, so it cannot be forged or altered; the nonce is stored and
 * can be used once. The account's consent is recorded as pending unless it already has one.
 */
export async function createConsentRequest(db: Db, ring: KeyRing, input: ConsentRequestInput): Promise<ConsentRequest> {
  if (!isUuid(input.accountId)) throw new NotFoundError(`account ${input.accountId} not found`);
  const connector = await requireConnector(db, input.connectorId);
  const tenantId = normaliseTenant(input.tenantId);
  // Requests nobody finished end here rather than waiting forever.
  await expireConsentRequests(db);
  const nonce = randomBytes(24).toString('base64url');
  const expiresAt = new Date(Date.now() + (input.ttlMs ?? 3600_000));
  const state = sealState(ring, { n: nonce, a: input.accountId, c: connector.id, t: tenantId, e: expiresAt.getTime(), s: 'consent' });
  await db.transaction(async (tx) => {
    await tx.insert(entraConsentStates).values({ nonce, accountId: input.accountId, connectorId: connector.id, tenantId, expiresAt, returnTo: input.returnTo ?? null });
    await tx.insert(entraConsents).values({ accountId: input.accountId, connectorId: connector.id, tenantId, status: 'pending' }).onConflictDoNothing();
  });
  return { url: adminConsentUrl(connector, tenantId, state), state, expiresAt, tenantId };
}

/**
 * The v2.0 admin-consent URL of a connector for a tenant, on the connector's own authority (its
 * cloud): `{authority}/{tenant}/v2.0/adminconsent?client_id=…&scope={graph}/.default&redirect_uri=…&state=…`.
 * v2-admin-consent.md names `scope` required; `/.default` of the connector's Graph asks for the
 * application permissions the app registration lists (in the national clouds, their own Graph).
 */
export function adminConsentUrl(connector: Pick<Connector, 'authorityHost' | 'graphBaseUrl' | 'clientId' | 'redirectUri'>, tenantId: string, state: string): string {
  const url = new URL(`${connector.authorityHost.replace(/\/+$/, '')}/${encodeURIComponent(tenantId)}/v2.0/adminconsent`);
  url.searchParams.set('client_id', connector.clientId);
  url.searchParams.set('scope', `${connector.graphBaseUrl.replace(/\/+$/, '')}/.default`);
  url.searchParams.set('redirect_uri', connector.redirectUri);
  url.searchParams.set('state', state);
  return url.href;
}

/** Which redirect a state is for: the admin-consent page's, or the sign-in's that follows it. */
type StateStep = 'consent' | 'sign_in';

interface StatePayload {
  readonly n: string;
  readonly a: string;
  readonly c: string;
  readonly t: string;
  readonly e: number;
  readonly s: StateStep;
}

function sealState(ring: KeyRing, payload: StatePayload): string {
  const sealed = encryptSecret(ring, JSON.stringify(payload), consentStateAad);
  return `${sealed.keyId}.${Buffer.from(sealed.ciphertext, 'base64').toString('base64url')}`;
}

/** The request a redirect's state names: who asked, for which connector and tenant. */
export interface ConsentRequestRef {
  readonly nonce: string;
  readonly accountId: string;
  readonly connectorId: string;
  readonly tenantId: string;
  /** The console page the request asked to come back to, if any (read once the state is used). */
  readonly returnTo: string | null;
}

/**
 * What a consent redirect did: ended its request with the refusal; sent the administrator on to
 * sign in (`url`, the authorize URL with the request's second state and its nonce); or, after the
 * sign-in, kept the authorization code for a worker to redeem (`verify`).
 */
export type ConsentRedirect =
  | {
      readonly kind: 'refused';
      readonly request: ConsentRequestRef;
      readonly error: string;
      readonly errorDescription: string | null;
      /** The account already held a grant, which the refusal left as it was. */
      readonly grantKept: boolean;
    }
  | { readonly kind: 'sign_in'; readonly request: ConsentRequestRef; readonly url: string }
  | { readonly kind: 'verify'; readonly request: ConsentRequestRef };

function openState(ring: KeyRing, state: string): StatePayload {
  const forged = new InvalidInputError('the consent state is not one this installation issued');
  const dot = state.indexOf('.');
  let payload: { n?: unknown; a?: unknown; c?: unknown; t?: unknown; e?: unknown; s?: unknown };
  try {
    if (dot <= 0 || state.length > 2048) throw forged;
    const ciphertext = Buffer.from(state.slice(dot + 1), 'base64url').toString('base64');
    payload = JSON.parse(decryptSecret(ring, { keyId: state.slice(0, dot), ciphertext }, consentStateAad)) as typeof payload;
  } catch {
    throw forged;
  }
  const { n, a, c, t, e, s } = payload;
  if (typeof n !== 'string' || typeof a !== 'string' || typeof c !== 'string' || typeof t !== 'string' || typeof e !== 'number') throw forged;
  // States issued before the sign-in step existed are consent-page states.
  if (s !== undefined && s !== 'consent' && s !== 'sign_in') throw forged;
  return { n, a, c, t, e, s: s ?? 'consent' };
}

/**
 * Handles a redirect back from Microsoft: checks the state (authentic, unexpired, unused — it is
 * used up here, whatever the answer) and then, for the admin-consent page's state,
 * - an error answer (`error=…&error_description=…`) ends the request as `denied` and marks the
 *   account's consent `denied` unless it is granted: a refusal never takes a grant away;
 * - `admin_consent=True` records nothing and returns `sign_in`: the administrator must now sign
 *   in at the tenant's authorize endpoint (OpenID Connect authorization code flow, `openid
 *   profile`) with the request's second state and a fresh nonce kept here;
 * and for the sign-in's state,
 * - an error answer ends the request as above;
 * - a `code` is sealed into the request and `verify` is returned: the caller has a worker redeem
 *   it and check the id_token and the tenant's app-only token ({@link recordConsentVerification}).
 *
 * The redirects' own `tenant` parameter is ignored: Microsoft's documentation warns that anyone
 * can send it. Throws {@link InvalidInputError} for a state that is forged, expired or used.
 */
export async function acceptConsentRedirect(db: Db, ring: KeyRing, params: URLSearchParams): Promise<ConsentRedirect> {
  const state = openState(ring, params.get('state') ?? '');
  if (state.e < Date.now()) throw new InvalidInputError('the consent state has expired: create a new consent URL');
  const named = { nonce: state.n, accountId: state.a, connectorId: state.c, tenantId: state.t };
  const error = errorCode(params.get('error'));
  const rawDescription = params.get('error_description');
  const errorDescription = rawDescription === null ? null : displayText(rawDescription);
  const code = params.get('code');
  // Microsoft's error answers carry admin_consent=True too: the error decides.
  const refused =
    params.has('error') || (state.s === 'consent' ? params.get('admin_consent')?.toLowerCase() !== 'true' : code === null || code === '' || code.length > 4096);
  const connector = refused || state.s === 'sign_in' ? undefined : await requireConnector(db, named.connectorId);
  const sameRequest = and(
    eq(entraConsentStates.nonce, named.nonce),
    eq(entraConsentStates.accountId, named.accountId),
    eq(entraConsentStates.connectorId, named.connectorId),
    eq(entraConsentStates.tenantId, named.tenantId),
  );
  return db.transaction(async (tx) => {
    const signInNonce = randomBytes(24).toString('base64url');
    const sealedCode = state.s === 'sign_in' && !refused && code !== null ? encryptSecret(ring, code, consentCodeAad(named.nonce)) : undefined;
    const used =
      state.s === 'consent'
        ? await tx
            .update(entraConsentStates)
            .set({ usedAt: sql`now()`, ...(refused ? {} : { signInNonce }) })
            .where(and(sameRequest, sql`${entraConsentStates.usedAt} is null`))
            .returning({ nonce: entraConsentStates.nonce, returnTo: entraConsentStates.returnTo })
        : await tx
            .update(entraConsentStates)
            .set({ signInUsedAt: sql`now()`, ...(sealedCode ? { codeCiphertext: sealedCode.ciphertext, codeKeyId: sealedCode.keyId } : {}) })
            .where(
              and(
                sameRequest,
                sql`${entraConsentStates.usedAt} is not null and ${entraConsentStates.signInNonce} is not null`,
                sql`${entraConsentStates.signInUsedAt} is null and ${entraConsentStates.outcome} is null`,
              ),
            )
            .returning({ nonce: entraConsentStates.nonce, returnTo: entraConsentStates.returnTo });
    if (used.length === 0) throw new InvalidInputError('the consent state was already used (or never issued): create a new consent URL');
    const request: ConsentRequestRef = { ...named, returnTo: used[0]?.returnTo ?? null };
    if (!refused && state.s === 'sign_in') return { kind: 'verify' as const, request };
    if (!refused && connector) {
      const secondState = sealState(ring, { ...state, e: Math.min(state.e, Date.now() + signInTtlMs), s: 'sign_in' });
      // The sign-in goes to the tenant of the request, never to `organizations`: the id_token's
      // `tid` is checked against the same tenant anyway.
      const url = new URL(`${connector.authorityHost}/${encodeURIComponent(request.tenantId)}/oauth2/v2.0/authorize`);
      url.searchParams.set('client_id', connector.clientId);
      url.searchParams.set('response_type', 'code');
      url.searchParams.set('redirect_uri', connector.redirectUri);
      url.searchParams.set('response_mode', 'query');
      url.searchParams.set('scope', 'openid profile');
      url.searchParams.set('state', secondState);
      url.searchParams.set('nonce', signInNonce);
      // The same administrator just answered the consent page: ask who it is again anyway.
      url.searchParams.set('prompt', 'login');
      return { kind: 'sign_in' as const, request, url: url.href };
    }
    const detail = errorDescription === null ? error : `${error}: ${errorDescription}`;
    await tx
      .update(entraConsentStates)
      .set({ outcome: 'denied', detail: displayText(detail), completedAt: sql`now()` })
      .where(eq(entraConsentStates.nonce, request.nonce));
    const changed = await tx
      .update(entraConsents)
      .set({ status: 'denied', error, errorDescription, updatedAt: sql`now()` })
      .where(
        and(
          eq(entraConsents.accountId, request.accountId),
          eq(entraConsents.connectorId, request.connectorId),
          eq(entraConsents.tenantId, request.tenantId),
          ne(entraConsents.status, 'granted'),
        ),
      )
      .returning({ status: entraConsents.status });
    await tx.insert(auditEvents).values({
      accountId: request.accountId,
      actor: 'consent-redirect',
      action: 'connector.consent.denied',
      details: { connectorId: request.connectorId, tenantId: request.tenantId, step: state.s, error, errorDescription, grantKept: changed.length === 0 },
    });
    return { kind: 'refused' as const, request, error, errorDescription, grantKept: changed.length === 0 };
  });
}

/** What a worker needs to finish a consent request's sign-in: the code and the nonce to expect. */
export interface ConsentSignIn {
  readonly code: string;
  readonly nonce: string;
}

/**
 * Takes the sign-in's authorization code out of a consent request, once: the sealed code is
 * cleared in the same statement, so a second worker (or a replayed job) finds none. Undefined
 * when there is none (never signed in, or already taken).
 */
export async function takeConsentSignIn(db: Db, ring: KeyRing, nonce: string): Promise<ConsentSignIn | undefined> {
  const rows = await db.$client<{ ciphertext: string; key_id: string; sign_in_nonce: string }[]>`
    with taken as (
      select nonce, code_ciphertext, code_key_id, sign_in_nonce from entra_consent_states
      where nonce = ${nonce} and code_ciphertext is not null and sign_in_nonce is not null
      for update)
    update entra_consent_states s set code_ciphertext = null, code_key_id = null
    from taken where s.nonce = taken.nonce
    returning taken.code_ciphertext as ciphertext, taken.code_key_id as key_id, taken.sign_in_nonce`;
  const [row] = rows;
  if (!row) return undefined;
  return { code: decryptSecret(ring, { ciphertext: row.ciphertext, keyId: row.key_id }, consentCodeAad(nonce)), nonce: row.sign_in_nonce };
}

/**
 * Whether another verification holds a consent request's code: the sign-in was answered with a
 * code, the code has been taken, and no outcome is recorded yet. A verification that finds no
 * code to take must then leave the outcome to the one that took it, whose result is the real one.
 */
export async function consentSignInInFlight(db: Db, nonce: string): Promise<boolean> {
  const request = await getConsentRequest(db, nonce);
  return request !== undefined && request.signInUsedAt !== null && request.codeCiphertext === null && request.outcome === null;
}

/** The consent request with this nonce, as stored. */
export async function getConsentRequest(db: Db, nonce: string): Promise<ConsentRequestRecord | undefined> {
  const [row] = await db.select().from(entraConsentStates).where(eq(entraConsentStates.nonce, nonce));
  return row;
}

/**
 * What a worker found for a consent request: the administrator's verified sign-in and the
 * tenant's app-only token, or why the request cannot be granted.
 */
export type ConsentVerification =
  /**
   * The id_token verified (signature, issuer, audience, nonce, freshness, a directory role that
   * can grant the consent) and the tenant issued an app-only token: its `tid` and `roles`.
   */
  | {
      readonly ok: true;
      readonly tenantGuid: string;
      readonly roles: readonly string[];
      /** Who signed in: the `oid` and `tid` of the verified id_token. */
      readonly admin: { readonly objectId: string; readonly tenantGuid: string };
    }
  /** No verified sign-in or no token (or the authority could not be reached). */
  | { readonly ok: false; readonly outcome: 'not_granted' | 'failed'; readonly detail: string };

/** How a verified consent request ended. */
export interface ConsentOutcome {
  readonly accountId: string;
  readonly connectorId: string;
  readonly tenantId: string;
  /** An `expired` request reads as `failed` here (its detail says why): a worker never ends one so. */
  readonly outcome: Exclude<ConsentRequestOutcome, 'expired'>;
  readonly tenantGuid: string | null;
  readonly detail: string | null;
}

/**
 * Records what a worker found for a consent request, once: the first result wins, a later one
 * (a worker finishing after the caller gave up) returns the recorded outcome.
 * - A verified administrator's sign-in in the request's tenant and every required role in the
 *   tenant's token → the account's consent is `granted` (with the roles and the tenant GUID) and
 *   its integrations waiting for consent may sync again. Only a request whose sign-in redirect
 *   was answered can be granted. When another account currently holds a granted consent of the
 *   tenant, the request ends as `confirmation_required` until a platform administrator confirms
 *   it ({@link confirmConsent}): the tenant's administrator did sign in, but serving one tenant
 *   to a second account is worth a second look (a tenant's administrator lured to another
 *   account's link). A consent revoked since, or this account's own earlier one, needs nothing.
 * - No verified sign-in, missing roles or no token → `not_granted` (or `failed` when the
 *   authority did not answer); the account's consent becomes `denied` unless it is granted.
 */
export async function recordConsentVerification(db: Db, nonce: string, result: ConsentVerification): Promise<ConsentOutcome> {
  return db.transaction(async (tx) => {
    const [request] = await tx.select().from(entraConsentStates).where(eq(entraConsentStates.nonce, nonce)).for('update');
    if (!request) throw new NotFoundError('consent request not found');
    if (request.usedAt === null) throw new InvalidStateError('the consent request has not been answered yet');
    const { accountId, connectorId, tenantId } = request;
    const base = { accountId, connectorId, tenantId };
    if (request.outcome !== null) return (await outcomeOf(tx, request)) as ConsentOutcome;
    const finish = async (outcome: Exclude<ConsentRequestOutcome, 'expired'>, detail: string | null, tenantGuid: string | null): Promise<ConsentOutcome> => {
      const shown = detail === null ? null : displayText(detail);
      await tx.update(entraConsentStates).set({ outcome, detail: shown, completedAt: sql`now()`, codeCiphertext: null, codeKeyId: null }).where(eq(entraConsentStates.nonce, nonce));
      await tx.insert(auditEvents).values({
        accountId,
        actor: 'consent-verification',
        action: `connector.consent.${outcome}`,
        details: { connectorId, tenantId, tenantGuid, detail: shown },
      });
      return { ...base, outcome, tenantGuid, detail: shown };
    };
    const own = and(eq(entraConsents.accountId, accountId), eq(entraConsents.connectorId, connectorId), eq(entraConsents.tenantId, tenantId));
    if (!result.ok) {
      const detail = displayText(result.detail);
      await tx
        .update(entraConsents)
        .set({ status: 'denied', error: 'consent_not_verified', errorDescription: detail, updatedAt: sql`now()` })
        .where(and(own, ne(entraConsents.status, 'granted')));
      return finish(result.outcome, detail, null);
    }
    const tenantGuid = result.tenantGuid.toLowerCase();
    const roles = [...new Set(result.roles)].sort();
    if (request.signInUsedAt === null || result.admin.tenantGuid.toLowerCase() !== tenantGuid) {
      const detail = request.signInUsedAt === null ? "the tenant's administrator has not signed in" : 'the administrator who signed in belongs to another tenant';
      await tx
        .update(entraConsents)
        .set({ status: 'denied', error: 'admin_not_verified', errorDescription: detail, updatedAt: sql`now()` })
        .where(and(own, ne(entraConsents.status, 'granted')));
      return finish('not_granted', detail, null);
    }
    const missing = requiredConsentRoles.filter((role) => !roles.includes(role));
    if (missing.length > 0) {
      const detail = `the tenant's token carries ${roles.length === 0 ? 'no application permissions' : roles.join(', ')}; missing ${missing.join(', ')}: its administrator must grant admin consent to every permission`;
      await tx
        .update(entraConsents)
        .set({ status: 'denied', error: 'permissions_missing', errorDescription: displayText(detail), roles, updatedAt: sql`now()` })
        .where(and(own, ne(entraConsents.status, 'granted')));
      return finish('not_granted', detail, tenantGuid);
    }
    const [other] = await tx
      .select({ accountId: entraConsents.accountId })
      .from(entraConsents)
      .where(and(eq(entraConsents.connectorId, connectorId), ne(entraConsents.accountId, accountId), eq(entraConsents.status, 'granted'), namesTenant(tenantId, tenantGuid)))
      .limit(1);
    if (other) {
      const detail = "another account already syncs this tenant through the connector: a platform administrator must confirm this account's consent (dirsync connectors consent-confirm)";
      await tx
        .update(entraConsents)
        .set({ status: 'pending', error: 'confirmation_required', errorDescription: detail, tenantGuid, roles, updatedAt: sql`now()` })
        .where(and(own, ne(entraConsents.status, 'granted')));
      return finish('confirmation_required', detail, tenantGuid);
    }
    await grant(tx, accountId, connectorId, tenantId, tenantGuid, roles);
    await tx.insert(auditEvents).values({
      accountId,
      actor: 'consent-verification',
      action: 'connector.consent.admin_signed_in',
      details: { connectorId, tenantId, tenantGuid, adminObjectId: displayText(result.admin.objectId, 64) },
    });
    return finish('granted', null, tenantGuid);
  });
}

async function outcomeOf(db: Queries, request: ConsentRequestRecord): Promise<ConsentOutcome | undefined> {
  if (request.outcome === null) return undefined;
  const [consent] = await db
    .select({ tenantGuid: entraConsents.tenantGuid })
    .from(entraConsents)
    .where(and(eq(entraConsents.accountId, request.accountId), eq(entraConsents.connectorId, request.connectorId), eq(entraConsents.tenantId, request.tenantId)));
  return {
    accountId: request.accountId,
    connectorId: request.connectorId,
    tenantId: request.tenantId,
    outcome: request.outcome === 'expired' ? 'failed' : request.outcome,
    tenantGuid: request.outcome === 'granted' || request.outcome === 'confirmation_required' ? (consent?.tenantGuid ?? null) : null,
    detail: request.detail,
  };
}

/** How a consent request ended, or undefined while it is still open (or unknown). */
export async function getConsentOutcome(db: Db, nonce: string): Promise<ConsentOutcome | undefined> {
  const request = await getConsentRequest(db, nonce);
  return request === undefined ? undefined : outcomeOf(db, request);
}

async function grant(db: Queries, accountId: string, connectorId: string, tenantId: string, tenantGuid: string | null, roles: readonly string[] | null): Promise<void> {
  const values = {
    status: 'granted' as const,
    tenantGuid,
    roles: roles === null ? null : [...roles],
    error: null,
    errorDescription: null,
    grantedAt: sql`now()`,
    revokedAt: null,
    authFailures: 0,
    lastAuthFailureAt: null,
  };
  await db
    .insert(entraConsents)
    .values({ accountId, connectorId, tenantId, ...values })
    .onConflictDoUpdate({ target: [entraConsents.accountId, entraConsents.connectorId, entraConsents.tenantId], set: { ...values, updatedAt: sql`now()` } });
  // The account's integrations waiting for this consent may sync again.
  await db
    .update(integrations)
    .set({ status: 'new', updatedAt: sql`now()` })
    .where(and(integrationsOn(accountId, connectorId, tenantId, tenantGuid), eq(integrations.status, 'needs_consent')));
}

/** Input of {@link confirmConsent}. */
export interface ConsentConfirmation {
  readonly accountId: string;
  readonly connectorId: string;
  readonly tenantId: string;
  /** Who confirmed, for the audit log. */
  readonly actor: string;
}

/**
 * A platform administrator's confirmation of a consent that ended as `confirmation_required`
 * (the token carried every permission, but the tenant had consented for another account first).
 * Refused for any consent in another state. Audited.
 */
export async function confirmConsent(db: Db, input: ConsentConfirmation): Promise<EntraConsent> {
  const tenantId = normaliseTenant(input.tenantId);
  return db.transaction(async (tx) => {
    const [row] = await tx
      .select()
      .from(entraConsents)
      .where(and(eq(entraConsents.accountId, input.accountId), eq(entraConsents.connectorId, input.connectorId), eq(entraConsents.tenantId, tenantId)))
      .for('update');
    if (row?.status !== 'pending' || row.error !== 'confirmation_required') {
      throw new InvalidStateError(`the account's consent of tenant ${tenantId} is not waiting for a confirmation (it is ${row?.status ?? 'absent'})`);
    }
    await grant(tx, input.accountId, input.connectorId, tenantId, row.tenantGuid, row.roles);
    await tx.insert(auditEvents).values({ accountId: input.accountId, actor: input.actor, action: 'connector.consent.confirmed', details: { connectorId: input.connectorId, tenantId } });
    const [updated] = await tx
      .select()
      .from(entraConsents)
      .where(and(eq(entraConsents.accountId, input.accountId), eq(entraConsents.connectorId, input.connectorId), eq(entraConsents.tenantId, tenantId)));
    if (!updated) throw new Error('consent vanished inside its transaction');
    return updated;
  });
}

// ---- reading and checking ----

/** The account's consent of a tenant (GUID or domain) to a connector. */
export async function getConsent(db: Db, accountId: string, connectorId: string, tenantId: string): Promise<EntraConsent | undefined> {
  if (!isUuid(accountId) || !isUuid(connectorId)) return undefined;
  const rows = await db
    .select()
    .from(entraConsents)
    .where(and(eq(entraConsents.accountId, accountId), eq(entraConsents.connectorId, connectorId), namesTenant(tenantId.toLowerCase())))
    // A grant under either name of the tenant counts.
    .orderBy(sql`${entraConsents.status} = 'granted' desc`, desc(entraConsents.updatedAt));
  return rows[0];
}

/** True when the account holds a granted consent of the tenant to the connector. */
export async function hasGrantedConsent(db: Db, accountId: string, connectorId: string, tenantId: string): Promise<boolean> {
  return (await getConsent(db, accountId, connectorId, tenantId))?.status === 'granted';
}

/** Consents to a connector: every account's, or one account's. */
export async function listConsents(db: Db, connectorId: string, filter: { accountId?: string } = {}): Promise<EntraConsent[]> {
  if (!isUuid(connectorId) || (filter.accountId !== undefined && !isUuid(filter.accountId))) return [];
  return db
    .select()
    .from(entraConsents)
    .where(and(eq(entraConsents.connectorId, connectorId), filter.accountId === undefined ? undefined : eq(entraConsents.accountId, filter.accountId)))
    .orderBy(asc(entraConsents.tenantId), asc(entraConsents.accountId));
}

/**
 * Records that Entra ID or Graph refused the connector in a tenant while one account's
 * integration used it: that account's consent becomes `revoked` with the reason and its
 * integrations on the tenant `needs_consent`. Other accounts' consents of the same tenant are
 * theirs: their own runs find out for themselves. Returns how many integrations were marked.
 */
export async function markConsentRevoked(db: Db, accountId: string, connectorId: string, tenantId: string, reason: string): Promise<number> {
  const marked = await db.transaction((tx) => revokeFromWorker(tx, accountId, connectorId, tenantId.toLowerCase(), displayText(reason)));
  // After the ORM's transaction (its handle is not a plain SQL one): the revocation is already
  // visible, so a crash here loses only the notification, never the fact.
  if (marked > 0) await recordConsentWebhookEvents(db, { accountId, connectorId, tenantId: tenantId.toLowerCase(), type: 'consent.revoked', detail: displayText(reason), actionNeeded: true });
  return marked;
}

async function revokeFromWorker(tx: Queries, accountId: string, connectorId: string, tenant: string, description: string): Promise<number> {
  const updated = await tx
    .update(entraConsents)
    .set({ status: 'revoked', error: 'consent_revoked', errorDescription: description, revokedAt: sql`now()`, authFailures: 0, updatedAt: sql`now()` })
    .where(and(eq(entraConsents.accountId, accountId), eq(entraConsents.connectorId, connectorId), namesTenant(tenant)))
    .returning({ tenantGuid: entraConsents.tenantGuid });
  const marked = await tx
    .update(integrations)
    .set({ status: 'needs_consent', updatedAt: sql`now()` })
    .where(integrationsOn(accountId, connectorId, tenant, updated[0]?.tenantGuid ?? null))
    .returning({ id: integrations.id });
  await tx.insert(auditEvents).values({ accountId, actor: 'worker', action: 'connector.consent.revoked', details: { connectorId, tenantId: tenant, reason: description } });
  return marked.length;
}

/** When Entra ID's refusals of a granted consent count as its revocation ({@link recordConsentRefusal}). */
export interface ConsentRefusalPolicy {
  /**
   * How long after the grant refusals are put down to the grant still propagating: Entra ID and
   * Graph replicas learn of a new consent (and of a new key) some time after it is given.
   */
  readonly graceMs: number;
  /** Refused runs in a row after the grace that revoke the consent (at least 1). */
  readonly failuresToRevoke: number;
  /**
   * Least time between two counted refusals (default 10 minutes): the retries of one run, which
   * follow each other within seconds, count once, so a revocation takes refusals spread over
   * `(failuresToRevoke - 1) × spacingMs` at least, not one short spell of 403s.
   */
  readonly spacingMs?: number | undefined;
}

/** Default {@link ConsentRefusalPolicy.spacingMs}. */
export const defaultConsentRefusalSpacingMs = 10 * 60_000;

/** 30 minutes of grace after the grant, then 3 refused runs in a row at least 10 minutes apart. */
export const defaultConsentRefusalPolicy: ConsentRefusalPolicy = { graceMs: 30 * 60_000, failuresToRevoke: 3, spacingMs: defaultConsentRefusalSpacingMs };

/** What {@link recordConsentRefusal} decided. */
export type ConsentRefusal =
  /** The consent is (now) revoked: the account's integrations of the tenant show `needs_consent`. */
  | { readonly revoked: true; readonly failures: number }
  /** The consent stays granted: the run should be retried later. */
  | { readonly revoked: false; readonly failures: number; readonly graceEndsAt: Date | null };

/**
 * Records that Entra ID or Graph refused the connector in a tenant for lack of consent while one
 * account's integration used it. A granted consent stays granted while it is within
 * `policy.graceMs` of its grant (such refusals are not counted), and past the grace until
 * `policy.failuresToRevoke` runs in a row were refused; the last of those revokes it as
 * {@link markConsentRevoked} does. A consent
 * that is no longer granted is revoked at once. {@link clearConsentRefusals} resets the count.
 */
export async function recordConsentRefusal(
  db: Db,
  accountId: string,
  connectorId: string,
  tenantId: string,
  reason: string,
  policy: ConsentRefusalPolicy = defaultConsentRefusalPolicy,
): Promise<ConsentRefusal> {
  const tenant = tenantId.toLowerCase();
  const description = displayText(reason);
  const graceMs = Math.max(0, Math.floor(policy.graceMs));
  // The database's clock, as for grantedAt itself.
  const pastGrace = sql<boolean>`coalesce(${entraConsents.grantedAt} <= now() - ${`${graceMs} milliseconds`}::interval, true)`;
  const spacingMs = Math.max(0, Math.floor(policy.spacingMs ?? defaultConsentRefusalSpacingMs));
  // `last_auth_failure_at` is the last counted refusal: one within the spacing is the same spell.
  const spaced = sql<boolean>`coalesce(${entraConsents.lastAuthFailureAt} <= now() - ${`${spacingMs} milliseconds`}::interval, true)`;
  const counts = sql<boolean>`(${pastGrace} and ${spaced})`;
  return db.transaction(async (tx) => {
    const [counted] = await tx
      .update(entraConsents)
      .set({
        // Only refusals past the grace, and apart from the last counted one, count towards the revocation.
        authFailures: sql`case when ${counts} then ${entraConsents.authFailures} + 1 else ${entraConsents.authFailures} end`,
        lastAuthFailureAt: sql`case when ${counts} then now() else ${entraConsents.lastAuthFailureAt} end`,
        updatedAt: sql`now()`,
      })
      .where(and(eq(entraConsents.accountId, accountId), eq(entraConsents.connectorId, connectorId), namesTenant(tenant), eq(entraConsents.status, 'granted')))
      .returning({
        failures: entraConsents.authFailures,
        grantedAt: entraConsents.grantedAt,
        pastGrace,
        // RETURNING sees the new row: a counted refusal stamped it with this transaction's now().
        counted: sql<boolean>`coalesce(${entraConsents.lastAuthFailureAt} = now(), false)`,
      });
    if (!counted) {
      await revokeFromWorker(tx, accountId, connectorId, tenant, description);
      return { revoked: true as const, failures: 0 };
    }
    if (counted.pastGrace && counted.counted && counted.failures >= Math.max(1, policy.failuresToRevoke)) {
      await revokeFromWorker(tx, accountId, connectorId, tenant, description);
      return { revoked: true as const, failures: counted.failures };
    }
    await tx.insert(auditEvents).values({
      accountId,
      actor: 'worker',
      action: 'connector.consent.refused_in_grace',
      details: { connectorId, tenantId: tenant, failures: counted.failures, reason: description },
    });
    const graceEndsAt = counted.grantedAt === null ? null : new Date(counted.grantedAt.getTime() + graceMs);
    return { revoked: false as const, failures: counted.failures, graceEndsAt };
  });
}

/** A run read the tenant: the account's granted consent has no refused runs in a row any more. */
export async function clearConsentRefusals(db: Db, accountId: string, connectorId: string, tenantId: string): Promise<void> {
  if (!isUuid(accountId) || !isUuid(connectorId)) return;
  await db
    .update(entraConsents)
    .set({ authFailures: 0, lastAuthFailureAt: null, updatedAt: sql`now()` })
    .where(
      and(
        eq(entraConsents.accountId, accountId),
        eq(entraConsents.connectorId, connectorId),
        namesTenant(tenantId.toLowerCase()),
        eq(entraConsents.status, 'granted'),
        sql`${entraConsents.authFailures} > 0`,
      ),
    );
}

/** Why {@link expireConsentRequests} ended a request. */
const expiredDetail = "the consent link expired before the tenant's administrator finished it: ask for a new consent link";

/**
 * Ends the consent requests that were never finished before their state expired (outcome
 * `expired`; a sealed code left in one is dropped), and turns the requesting account's
 * consent from `pending` to `denied` (`consent_request_expired`) when no other request of it is
 * still open. A request whose sign-in came back a moment ago is left to the worker verifying it.
 * Returns how many requests ended.
 */
export async function expireConsentRequests(db: Db): Promise<number> {
  return db.transaction(async (tx) => {
    const ended = await tx
      .update(entraConsentStates)
      .set({ outcome: 'expired', detail: expiredDetail, completedAt: sql`now()`, codeCiphertext: null, codeKeyId: null })
      .where(
        and(
          sql`${entraConsentStates.outcome} is null and ${entraConsentStates.expiresAt} < now()`,
          sql`(${entraConsentStates.signInUsedAt} is null or ${entraConsentStates.signInUsedAt} < now() - interval '10 minutes')`,
        ),
      )
      .returning({ accountId: entraConsentStates.accountId, connectorId: entraConsentStates.connectorId, tenantId: entraConsentStates.tenantId });
    const seen = new Set<string>();
    for (const request of ended) {
      const key = `${request.accountId}/${request.connectorId}/${request.tenantId}`;
      if (seen.has(key)) continue;
      seen.add(key);
      await tx
        .update(entraConsents)
        .set({ status: 'denied', error: 'consent_request_expired', errorDescription: expiredDetail, updatedAt: sql`now()` })
        .where(
          and(
            eq(entraConsents.accountId, request.accountId),
            eq(entraConsents.connectorId, request.connectorId),
            eq(entraConsents.tenantId, request.tenantId),
            eq(entraConsents.status, 'pending'),
            // A consent waiting for a platform administrator's confirmation is not the request's to end.
            sql`${entraConsents.error} is null`,
            sql`not exists (select 1 from entra_consent_states o where o.account_id = ${request.accountId}
              and o.connector_id = ${request.connectorId} and o.tenant_id = ${request.tenantId} and o.outcome is null)`,
          ),
        );
    }
    return ended.length;
  });
}

/** A consent error redirect's `error` and `error_description`, sanitised for showing. */
export interface ConsentErrorAnswer {
  readonly error: string;
  readonly errorDescription: string | null;
}

/**
 * Reads the error of a consent redirect without a usable state (Microsoft sends some error
 * redirects without `state`): the OAuth error code as Microsoft spells them, anything else
 * replaced, and the description made safe to show. Undefined when the redirect carries no error.
 * Nothing is recorded: an unauthenticated redirect without a state names no request.
 */
export function consentErrorAnswer(params: URLSearchParams): ConsentErrorAnswer | undefined {
  if (!params.has('error')) return undefined;
  const description = params.get('error_description');
  return { error: errorCode(params.get('error')), errorDescription: description === null || description.trim() === '' ? null : displayText(description, 500) };
}

/** Input of {@link revokeConsent}. */
export interface ConsentRevocation {
  readonly accountId: string;
  readonly connectorId: string;
  readonly tenantId: string;
  readonly actor: string;
}

/**
 * An account gives up its consent of a tenant: its integrations there stop syncing
 * (`needs_consent`) until it is granted again. Nothing changes in the tenant itself, nor for any
 * other account. Returns whether the account had a consent to revoke.
 */
export async function revokeConsent(db: Db, input: ConsentRevocation): Promise<boolean> {
  if (!isUuid(input.accountId) || !isUuid(input.connectorId)) return false;
  const tenant = input.tenantId.toLowerCase();
  const revoked = await db.transaction(async (tx) => {
    const updated = await tx
      .update(entraConsents)
      .set({ status: 'revoked', error: 'revoked_by_account', errorDescription: null, revokedAt: sql`now()`, updatedAt: sql`now()` })
      .where(and(eq(entraConsents.accountId, input.accountId), eq(entraConsents.connectorId, input.connectorId), namesTenant(tenant)))
      .returning({ tenantGuid: entraConsents.tenantGuid });
    if (updated.length === 0) return false;
    await tx
      .update(integrations)
      .set({ status: 'needs_consent', updatedAt: sql`now()` })
      .where(integrationsOn(input.accountId, input.connectorId, tenant, updated[0]?.tenantGuid ?? null));
    await tx.insert(auditEvents).values({ accountId: input.accountId, actor: input.actor, action: 'connector.consent.revoked_by_account', details: { connectorId: input.connectorId, tenantId: tenant } });
    return true;
  });
  if (revoked) await recordConsentWebhookEvents(db, { accountId: input.accountId, connectorId: input.connectorId, tenantId: tenant, type: 'consent.revoked', detail: 'revoked by the account', actionNeeded: false });
  return revoked;
}

/**
 * Sets an Entra integration's status to `needs_consent` when its own account holds no granted
 * consent of its tenant to its connector (a failed run writes `failed` first; this keeps the
 * cause visible). Returns whether it did.
 */
export async function reflectConsentStatus(db: Db, integrationId: string): Promise<boolean> {
  if (!isUuid(integrationId)) return false;
  return db.$client.begin(async (tx) => {
    const rows = await tx<{ id: string; account_id: string; connector_id: string; tenant_id: string; previous: string }[]>`
      with before as (select id, status from integrations where id = ${integrationId})
      update integrations i set status = 'needs_consent', updated_at = now()
      from before
      where i.id = before.id and i.kind = 'entra_id' and i.settings ? 'connectorId'
        and not exists (
          select 1 from entra_consents c
          where c.account_id = i.account_id
            and c.connector_id::text = i.settings->>'connectorId'
            and (c.tenant_id = lower(i.settings->>'tenantId') or c.tenant_guid = lower(i.settings->>'tenantId'))
            and c.status = 'granted')
      returning i.id, i.account_id, i.settings->>'connectorId' as connector_id, lower(i.settings->>'tenantId') as tenant_id, before.status as previous`;
    const row = rows[0];
    if (row === undefined) return false;
    // Once per change of state, not at every run of an integration still waiting for consent.
    if (row.previous !== 'needs_consent') {
      await recordConsentWebhookEvents(tx, { accountId: row.account_id, connectorId: row.connector_id, tenantId: row.tenant_id, type: 'consent.needed', detail: null, actionNeeded: true, integrationId: row.id });
    }
    return true;
  });
}
