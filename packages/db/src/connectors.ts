import { randomUUID } from 'node:crypto';
import { and, asc, desc, eq, getTableColumns, inArray, sql } from 'drizzle-orm';
import type { Db } from './client.ts';
import { ConflictError, InvalidInputError, InvalidStateError, NotFoundError, pgCodes, pgErrorOf, SecretDecryptError } from './errors.ts';
import { connectorPrivateKeyAad } from './encrypted-columns.ts';
import { recordConnectorWebhookEvent } from './webhooks.ts';
import { displayText } from './display.ts';
import { isUuid } from './ids.ts';
import type { Integration } from './integrations.ts';
import type { ConsentStatus } from '@dirsync/contracts';
import { auditEvents, integrations } from './schema.ts';
import {
  type connectorClouds,
  connectorCredentials,
  connectors,
  entraConsents,
  platformSettings,
} from './schema-entra.ts';
import { decryptSecret, encryptSecret, type KeyRing } from './secrets.ts';

/** A connector (an Entra app registration of the platform), as stored. */
export type Connector = typeof connectors.$inferSelect;

/** The Microsoft cloud of a connector, or `custom` hosts. */
export type ConnectorCloud = (typeof connectorClouds)[number];

/** A connector certificate as every reader sees it: never its private key. */
export type ConnectorCredential = Omit<typeof connectorCredentials.$inferSelect, 'privateKeyCiphertext' | 'privateKeyKeyId'>;

/** A certificate credential with its decrypted private key (PEM), for the one caller that signs with it. */
export interface ConnectorCredentialWithKey extends ConnectorCredential {
  readonly privateKeyPem: string;
}

