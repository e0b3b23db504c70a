import { randomBytes } from 'node:crypto';
import { and, asc, desc, eq, isNotNull, ne, or, sql } from 'drizzle-orm';
import type { Db } from './client.ts';
import { InvalidInputError, InvalidStateError, NotFoundError } from './errors.ts';
import { isUuid } from './ids.ts';
import { auditEvents, integrations } from './schema.ts';
import { type consentRequestOutcomes, entraConsents, entraConsentStates } from './schema-entra.ts';
import { decryptSecret, encryptSecret, type KeyRing } from './secrets.ts';
import { requireConnector } from './connectors.ts';
import { displayText } from './display.ts';

// Admin consent of customers' tenants to connectors. A consent belongs to the account that asked
// for it: the same tenant consented through two accounts is two rows, granted, refused and
// revoked independently. The redirect back from Microsoft's admin-consent page is unauthenticated
// (anyone can type its query string), so it never grants anything by itself: an error answer
// only ends the pending request it names, and a success answer only asks a worker to obtain a
// token for the tenant and read its `roles` claim; what the token says is what is recorded.

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
}

/** An admin-consent URL and the state it carries. */
export interface ConsentRequest {
  readonly url: string;
  readonly state: string;
  readonly expiresAt: Date;
  readonly tenantId: string;
}

/**
 * Makes the admin-consent URL for a tenant:
 * `{authority}/{tenant}/adminconsent?client_id=…&redirect_uri=…&state=…`. The state is an
 * authenticated encryption (under the secret key ring) of a random nonce, the account, the
 * connector, the tenant and an expiry, so it cannot be forged or altered; the nonce is stored and
 * can be used once. The account's consent is recorded as pending unless it already has one.
 */
export async function createConsentRequest(db: Db, ring: KeyRing, input: ConsentRequestInput): Promise<ConsentRequest> {
  if (!isUuid(input.accountId)) throw new NotFoundError(`account ${input.accountId} not found`);
  const connector = await requireConnector(db, input.connectorId);
  const tenantId = normaliseTenant(input.tenantId);
  const nonce = randomBytes(24).toString('base64url');
  const expiresAt = new Date(Date.now() + (input.ttlMs ?? 3600_000));
  const payload = JSON.stringify({ n: nonce, a: input.accountId, c: connector.id, t: tenantId, e: expiresAt.getTime() });
  const sealed = encryptSecret(ring, payload, consentStateAad);
  const state = `${sealed.keyId}.${Buffer.from(sealed.ciphertext, 'base64').toString('base64url')}`;
  await db.transaction(async (tx) => {
    await tx.insert(entraConsentStates).values({ nonce, accountId: input.accountId, connectorId: connector.id, tenantId, expiresAt });
    await tx.insert(entraConsents).values({ accountId: input.accountId, connectorId: connector.id, tenantId, status: 'pending' }).onConflictDoNothing();
  });
  const url = new URL(`${connector.authorityHost}/${encodeURIComponent(tenantId)}/adminconsent`);
  url.searchParams.set('client_id', connector.clientId);
  url.searchParams.set('redirect_uri', connector.redirectUri);
  url.searchParams.set('state', state);
  return { url: url.href, state, expiresAt, tenantId };
}

/** The request a redirect's state names: who asked, for which connector and tenant. */
export interface ConsentRequestRef {
  readonly nonce: string;
  readonly accountId: string;
  readonly connectorId: string;
  readonly tenantId: string;
}

/** What a consent redirect did: ended its request with the refusal, or asked for a verification. */
export type ConsentRedirect =
  | {
      readonly kind: 'refused';
      readonly request: ConsentRequestRef;
      readonly error: string;
      readonly errorDescription: string | null;
      /** The account already held a grant, which the refusal left as it was. */
      readonly grantKept: boolean;
    }
  | { readonly kind: 'verify'; readonly request: ConsentRequestRef };

function openState(ring: KeyRing, state: string): { n: string; a: string; c: string; t: string; e: number } {
  const forged = new InvalidInputError('the consent state is not one this installation issued');
  const dot = state.indexOf('.');
  let payload: { n?: unknown; a?: unknown; c?: unknown; t?: unknown; e?: unknown };
  try {
    if (dot <= 0 || state.length > 2048) throw forged;
    const ciphertext = Buffer.from(state.slice(dot + 1), 'base64url').toString('base64');
    payload = JSON.parse(decryptSecret(ring, { keyId: state.slice(0, dot), ciphertext }, consentStateAad)) as typeof payload;
  } catch {
    throw forged;
  }
  const { n, a, c, t, e } = payload;
  if (typeof n !== 'string' || typeof a !== 'string' || typeof c !== 'string' || typeof t !== 'string' || typeof e !== 'number') throw forged;
  return { n, a, c, t, e };
}

