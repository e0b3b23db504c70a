import { sql } from 'drizzle-orm';
import { check, index, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

// Tables of the console's sign-in. Kept apart like schema-api.ts; schema.ts re-exports this file,
// so the account's table is named through a stand-in of its key column (see schema-api.ts).
const accounts = pgTable('accounts', { id: uuid('id').primaryKey() });

/** Roles a console user holds on an account (or on every account, for a platform operator). */
export const consoleRoles = ['viewer', 'operator', 'admin'] as const;

/** One account a console session may act on, and with which role. */
export interface ConsoleGrantRow {
  accountId: string;
  role: (typeof consoleRoles)[number];
}

/**
 * Signed-in console users. The cookie carries 256 random bits; only their SHA-256 is stored, so
 * a database reader cannot sign in. Grants are fixed at sign-in (from the identity provider's
 * claim or the one-time link) and end with the session.
 */
export const consoleSessions = pgTable(
  'console_sessions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** SHA-256 (hex) of the cookie's token. */
    tokenHash: text('token_hash').notNull().unique(),
    /** The identity provider's `sub`, or `link:<account>` for a one-time link. */
    subject: text('subject').notNull(),
    name: text('name').notNull(),
    email: text('email'),
    /** How the user signed in: `oidc` or `link`. */
    method: text('method').notNull(),
    grants: jsonb('grants').notNull().$type<ConsoleGrantRow[]>(),
    /** Set for platform operators: their role on every account. */
    platformRole: text('platform_role'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (t) => [
    index('console_sessions_expires_idx').on(t.expiresAt),
    check('console_sessions_platform_role_ck', sql`platform_role is null or platform_role in ('viewer', 'operator', 'admin')`),
    check('console_sessions_method_ck', sql`method in ('oidc', 'link')`),
  ],
);

/**
 * One-time sign-in links made by `dirsync console login`: bound to one account and role, usable
 * once before they expire. Only the SHA-256 of the link's token is stored.
 */
export const consoleSignInLinks = pgTable(
  'console_sign_in_links',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tokenHash: text('token_hash').notNull().unique(),
    accountId: uuid('account_id')
      .notNull()
      .references(() => accounts.id, { onDelete: 'cascade' }),
    role: text('role').notNull(),
    createdBy: text('created_by'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    usedAt: timestamp('used_at', { withTimezone: true }),
  },
  (t) => [
    index('console_sign_in_links_expires_idx').on(t.expiresAt),
    check('console_sign_in_links_role_ck', sql`role in ('viewer', 'operator', 'admin')`),
  ],
);

/**
 * OpenID Connect sign-ins started and not yet returned: found by the SHA-256 of their `state`,
 * and bound to the browser that started them by the SHA-256 of a cookie only that browser holds
 * (the PKCE verifier and the nonce are derived from that cookie, so nothing here redeems a code).
 */
export const consoleOidcLogins = pgTable(
  'console_oidc_logins',
  {
    stateHash: text('state_hash').primaryKey(),
    browserHash: text('browser_hash').notNull(),
    returnTo: text('return_to').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (t) => [index('console_oidc_logins_expires_idx').on(t.expiresAt)],
);
