import { sql } from 'drizzle-orm';
import { check, index, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

// Tables of the HTTP API. Kept apart from schema.ts so the API's storage reads on its own; both
// files feed the same migrations (schema.ts re-exports this one).

// schema.ts re-exports this file, so importing its tables here would be an import cycle. The
// foreign keys name them through stand-ins of their key columns instead: same table and column
// names, not exported, so drizzle-kit sees only the references, never a second definition.
const accounts = pgTable('accounts', { id: uuid('id').primaryKey() });
const integrations = pgTable('integrations', { id: uuid('id').primaryKey() });

/** Permissions an API key can carry. `admin` includes the other two. */
export const apiScopes = ['read', 'sync', 'admin'] as const;

/**
 * Keys other services call the API with. Only a hash of the secret part is stored: the token is
 * shown once, when the key is made. A key belongs to one account; a key without an account is a
 * platform key (operators: the queue dashboard), which sees no account's data through `/v1`.
 */
export const apiKeys = pgTable(
  'api_keys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    accountId: uuid('account_id').references(() => accounts.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    /** Public part of the token, used to find the row; not a secret. */
    lookupId: text('lookup_id').notNull().unique(),
    /** SHA-256 (hex) of the whole token. */
    tokenHash: text('token_hash').notNull(),
    scopes: text('scopes').array().notNull(),
    createdBy: text('created_by'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [
    index('api_keys_account_idx').on(t.accountId),
    check('api_keys_scopes_ck', sql`cardinality(scopes) > 0 and scopes <@ array['read', 'sync', 'admin']::text[]`),
  ],
);

/**
 * A service-account password waiting to be checked by a worker before it replaces the stored
 * one. Encrypted like the integration's own secret, short-lived, deleted once checked: job
 * payloads carry only its id.
 */
export const integrationSecretCandidates = pgTable(
  'integration_secret_candidates',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    integrationId: uuid('integration_id')
      .notNull()
      .references(() => integrations.id, { onDelete: 'cascade' }),
    ciphertext: text('ciphertext').notNull(),
    keyId: text('key_id').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (t) => [index('integration_secret_candidates_expires_idx').on(t.expiresAt)],
);