/** A generated certificate to store (the private key is encrypted on the way in). */
export interface NewCertificateCredential {
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly thumbprint: string;
  readonly thumbprintSha256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Input of {@link createConnector}. */
export interface NewConnector {
  readonly name: string;
  readonly description: string;
  readonly clientId: string;
  readonly applicationObjectId: string;
  readonly homeTenantId: string;
  readonly redirectUri: string;
  /**
   * The Microsoft cloud the hosts belong to; `custom` for hand-written ones. Default: `global`
   * when neither host is given (the defaults are the global cloud's), else `custom`.
   */
  readonly cloud?: ConnectorCloud;
  readonly authorityHost?: string;
  readonly graphBaseUrl?: string;
  readonly tlsCaPem?: string | null;
  readonly rotationCron?: string;
  readonly certificateValidityDays?: number;
  /**
   * The key id the app registration gave the first certificate (Certificates & secrets, or the
   * manifest's `keyCredentials`): without it the rotation cannot remove that certificate later.
   */
  readonly graphKeyId?: string | null;
}

/** Fields {@link updateConnector} may change. */
export type ConnectorPatch = Partial<Pick<NewConnector, 'description' | 'redirectUri' | 'rotationCron' | 'certificateValidityDays' | 'tlsCaPem'>>;

const { privateKeyCiphertext: _ciphertext, privateKeyKeyId: _keyId, ...credentialColumns } = getTableColumns(connectorCredentials);

// Binds a private key ciphertext to its credential row (shared with key rotation).
const keyAad = connectorPrivateKeyAad;

function requireText(value: string, what: string): string {
  const trimmed = value.trim();
  if (trimmed === '') throw new InvalidInputError(`${what} must not be empty`);
  return trimmed;
}

function translateConnectorError(error: unknown, name: string | undefined): never {
  const pg = pgErrorOf(error);
  if (pg?.code === pgCodes.uniqueViolation) {
    if (pg.constraint === 'connectors_client_id_uq') throw new ConflictError('a connector for this application (client id) already exists');
    throw new ConflictError(`a connector named "${name ?? ''}" already exists`);
  }
  if (pg?.code === pgCodes.checkViolation) {
    throw new InvalidInputError('connector refused: the description is required and the certificate validity must be 2–730 days');
  }
  throw error;
}

function credentialValues(ring: KeyRing, connectorId: string, id: string, certificate: NewCertificateCredential) {
  const sealed = encryptSecret(ring, certificate.privateKeyPem, keyAad(id));
  return {
    id,
    connectorId,
    thumbprint: certificate.thumbprint.toUpperCase(),
    thumbprintSha256: certificate.thumbprintSha256.toUpperCase(),
    certificatePem: certificate.certificatePem,
    privateKeyCiphertext: sealed.ciphertext,
    privateKeyKeyId: sealed.keyId,
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
  };
}

// ---- connectors ----

/**
 * Creates a connector with its first certificate as the current credential, in one transaction.
 * Name and description are required. Throws {@link ConflictError} for a taken name or client id.
 */
export async function createConnector(db: Db, ring: KeyRing, input: NewConnector, certificate: NewCertificateCredential): Promise<Connector> {
  const name = requireText(input.name, 'connector name');
  const description = requireText(input.description, 'connector description');
  try {
    return await db.transaction(async (tx) => {
      const [row] = await tx
        .insert(connectors)
        .values({
          name,
          description,
          clientId: requireText(input.clientId, 'client id').toLowerCase(),
          applicationObjectId: requireText(input.applicationObjectId, 'application object id').toLowerCase(),
          homeTenantId: requireText(input.homeTenantId, 'home tenant id').toLowerCase(),
          redirectUri: requireText(input.redirectUri, 'redirect URI'),
          cloud: input.cloud ?? (input.authorityHost === undefined && input.graphBaseUrl === undefined ? 'global' : 'custom'),
          ...(input.authorityHost === undefined ? {} : { authorityHost: input.authorityHost }),
          ...(input.graphBaseUrl === undefined ? {} : { graphBaseUrl: input.graphBaseUrl }),
          ...(input.tlsCaPem === undefined ? {} : { tlsCaPem: input.tlsCaPem }),
          ...(input.rotationCron === undefined ? {} : { rotationCron: input.rotationCron }),
          ...(input.certificateValidityDays === undefined ? {} : { certificateValidityDays: input.certificateValidityDays }),
        })
        .returning();
      if (!row) throw new Error('insert returned no row');
      const id = randomUUID();
      await tx.insert(connectorCredentials).values({
        ...credentialValues(ring, row.id, id, certificate),
        status: 'current',
        activatedAt: sql`now()`,
        ...(input.graphKeyId ? { graphKeyId: input.graphKeyId.trim().toLowerCase() } : {}),
      });
      return row;
    });
  } catch (error) {
    translateConnectorError(error, name);
  }
}

/** The connector with this id, or else this name. */
export async function getConnector(db: Db, idOrName: string): Promise<Connector | undefined> {
  if (isUuid(idOrName)) {
    const [byId] = await db.select().from(connectors).where(eq(connectors.id, idOrName));
    if (byId) return byId;
  }
  const [byName] = await db.select().from(connectors).where(eq(connectors.name, idOrName));
  return byName;
}

/** Like {@link getConnector}; throws {@link NotFoundError} when there is none. */
export async function requireConnector(db: Db, idOrName: string): Promise<Connector> {
  const found = await getConnector(db, idOrName);
  if (!found) throw new NotFoundError(`connector ${idOrName} not found`);
  return found;
}

/** Every connector, by name. */
export async function listConnectors(db: Db): Promise<Connector[]> {
  return db.select().from(connectors).orderBy(asc(connectors.name));
}

/** Changes a connector's description, redirect URI, rotation schedule or certificate validity. */
export async function updateConnector(db: Db, id: string, patch: ConnectorPatch): Promise<Connector> {
  if (!isUuid(id)) throw new NotFoundError(`connector ${id} not found`);
  const values: Record<string, unknown> = {};
  if (patch.description !== undefined) values['description'] = requireText(patch.description, 'connector description');
  if (patch.redirectUri !== undefined) values['redirectUri'] = requireText(patch.redirectUri, 'redirect URI');
  if (patch.rotationCron !== undefined) values['rotationCron'] = patch.rotationCron;
  if (patch.certificateValidityDays !== undefined) values['certificateValidityDays'] = patch.certificateValidityDays;
  if (patch.tlsCaPem !== undefined) values['tlsCaPem'] = patch.tlsCaPem;
  let row: Connector | undefined;
  try {
    [row] = await db.update(connectors).set({ ...values, updatedAt: sql`now()` }).where(eq(connectors.id, id)).returning();
  } catch (error) {
    translateConnectorError(error, undefined);
  }
  if (!row) throw new NotFoundError(`connector ${id} not found`);
  return row;
}

// ---- credentials ----

/** The connector's certificates, newest first, without private keys: its credential history. */
export async function listConnectorCredentials(db: Db, connectorId: string): Promise<ConnectorCredential[]> {
  if (!isUuid(connectorId)) return [];
  return db
    .select(credentialColumns)
    .from(connectorCredentials)
    .where(eq(connectorCredentials.connectorId, connectorId))
    .orderBy(desc(connectorCredentials.createdAt), desc(connectorCredentials.id));
}

async function openCredential(db: Db, ring: KeyRing, where: ReturnType<typeof and>): Promise<ConnectorCredentialWithKey | undefined> {
  const [row] = await db.select().from(connectorCredentials).where(where).orderBy(desc(connectorCredentials.createdAt)).limit(1);
  if (!row) return undefined;
  const { privateKeyCiphertext, privateKeyKeyId, ...rest } = row;
  let privateKeyPem: string;
  try {
    privateKeyPem = decryptSecret(ring, { ciphertext: privateKeyCiphertext, keyId: privateKeyKeyId }, keyAad(row.id));
  } catch (error) {
    if (error instanceof SecretDecryptError) throw new SecretDecryptError(error.reason, `connector credential ${row.id}: ${error.message}`);
    throw error;
  }
  return { ...rest, privateKeyPem };
}

/**
 * Decrypts the connector's current certificate credential and hands it to `fn`, the only place
 * the private key goes. Throws {@link NotFoundError} when the connector has no current credential.
 */
export async function withCurrentCredential<T>(db: Db, ring: KeyRing, connectorId: string, fn: (credential: ConnectorCredentialWithKey) => Promise<T>): Promise<T> {
  if (!isUuid(connectorId)) throw new NotFoundError(`connector ${connectorId} not found`);
  const credential = await openCredential(db, ring, and(eq(connectorCredentials.connectorId, connectorId), eq(connectorCredentials.status, 'current')));
  if (!credential) throw new NotFoundError(`connector ${connectorId} has no current certificate`);
  return fn(credential);
}

/**
 * Decrypts the connector's current certificate credential and, when there is one, its previous
 * credential (the one a rotation replaced, still registered on the app until the next rotation
 * removes it) and hands both to `fn`: right after a rotation a tenant may still refuse the new key
 * for a while, and the previous one keeps working there. Throws {@link NotFoundError} when the
 * connector has no current credential.
 */
export async function withCurrentAndPreviousCredentials<T>(
  db: Db,
  ring: KeyRing,
  connectorId: string,
  fn: (current: ConnectorCredentialWithKey, previous: ConnectorCredentialWithKey | undefined) => Promise<T>,
): Promise<T> {
  if (!isUuid(connectorId)) throw new NotFoundError(`connector ${connectorId} not found`);
  const current = await openCredential(db, ring, and(eq(connectorCredentials.connectorId, connectorId), eq(connectorCredentials.status, 'current')));
  if (!current) throw new NotFoundError(`connector ${connectorId} has no current certificate`);
  const previous = await openCredential(
    db,
    ring,
    and(eq(connectorCredentials.connectorId, connectorId), eq(connectorCredentials.status, 'previous'), sql`${connectorCredentials.notAfter} > now()`),
  );
  return fn(current, previous);
}

/**
 * Gives up a credential whose key id on the app registration is unknown (a pending certificate
 * whose `addKey` answer was lost, or a retired one registered by hand without its key id): the
 * rotation cannot remove it without reading the app registration, which it has no permission
 * for, so it stays there until it expires. Its history row is kept.
 */
export async function markCredentialAbandoned(db: Db, credentialId: string): Promise<void> {
  await db
    .update(connectorCredentials)
    .set({ status: 'abandoned', retiredAt: sql`coalesce(${connectorCredentials.retiredAt}, now())` })
    .where(and(eq(connectorCredentials.id, credentialId), inArray(connectorCredentials.status, ['pending', 'retired'])));
}

/** The connector's pending credential (a rotation that did not finish) with its private key, if any. */
export async function openPendingCredential(db: Db, ring: KeyRing, connectorId: string): Promise<ConnectorCredentialWithKey | undefined> {
  if (!isUuid(connectorId)) return undefined;
  return openCredential(db, ring, and(eq(connectorCredentials.connectorId, connectorId), eq(connectorCredentials.status, 'pending')));
}

/** Stores a new certificate as the connector's pending credential (private key encrypted). */
export async function addPendingCredential(
  db: Db,
  ring: KeyRing,
  connectorId: string,
  certificate: NewCertificateCredential,
  rotationSlot: Date | null,
): Promise<ConnectorCredential> {
  const id = randomUUID();
  const [row] = await db
    .insert(connectorCredentials)
    .values({ ...credentialValues(ring, connectorId, id, certificate), status: 'pending', rotationSlot })
    .returning(credentialColumns);
  if (!row) throw new Error('insert returned no row');
  return row;
}

/** Records the Graph key id of a credential once the app registration lists it. */
export async function setCredentialGraphKeyId(db: Db, credentialId: string, graphKeyId: string): Promise<void> {
  await db.update(connectorCredentials).set({ graphKeyId }).where(eq(connectorCredentials.id, credentialId));
}

/**
 * Makes the pending credential current, in one transaction: the current one becomes previous
 * (kept on the app as the overlap), the previous one becomes retired (to be removed from the
 * app). Returns the credentials now retired and not yet removed.
 */
export async function activateCredential(db: Db, connectorId: string, credentialId: string): Promise<ConnectorCredential[]> {
  return db.transaction(async (tx) => {
    const [pending] = await tx
      .select({ id: connectorCredentials.id })
      .from(connectorCredentials)
      .where(and(eq(connectorCredentials.id, credentialId), eq(connectorCredentials.connectorId, connectorId), eq(connectorCredentials.status, 'pending')))
      .for('update');
    if (!pending) throw new InvalidStateError(`credential ${credentialId} is not pending on connector ${connectorId}`);
    await tx
      .update(connectorCredentials)
      .set({ status: 'retired' })
      .where(and(eq(connectorCredentials.connectorId, connectorId), eq(connectorCredentials.status, 'previous')));
    await tx
      .update(connectorCredentials)
      .set({ status: 'previous', retiredAt: sql`now()` })
      .where(and(eq(connectorCredentials.connectorId, connectorId), eq(connectorCredentials.status, 'current')));
    await tx.update(connectorCredentials).set({ status: 'current', activatedAt: sql`now()` }).where(eq(connectorCredentials.id, credentialId));
    return tx
      .select(credentialColumns)
      .from(connectorCredentials)
      .where(and(eq(connectorCredentials.connectorId, connectorId), eq(connectorCredentials.status, 'retired')))
      .orderBy(asc(connectorCredentials.createdAt));
  });
}

/** Credentials retired from use but still to be removed from the app registration. */
export async function listRetiredCredentials(db: Db, connectorId: string): Promise<ConnectorCredential[]> {
  if (!isUuid(connectorId)) return [];
  return db
    .select(credentialColumns)
    .from(connectorCredentials)
    .where(and(eq(connectorCredentials.connectorId, connectorId), eq(connectorCredentials.status, 'retired')))
    .orderBy(asc(connectorCredentials.createdAt));
}

/** Marks a credential as removed from the app registration (its key stays in the history). */
export async function markCredentialRemoved(db: Db, credentialId: string): Promise<void> {
  await db.update(connectorCredentials).set({ status: 'removed', removedAt: sql`now()` }).where(eq(connectorCredentials.id, credentialId));
}

// ---- rotation bookkeeping ----

/**
 * Takes the connector's rotation lease for `ms` (one rotation at a time across workers). Returns
 * false when another rotation holds it.
 */
export async function acquireRotationLease(db: Db, connectorId: string, ms: number): Promise<boolean> {
  const rows = await db.$client`
    update connectors set rotation_lease_until = now() + ${`${Math.max(1, Math.round(ms))} milliseconds`}::interval
    where id = ${connectorId} and (rotation_lease_until is null or rotation_lease_until < now())
    returning id`;
  return rows.length === 1;
}

/** Gives the rotation lease back. */
export async function releaseRotationLease(db: Db, connectorId: string): Promise<void> {
  await db.update(connectors).set({ rotationLeaseUntil: null }).where(eq(connectors.id, connectorId));
}

/** Records how a rotation ended; a success also records its slot (a second job for it does nothing). */
export async function recordRotationOutcome(
  db: Db,
  connectorId: string,
  outcome: { status: 'succeeded' | 'failed'; error?: string | null; slot?: Date | null },
): Promise<void> {
  await db
    .update(connectors)
    .set({
      lastRotationAt: sql`now()`,
      lastRotationStatus: outcome.status,
      lastRotationError: outcome.status === 'failed' ? (outcome.error ?? 'rotation failed') : null,
      rotationFailures: outcome.status === 'failed' ? sql`${connectors.rotationFailures} + 1` : 0,
      ...(outcome.status === 'succeeded' && outcome.slot ? { rotatedSlot: outcome.slot } : {}),
      updatedAt: sql`now()`,
    })
    .where(eq(connectors.id, connectorId));
  if (outcome.status === 'failed') {
    // Every account whose integrations use the connector hears of it: their syncs stop when the
    // current certificate expires.
    const error = displayText(outcome.error ?? 'rotation failed');
    await recordConnectorWebhookEvent(db, { connectorId, type: 'rotation.failed', data: { connectorId, error } });
    await recordConnectorWebhookEvent(db, { connectorId, type: 'action.needed', data: { action: 'connector_rotation_failed', connectorId, detail: `the certificate rotation of the connector failed (${error}); the platform team has to look at it before the current certificate expires` } });
  }
}

/** What the scheduler needs to decide whether a connector's rotation is due. */
export interface RotationSchedule {
  readonly id: string;
  readonly rotationCron: string;
  readonly rotationScheduledFor: Date | null;
}

/** Every connector's rotation schedule. */
export async function listRotationSchedules(db: Db): Promise<RotationSchedule[]> {
  return db
    .select({ id: connectors.id, rotationCron: connectors.rotationCron, rotationScheduledFor: connectors.rotationScheduledFor })
    .from(connectors)
    .orderBy(asc(connectors.id));
}

/**
 * Claims a rotation slot: succeeds for exactly one of any number of racing schedulers, and only
 * when the stored slot is older. Returns the slot it replaced (or null), or undefined when the
 * claim failed.
 */
export async function claimRotationSlot(db: Db, connectorId: string, slot: Date): Promise<{ previous: Date | null } | undefined> {
  const rows = await db.$client<{ previous: string | Date | null }[]>`
    with current_slot as (
      select id, rotation_scheduled_for as previous from connectors where id = ${connectorId} for update
    )
    update connectors c set rotation_scheduled_for = ${slot.toISOString()}::timestamptz
    from current_slot s
    where c.id = s.id and (s.previous is null or s.previous < ${slot.toISOString()}::timestamptz)
    returning s.previous`;
  const row = rows[0];
  if (!row) return undefined;
  return { previous: row.previous === null ? null : new Date(row.previous) };
}

/** Undoes a claim whose job could not be enqueued (only while it still holds the claimed slot). */
export async function releaseRotationSlot(db: Db, connectorId: string, slot: Date, previous: Date | null): Promise<void> {
  await db.$client`
    update connectors set rotation_scheduled_for = ${previous === null ? null : previous.toISOString()}::timestamptz
    where id = ${connectorId} and rotation_scheduled_for = ${slot.toISOString()}::timestamptz`;
}

// ---- legacy integrations and their migration ----

const deadlineKey = 'entra.legacyMigrationDeadline';

/** The date after which legacy Entra integrations stop syncing; null when none is set. */
export async function getLegacyMigrationDeadline(db: Db): Promise<Date | null> {
  const [row] = await db.select().from(platformSettings).where(eq(platformSettings.key, deadlineKey));
  if (!row || typeof row.value !== 'string') return null;
  const at = Date.parse(row.value);
  return Number.isNaN(at) ? null : new Date(at);
}

/** Sets (or with null clears) the legacy migration deadline. */
export async function setLegacyMigrationDeadline(db: Db, deadline: Date | null): Promise<void> {
  if (deadline === null) {
    await db.delete(platformSettings).where(eq(platformSettings.key, deadlineKey));
    return;
  }
  if (Number.isNaN(deadline.getTime())) throw new InvalidInputError('the migration deadline is not a valid date');
  const value = deadline.toISOString();
  await db
    .insert(platformSettings)
    .values({ key: deadlineKey, value })
    .onConflictDoUpdate({ target: platformSettings.key, set: { value, updatedAt: sql`now()` } });
}

/** True for an Entra integration that still uses its own app registration and secret. */
export function isLegacyEntraIntegration(integration: Pick<Integration, 'kind' | 'settings'>): boolean {
  return integration.kind === 'entra_id' && typeof integration.settings['legacyApp'] === 'object' && integration.settings['legacyApp'] !== null;
}

/** A legacy Entra integration, as the actions-needed list shows it. */
export interface LegacyEntraIntegration {
  readonly id: string;
  readonly accountId: string;
  readonly name: string;
  readonly tenantId: string;
  readonly legacyClientId: string;
  readonly status: string;
}

/** Legacy Entra integrations (own app registration with a client secret), by name. */
export async function listLegacyEntraIntegrations(db: Db): Promise<LegacyEntraIntegration[]> {
  const rows = await db
    .select({ id: integrations.id, accountId: integrations.accountId, name: integrations.name, settings: integrations.settings, status: integrations.status })
    .from(integrations)
    .where(and(eq(integrations.kind, 'entra_id'), sql`${integrations.settings} ? 'legacyApp'`))
    .orderBy(asc(integrations.name));
  return rows.map((row) => ({
    id: row.id,
    accountId: row.accountId,
    name: row.name,
    tenantId: String(row.settings['tenantId'] ?? ''),
    legacyClientId: String((row.settings['legacyApp'] as { clientId?: unknown } | undefined)?.clientId ?? ''),
    status: row.status,
  }));
}

/** Input of {@link migrateLegacyIntegration}. */
export interface LegacyMigration {
  readonly integrationId: string;
  readonly connectorId: string;
  /** Required: a migrated integration must be described (the name is carried over). */
  readonly description: string;
  /** Who migrated it, for the audit log. */
  readonly actor: string;
}

/** What a migration did. */
export interface LegacyMigrationResult {
  readonly integrationId: string;
  readonly name: string;
  readonly connectorId: string;
  readonly tenantId: string;
  /** Client id of the old app registration, which the administrator should now delete. */
  readonly legacyClientId: string;
}

/**
 * Switches a legacy Entra integration to a connector: refused without a description, for a
 * non-legacy integration, or before the tenant granted consent to the connector. The name is
 * kept, the description set, the old client secret erased, and the cursor cleared so that the
 * first run afterwards is a full sync. Audited.
 */
export async function migrateLegacyIntegration(db: Db, input: LegacyMigration): Promise<LegacyMigrationResult> {
  const description = input.description.trim();
  if (description === '') throw new InvalidInputError('a description is required to migrate an integration to a connector');
  if (!isUuid(input.integrationId)) throw new NotFoundError(`integration ${input.integrationId} not found`);
  const connector = await requireConnector(db, input.connectorId);
  return db.transaction(async (tx) => {
    const [row] = await tx.select().from(integrations).where(eq(integrations.id, input.integrationId)).for('update');
    if (!row) throw new NotFoundError(`integration ${input.integrationId} not found`);
    if (!isLegacyEntraIntegration(row)) throw new InvalidStateError(`integration "${row.name}" is not a legacy Entra ID integration`);
    const settings = row.settings;
    const tenantId = String(settings['tenantId'] ?? '').toLowerCase();
    const legacyClientId = String((settings['legacyApp'] as { clientId?: unknown }).clientId ?? '');
    // The integration's own account must hold the grant: another account's consent of the same
    // tenant is not this account's to use.
    const [consent] = await tx
      .select()
      .from(entraConsents)
      .where(
        and(
          eq(entraConsents.accountId, row.accountId),
          eq(entraConsents.connectorId, connector.id),
          sql`(${entraConsents.tenantId} = ${tenantId} or ${entraConsents.tenantGuid} = ${tenantId})`,
          eq(entraConsents.status, 'granted'),
        ),
      );
    if (!consent) {
      throw new InvalidStateError(
        `this integration's account holds no granted consent of tenant ${tenantId} to connector "${connector.name}": send the tenant's administrator a consent URL of this account (dirsync connectors consent-url ${connector.name} --account <account> --tenant ${tenantId}) first`,
      );
    }
    const { legacyApp: _legacy, authorityHost: _a, graphBaseUrl: _g, caPem: _c, ...kept } = settings;
    const migrated = { ...kept, connectorId: connector.id, migratedFrom: { legacyClientId, at: new Date().toISOString() } };
    await tx
      .update(integrations)
      .set({ settings: migrated, description, cursor: null, secretCiphertext: null, secretKeyId: null, status: 'new', updatedAt: sql`now()` })
      .where(eq(integrations.id, row.id));
    await tx.insert(auditEvents).values({
      accountId: row.accountId,
      integrationId: row.id,
      actor: input.actor,
      action: 'integration.migrated_to_connector',
      details: { connectorId: connector.id, connector: connector.name, tenantId, legacyClientId },
    });
    return { integrationId: row.id, name: row.name, connectorId: connector.id, tenantId, legacyClientId };
  });
}

// ---- actions needed ----

/** Something an administrator has to do. */
export type ActionNeeded =
  | { readonly kind: 'migrate_legacy_integration'; readonly integrationId: string; readonly accountId: string; readonly name: string; readonly tenantId: string; readonly deadline: Date | null; readonly overdue: boolean }
  | { readonly kind: 'grant_consent'; readonly integrationId: string; readonly accountId: string; readonly name: string; readonly connectorId: string; readonly tenantId: string; readonly consentStatus: ConsentStatus | 'none'; readonly detail: string | null }
  | { readonly kind: 'rotation_failed'; readonly connectorId: string; readonly connector: string; readonly at: Date | null; readonly error: string }
  | { readonly kind: 'certificate_expiring'; readonly connectorId: string; readonly connector: string; readonly notAfter: Date }
  | { readonly kind: 'delete_old_app_registration'; readonly integrationId: string; readonly accountId: string; readonly name: string; readonly tenantId: string; readonly legacyClientId: string; readonly migratedAt: Date };

/** How long after a migration the reminder to delete the old app registration is shown. */
const reminderMs = 30 * 24 * 3600_000;
/** A current certificate expiring sooner than this needs attention (rotation should have replaced it). */
const expiryWarningMs = 7 * 24 * 3600_000;

/**
 * What administrators must do about Entra ID: migrate legacy integrations (with the deadline),
 * grant consent where it is missing or revoked, look at failed rotations and expiring
 * certificates, and delete old app registrations of migrated integrations.
 */
export async function listActionsNeeded(db: Db, now: Date = new Date()): Promise<ActionNeeded[]> {
  const actions: ActionNeeded[] = [];
  const deadline = await getLegacyMigrationDeadline(db);
  const entra = await db.select().from(integrations).where(eq(integrations.kind, 'entra_id')).orderBy(asc(integrations.name));
  const consents = await db.select().from(entraConsents);
  for (const row of entra) {
    const settings = row.settings;
    const tenantId = String(settings['tenantId'] ?? '').toLowerCase();
    if (isLegacyEntraIntegration(row)) {
      actions.push({
        kind: 'migrate_legacy_integration',
        integrationId: row.id,
        accountId: row.accountId,
        name: row.name,
        tenantId,
        deadline,
        overdue: deadline !== null && now.getTime() > deadline.getTime(),
      });
      continue;
    }
    const connectorId = typeof settings['connectorId'] === 'string' ? settings['connectorId'] : undefined;
    if (connectorId === undefined) continue;
    // Only the integration's own account's consent counts (a grant first, under either tenant name).
    const own = consents.filter((c) => c.accountId === row.accountId && c.connectorId === connectorId && (c.tenantId === tenantId || c.tenantGuid === tenantId));
    const consent = own.find((c) => c.status === 'granted') ?? own[0];
    if (consent?.status !== 'granted') {
      actions.push({
        kind: 'grant_consent',
        integrationId: row.id,
        accountId: row.accountId,
        name: row.name,
        connectorId,
        tenantId,
        consentStatus: consent?.status ?? 'none',
        // Text that came from outside (a redirect's error description): shown sanitised and capped.
        detail: consent === undefined ? null : displayText(consent.errorDescription ?? consent.error ?? '') || null,
      });
    }
    const from = settings['migratedFrom'] as { legacyClientId?: unknown; at?: unknown } | undefined;
    if (from && typeof from.legacyClientId === 'string' && typeof from.at === 'string') {
      const migratedAt = new Date(from.at);
      if (now.getTime() - migratedAt.getTime() < reminderMs) {
        actions.push({ kind: 'delete_old_app_registration', integrationId: row.id, accountId: row.accountId, name: row.name, tenantId, legacyClientId: from.legacyClientId, migratedAt });
      }
    }
  }
  for (const connector of await listConnectors(db)) {
    if (connector.lastRotationStatus === 'failed') {
      actions.push({ kind: 'rotation_failed', connectorId: connector.id, connector: connector.name, at: connector.lastRotationAt, error: displayText(connector.lastRotationError ?? 'rotation failed') });
    }
    const [current] = await db
      .select({ notAfter: connectorCredentials.notAfter })
      .from(connectorCredentials)
      .where(and(eq(connectorCredentials.connectorId, connector.id), inArray(connectorCredentials.status, ['current'])));
    if (current && current.notAfter.getTime() - now.getTime() < expiryWarningMs) {
      actions.push({ kind: 'certificate_expiring', connectorId: connector.id, connector: connector.name, notAfter: current.notAfter });
    }
  }
  return actions;
}