/**
 * Handles the redirect back from the admin-consent page: checks the state (authentic, unexpired,
 * unused — it is used up here, whatever the answer) and then
 * - for an error answer (`error=…&error_description=…`), ends that request as `denied` and marks
 *   the account's consent `denied` unless it is granted: a refusal never takes a grant away;
 * - for `admin_consent=True`, records nothing yet and returns `verify`: the caller has a worker
 *   obtain a token for the tenant ({@link recordConsentVerification} records what it carries).
 *
 * The redirect's own `tenant` parameter is ignored: Microsoft's documentation warns that anyone
 * can send it. Throws {@link InvalidInputError} for a state that is forged, expired or used.
 */
export async function acceptConsentRedirect(db: Db, ring: KeyRing, params: URLSearchParams): Promise<ConsentRedirect> {
  const state = openState(ring, params.get('state') ?? '');
  if (state.e < Date.now()) throw new InvalidInputError('the consent state has expired: create a new consent URL');
  const request: ConsentRequestRef = { nonce: state.n, accountId: state.a, connectorId: state.c, tenantId: state.t };
  // Microsoft's error answers carry admin_consent=True too: the error decides.
  const refused = params.has('error') || params.get('admin_consent')?.toLowerCase() !== 'true';
  const error = errorCode(params.get('error'));
  const rawDescription = params.get('error_description');
  const errorDescription = rawDescription === null ? null : displayText(rawDescription);
  return db.transaction(async (tx) => {
    const used = await tx
      .update(entraConsentStates)
      .set({ usedAt: sql`now()` })
      .where(
        and(
          eq(entraConsentStates.nonce, request.nonce),
          eq(entraConsentStates.accountId, request.accountId),
          eq(entraConsentStates.connectorId, request.connectorId),
          eq(entraConsentStates.tenantId, request.tenantId),
          sql`${entraConsentStates.usedAt} is null`,
        ),
      )
      .returning({ nonce: entraConsentStates.nonce });
    if (used.length === 0) throw new InvalidInputError('the consent state was already used (or never issued): create a new consent URL');
    if (!refused) return { kind: 'verify' as const, request };
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
      details: { connectorId: request.connectorId, tenantId: request.tenantId, error, errorDescription, grantKept: changed.length === 0 },
    });
    return { kind: 'refused' as const, request, error, errorDescription, grantKept: changed.length === 0 };
  });
}

/** The consent request with this nonce, as stored. */
export async function getConsentRequest(db: Db, nonce: string): Promise<ConsentRequestRecord | undefined> {
  const [row] = await db.select().from(entraConsentStates).where(eq(entraConsentStates.nonce, nonce));
  return row;
}

/** What a worker found when it asked for a token for the tenant of a consent request. */
export type ConsentVerification =
  /** A token was issued: its `tid` and `roles` claims. */
  | { readonly ok: true; readonly tenantGuid: string; readonly roles: readonly string[] }
  /** No token (the tenant has not consented, or the authority could not be reached). */
  | { readonly ok: false; readonly outcome: 'not_granted' | 'failed'; readonly detail: string };

/** How a verified consent request ended. */
export interface ConsentOutcome {
  readonly accountId: string;
  readonly connectorId: string;
  readonly tenantId: string;
  readonly outcome: ConsentRequestOutcome;
  readonly tenantGuid: string | null;
  readonly detail: string | null;
}

/**
 * Records what the token obtained for a consent request's tenant says, once: the first result
 * wins, a later one (a worker finishing after the caller gave up) returns the recorded outcome.
 * - Every required role in the token → the account's consent is `granted` (with the roles and
 *   the token's tenant GUID) and its integrations waiting for consent may sync again; unless
 *   another account holds, or once verified, a consent of this tenant and connector: the tenant's consent
 *   then predates the request and the token cannot tell who answered the redirect, so the
 *   request ends as `confirmation_required` until a platform administrator confirms it
 *   ({@link confirmConsent}).
 * - Missing roles or no token → `not_granted` (or `failed` when the authority did not answer);
 *   the account's consent becomes `denied` unless it is granted.
 */
