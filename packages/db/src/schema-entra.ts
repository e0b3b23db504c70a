import { sql } from 'drizzle-orm';
import { check, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { consentStatuses, credentialStatuses } from '@dirsync/contracts';

// Microsoft Entra ID connectors: the platform's own app registrations, their certificate
// credentials (private keys encrypted) with history, tenants' admin consent, and platform-wide
// settings such as the legacy migration deadline. Unqualified tables, like schema.ts.

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const updatedAt = () => timestamp('updated_at', { withTimezone: true }).notNull().defaultNow();

// schema.ts re-exports this file, so importing its tables here would be an import cycle: the
// foreign key names accounts through a stand-in of its key column (as schema-api.ts does).
const accounts = pgTable('accounts', { id: uuid('id').primaryKey() });

const inList = (column: string, values: readonly string[]) =>
  sql.raw(`${column} in (${values.map((v) => `'${v}'`).join(', ')})`);

/**
 * The application permissions a connector asks tenants for: the least-privileged ones Graph's
 * permission tables name for `users/delta` and `groups/delta` (members included). Rolling the
 * app's own keys (`addKey`/`removeKey` with a proof of possession) needs none, and the rotation
 * never reads the app registration, so no `Application.*` permission is asked for.
 */
export const connectorPermissions = ['User.Read.All', 'GroupMember.Read.All'] as const;

/** Clouds a connector can be in: Microsoft's named clouds, or `custom` hosts. */
export const connectorClouds = ['global', 'usgov', 'china', 'custom'] as const;

/** An Entra app registration of the platform, used by customers' integrations after consent. */
export const connectors = pgTable(
  'connectors',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull(),
    description: text('description').notNull(),
    /** Application (client) id. */
    clientId: text('client_id').notNull(),
    /** Application object id: `iss` of addKey/removeKey proofs. */
    applicationObjectId: text('application_object_id').notNull(),
    /** The platform's own tenant, where the app registration lives. */
    homeTenantId: text('home_tenant_id').notNull(),
    /**
     * The Microsoft cloud whose hosts the connector uses (`global`, `usgov`, `china`), or `custom`
     * for hand-written hosts (private endpoints, emulators). Set with the hosts.
     */
    cloud: text('cloud', { enum: connectorClouds }).notNull().default('global'),
    authorityHost: text('authority_host').notNull().default('https://login.microsoftonline.com'),
    graphBaseUrl: text('graph_base_url').notNull().default('https://graph.microsoft.com'),
    /** Extra CA trusted for this connector's authority and Graph (private clouds, emulators). */
    tlsCaPem: text('tls_ca_pem'),
    /** Where the admin-consent page sends the administrator back. */
    redirectUri: text('redirect_uri').notNull(),
    permissions: jsonb('permissions').notNull().$type<string[]>().default(sql`'["User.Read.All","GroupMember.Read.All"]'::jsonb`),
    /** When the credential rotation runs (five-field cron, UTC). */
    rotationCron: text('rotation_cron').notNull().default('0 3 * * *'),
    certificateValidityDays: integer('certificate_validity_days').notNull().default(30),
    /** Latest rotation slot claimed by a scheduler (exactly-once across replicas). */
    rotationScheduledFor: timestamp('rotation_scheduled_for', { withTimezone: true }),
    /** Latest slot whose rotation succeeded: a second job for it does nothing. */
    rotatedSlot: timestamp('rotated_slot', { withTimezone: true }),
    /** One rotation at a time: held until this instant by the running one. */
    rotationLeaseUntil: timestamp('rotation_lease_until', { withTimezone: true }),
    lastRotationAt: timestamp('last_rotation_at', { withTimezone: true }),
    lastRotationStatus: text('last_rotation_status'),
    lastRotationError: text('last_rotation_error'),
    /** Failed rotations since the last one that succeeded (0 after a success). */
    rotationFailures: integer('rotation_failures').notNull().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('connectors_name_uq').on(t.name),
    uniqueIndex('connectors_client_id_uq').on(t.clientId),
    check('connectors_description_ck', sql`length(btrim(description)) > 0`),
    check('connectors_validity_ck', sql`certificate_validity_days between 2 and 730`),
    check('connectors_cloud_ck', inList('cloud', connectorClouds)),
  ],
);