export async function recordConsentVerification(db: Db, nonce: string, result: ConsentVerification): Promise<ConsentOutcome> {
  return db.transaction(async (tx) => {
    const [request] = await tx.select().from(entraConsentStates).where(eq(entraConsentStates.nonce, nonce)).for('update');
    if (!request) throw new NotFoundError('consent request not found');
    if (request.usedAt === null) throw new InvalidStateError('the consent request has not been answered yet');
    const { accountId, connectorId, tenantId } = request;
    const base = { accountId, connectorId, tenantId };
    if (request.outcome !== null) return (await outcomeOf(tx, request)) as ConsentOutcome;
    const finish = async (outcome: ConsentRequestOutcome, detail: string | null, tenantGuid: string | null): Promise<ConsentOutcome> => {
      const shown = detail === null ? null : displayText(detail);
      await tx.update(entraConsentStates).set({ outcome, detail: shown, completedAt: sql`now()` }).where(eq(entraConsentStates.nonce, nonce));
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
      // Any other account whose request once got a token for this tenant (granted, revoked since,
      // or denied for missing roles): the tenant's consent then may predate this request.
      .where(
        and(
          eq(entraConsents.connectorId, connectorId),
          ne(entraConsents.accountId, accountId),
          or(eq(entraConsents.status, 'granted'), isNotNull(entraConsents.tenantGuid)),
          namesTenant(tenantId, tenantGuid),
        ),
      )
      .limit(1);
    if (other) {
      const detail = 'this tenant had already consented to the connector before this request, so the answer cannot be tied to its administrator: a platform administrator must confirm the consent (dirsync connectors consent-confirm)';
      await tx
        .update(entraConsents)
        .set({ status: 'pending', error: 'confirmation_required', errorDescription: detail, tenantGuid, roles, updatedAt: sql`now()` })
        .where(and(own, ne(entraConsents.status, 'granted')));
      return finish('confirmation_required', detail, tenantGuid);
    }
    await grant(tx, accountId, connectorId, tenantId, tenantGuid, roles);
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
    outcome: request.outcome,
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
  const values = { status: 'granted' as const, tenantGuid, roles: roles === null ? null : [...roles], error: null, errorDescription: null, grantedAt: sql`now()`, revokedAt: null };
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
  const tenant = tenantId.toLowerCase();
  const description = displayText(reason);
  return db.transaction(async (tx) => {
    const updated = await tx
      .update(entraConsents)
      .set({ status: 'revoked', error: 'consent_revoked', errorDescription: description, revokedAt: sql`now()`, updatedAt: sql`now()` })
      .where(and(eq(entraConsents.accountId, accountId), eq(entraConsents.connectorId, connectorId), namesTenant(tenant)))
      .returning({ tenantGuid: entraConsents.tenantGuid });
    const marked = await tx
      .update(integrations)
      .set({ status: 'needs_consent', updatedAt: sql`now()` })
      .where(integrationsOn(accountId, connectorId, tenant, updated[0]?.tenantGuid ?? null))
      .returning({ id: integrations.id });
    await tx.insert(auditEvents).values({ accountId, actor: 'worker', action: 'connector.consent.revoked', details: { connectorId, tenantId: tenant, reason: description } });
    return marked.length;
  });
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
  return db.transaction(async (tx) => {
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
}

/**
 * Sets an Entra integration's status to `needs_consent` when its own account holds no granted
 * consent of its tenant to its connector (a failed run writes `failed` first; this keeps the
 * cause visible). Returns whether it did.
 */
export async function reflectConsentStatus(db: Db, integrationId: string): Promise<boolean> {
  if (!isUuid(integrationId)) return false;
  const rows = await db.$client`
    update integrations i set status = 'needs_consent', updated_at = now()
    where i.id = ${integrationId} and i.kind = 'entra_id' and i.settings ? 'connectorId'
      and not exists (
        select 1 from entra_consents c
        where c.account_id = i.account_id
          and c.connector_id::text = i.settings->>'connectorId'
          and (c.tenant_id = lower(i.settings->>'tenantId') or c.tenant_guid = lower(i.settings->>'tenantId'))
          and c.status = 'granted')
    returning i.id`;
  return rows.length === 1;
}