/** A certificate credential of a connector: current, previous and the history of the others. */
export const connectorCredentials = pgTable(
  'connector_credentials',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    connectorId: uuid('connector_id')
      .notNull()
      .references(() => connectors.id, { onDelete: 'cascade' }),
    /** SHA-1 thumbprint, upper-case hex (Graph's customKeyIdentifier). */
    thumbprint: text('thumbprint').notNull(),
    thumbprintSha256: text('thumbprint_sha256').notNull(),
    certificatePem: text('certificate_pem').notNull(),
    /** AES-256-GCM ciphertext of the PKCS#8 private key, bound to this row, and its key id. */
    privateKeyCiphertext: text('private_key_ciphertext').notNull(),
    privateKeyKeyId: text('private_key_key_id').notNull(),
    status: text('status', { enum: credentialStatuses }).notNull(),
    /** keyCredential id on the app registration, once known. */
    graphKeyId: text('graph_key_id'),
    notBefore: timestamp('not_before', { withTimezone: true }).notNull(),
    notAfter: timestamp('not_after', { withTimezone: true }).notNull(),
    /** The rotation slot that made it (scheduled rotations). */
    rotationSlot: timestamp('rotation_slot', { withTimezone: true }),
    createdAt: createdAt(),
    activatedAt: timestamp('activated_at', { withTimezone: true }),
    retiredAt: timestamp('retired_at', { withTimezone: true }),
    removedAt: timestamp('removed_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('connector_credentials_thumbprint_uq').on(t.connectorId, t.thumbprint),
    uniqueIndex('connector_credentials_current_uq').on(t.connectorId).where(sql`status = 'current'`),
    index('connector_credentials_connector_idx').on(t.connectorId, t.createdAt),
    check('connector_credentials_status_ck', inList('status', credentialStatuses)),
  ],
);

/** A tenant administrator's admin consent to a connector, held by the account that asked for it. */
export const entraConsents = pgTable(
  'entra_consents',
  {
    /** The account that requested the consent: only its integrations may use it. */
    accountId: uuid('account_id')
      .notNull()
      .references(() => accounts.id, { onDelete: 'cascade' }),
    connectorId: uuid('connector_id')
      .notNull()
      .references(() => connectors.id, { onDelete: 'cascade' }),
    /** The tenant as integrations name it (GUID or domain), lower-case. */
    tenantId: text('tenant_id').notNull(),
    /** The tenant GUID, from the `tid` claim of the token that verified the grant. */
    tenantGuid: text('tenant_guid'),
    status: text('status', { enum: consentStatuses }).notNull(),
    /** Application permissions (`roles` claim) the verifying token carried. */
    roles: jsonb('roles').$type<string[]>(),
    error: text('error'),
    errorDescription: text('error_description'),
    grantedAt: timestamp('granted_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    /**
     * Runs in a row, past the grace after the grant, that Entra ID or Graph refused for lack of
     * consent while the consent is granted; reset by a run that reads the tenant.
     * A grant takes a while to reach every Entra ID and Graph replica.
     */
    authFailures: integer('auth_failures').notNull().default(0),
    lastAuthFailureAt: timestamp('last_auth_failure_at', { withTimezone: true }),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ columns: [t.accountId, t.connectorId, t.tenantId], name: 'entra_consents_pk' }),
    index('entra_consents_connector_tenant_idx').on(t.connectorId, t.tenantId),
    check('entra_consents_status_ck', inList('status', consentStatuses)),
  ],
);

/** How a consent request ended (null while it waits for the redirect or its verification). */
export const consentRequestOutcomes = ['granted', 'denied', 'not_granted', 'confirmation_required', 'failed', 'expired'] as const;

/** Single-use `state` values of admin-consent URLs: one pending request of one account each. */
export const entraConsentStates = pgTable(
  'entra_consent_states',
  {
    nonce: text('nonce').primaryKey(),
    accountId: uuid('account_id')
      .notNull()
      .references(() => accounts.id, { onDelete: 'cascade' }),
    connectorId: uuid('connector_id')
      .notNull()
      .references(() => connectors.id, { onDelete: 'cascade' }),
    tenantId: text('tenant_id').notNull(),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    /** When the redirect used the state up: never accepted again after this. */
    usedAt: timestamp('used_at', { withTimezone: true }),
    /**
     * The OpenID Connect nonce of the administrator's sign-in that follows the consent: the
     * id_token must carry it. Set when the consent redirect sends the administrator to sign in.
     */
    signInNonce: text('sign_in_nonce'),
    /** When the sign-in redirect used up the second state of the request. */
    signInUsedAt: timestamp('sign_in_used_at', { withTimezone: true }),
    /**
     * The sign-in's authorization code, sealed (AES-256-GCM, bound to the request), from the
     * redirect until a worker redeems it; cleared when taken. Never in a job payload.
     */
    codeCiphertext: text('code_ciphertext'),
    codeKeyId: text('code_key_id'),
    outcome: text('outcome', { enum: consentRequestOutcomes }),
    /** Why the request ended as it did (already sanitised and capped). */
    detail: text('detail'),
    completedAt: timestamp('completed_at', { withTimezone: true }),
    /** The console page to send the browser back to after the consent (a path under /console/), if any. */
    returnTo: text('return_to'),
  },
  (t) => [
    index('entra_consent_states_account_idx').on(t.accountId, t.connectorId, t.tenantId),
    check('entra_consent_states_outcome_ck', sql`outcome is null or ${inList('outcome', consentRequestOutcomes)}`),
  ],
);

/** Platform-wide settings (for example the legacy Entra migration deadline), by key. */
export const platformSettings = pgTable('platform_settings', {
  key: text('key').primaryKey(),
  value: jsonb('value').notNull().$type<unknown>(),
  updatedAt: updatedAt(),
});
