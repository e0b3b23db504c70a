import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import { integrationKinds, runStatuses, syncModes, syncTriggers } from '@dirsync/contracts';

// Tables are created unqualified (no pgSchema, no pgEnum) so that migrations apply into whatever
// schema `search_path` names: tests run each file in its own schema.

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const updatedAt = () => timestamp('updated_at', { withTimezone: true }).notNull().defaultNow();

const inList = (column: string, values: readonly string[]) =>
  sql.raw(`${column} in (${values.map((v) => `'${v}'`).join(', ')})`);

/** Tenants: a customer account owning integrations. */
export const accounts = pgTable('accounts', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  createdAt: createdAt(),
});

/** One directory of one account, with its schedule, limits, cursor and encrypted secret. */
export const integrations = pgTable(
  'integrations',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    accountId: uuid('account_id')
      .notNull()
      .references(() => accounts.id, { onDelete: 'cascade' }),
    kind: text('kind', { enum: integrationKinds }).notNull(),
    name: text('name').notNull(),
    description: text('description').notNull().default(''),
    enabled: boolean('enabled').notNull().default(true),
    /** Per-kind settings, validated by the provider's zod schema before they are stored. */
    settings: jsonb('settings').notNull().$type<Record<string, unknown>>(),
    /** AES-256-GCM ciphertext (iv | tag | data, base64) and the id of the key that made it. */
    secretCiphertext: text('secret_ciphertext'),
    secretKeyId: text('secret_key_id'),
    deltaCron: text('delta_cron').notNull().default('*/5 * * * *'),
    fullCron: text('full_cron').notNull().default('0 2 * * *'),
    deleteThresholdCount: integer('delete_threshold_count').notNull().default(500),
    deleteThresholdPercent: integer('delete_threshold_percent').notNull().default(20),
    /** Provider cursor for the next delta (null: next delta runs as full). */
    cursor: jsonb('cursor').$type<Record<string, unknown>>(),
    status: text('status').notNull().default('new'),
    /**
     * Fencing token of the sync attempt that holds the integration's lock (attempt number and
     * lock token). Directory writes and run-state writes of any other attempt are refused.
     */
    syncFence: text('sync_fence'),
    lastRunId: uuid('last_run_id'),
    lastSuccessRunId: uuid('last_success_run_id'),
    lastSuccessAt: timestamp('last_success_at', { withTimezone: true }),
    /** Latest schedule slot already enqueued, per mode (exactly-once scheduling across replicas). */
    deltaScheduledFor: timestamp('delta_scheduled_for', { withTimezone: true }),
    fullScheduledFor: timestamp('full_scheduled_for', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('integrations_account_name_uq').on(t.accountId, t.name),
    check('integrations_kind_ck', inList('kind', integrationKinds)),
    check('integrations_threshold_ck', sql`delete_threshold_count >= 0 and delete_threshold_percent between 0 and 100`),
  ],
);

/**
 * Synced users, groups and contacts, keyed by the source's immutable id. Stored with fillfactor 50
 * (migration 0004, drizzle has no table storage options) so each full sync's stamp is a HOT update.
 */
export const directoryObjects = pgTable(
  'directory_objects',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    // No foreign key: its check ran once per inserted object, a third of the insert's cost. The
    // integration's row is held by every step of a real run that writes objects (the fence check
    // takes it `for share`), and a trigger deletes its objects with it (migration 0019).
    integrationId: uuid('integration_id').notNull(),
    externalId: text('external_id').notNull(),
    type: text('type', { enum: ['user', 'group', 'contact'] }).notNull(),
    /** Current DN (lower case) for member resolution; not a key. */
    dn: text('dn'),
    attributes: jsonb('attributes').notNull().$type<Record<string, unknown>>(),
    contentHash: text('content_hash').notNull(),
    /** Hash of the resolved member set of a group; unchanged → its edges need no work. */
    membersHash: text('members_hash'),
    lastSeenRunId: uuid('last_seen_run_id'),
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('directory_objects_integration_external_uq').on(t.integrationId, t.externalId),
    index('directory_objects_integration_dn_idx').on(t.integrationId, t.dn),
    // The synced-data lists page one type at a time in order of change (all types: one such scan
    // per type, merged). With the type behind the time, a page of the 5,000 groups among 100,000
    // users passed over every user first.
    index('directory_objects_integration_type_updated_idx').on(t.integrationId, t.type, t.updatedAt),
    check('directory_objects_type_ck', sql`${t.type} in ('user', 'group', 'contact')`),
    // Finds the objects whose manager is being deleted (their attribute is cleared in that run).
    index('directory_objects_integration_manager_idx')
      .on(t.integrationId, sql`(${t.attributes} ->> 'manager')`)
      .where(sql`${t.attributes} ? 'manager'`),
  ],
);

/**
 * Group membership edges by external ids, keyed by the edge itself: a first sync writes hundreds of
 * thousands of them, and every index and check a row carries is paid once per edge. So there is
 * no surrogate id; members are found by a hash index (lookups are by equality only, and it is a
 * third the cost of a b-tree to maintain); the listing's order, by time of change, has an index
 * of its own (without it every page sorted all of an integration's edges; its keys arrive in time
 * order, so it costs a tenth more per insert); and there is no foreign key to the integration, whose
 * check ran once per inserted edge: a real run writes edges in steps that hold the integration's
 * row (the fence check takes it `for share`), so it cannot be deleted under them, and a trigger
 * on `integrations` deletes an integration's edges with it, as the cascade did.
 */
export const memberships = pgTable(
  'memberships',
  {
    integrationId: uuid('integration_id').notNull(),
    groupExternalId: text('group_external_id').notNull(),
    memberExternalId: text('member_external_id').notNull(),
    lastSeenRunId: uuid('last_seen_run_id'),
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ name: 'memberships_edge_uq', columns: [t.integrationId, t.groupExternalId, t.memberExternalId] }),
    index('memberships_member_idx').using('hash', t.memberExternalId),
    index('memberships_integration_updated_idx').on(t.integrationId, t.updatedAt),
  ],
);

/**
 * References the source makes to objects that are not stored, kept so the reference is made the
 * moment such an object appears, in whatever run. `attribute` `member`: a group's member DN
 * (`target`) that matched no synced object when the group's complete member list was written, or
 * whose object was deleted while the group still listed it.
 */
export const danglingReferences = pgTable(
  'dangling_references',
  {
    integrationId: uuid('integration_id')
      .notNull()
      .references(() => integrations.id, { onDelete: 'cascade' }),
    attribute: text('attribute', { enum: ['member'] }).notNull(),
    target: text('target').notNull(),
    /** The object holding the reference (the group, for `member`). */
    sourceExternalId: text('source_external_id').notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.integrationId, t.attribute, t.target, t.sourceExternalId] }),
    index('dangling_references_source_idx').on(t.integrationId, t.sourceExternalId),
  ],
);

/** One per-object problem recorded in a run report. */
export interface RunIssue {
  externalId?: string;
  dn?: string;
  reason: string;
}

/** The report of one sync run. */
export const syncRuns = pgTable(
  'sync_runs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    integrationId: uuid('integration_id')
      .notNull()
      .references(() => integrations.id, { onDelete: 'cascade' }),
    /**
     * The integration's account, copied by the `sync_runs_account` trigger of migration 0021 on
     * insert (whatever the writer sends), so an account's runs page from its index. Null only
     * when the integration does not exist, which the foreign key then refuses.
     */
    accountId: uuid('account_id'),
    jobId: text('job_id'),
    modeRequested: text('mode_requested', { enum: syncModes }).notNull(),
    /** The mode that actually ran (a delta may become full); null until it starts. */
    mode: text('mode', { enum: syncModes }),
    trigger: text('trigger', { enum: syncTriggers }).notNull(),
    /** Why it ran as it did (for example: "no cursor: first sync runs full"). */
    reason: text('reason'),
    dryRun: boolean('dry_run').notNull().default(false),
    status: text('status', { enum: runStatuses }).notNull().default('queued'),
    requestedBy: text('requested_by'),
    fetched: integer('fetched').notNull().default(0),
    created: integer('created').notNull().default(0),
    updated: integer('updated').notNull().default(0),
    unchanged: integer('unchanged').notNull().default(0),
    deleted: integer('deleted').notNull().default(0),
    restored: integer('restored').notNull().default(0),
    failed: integer('failed').notNull().default(0),
    membershipsAdded: integer('memberships_added').notNull().default(0),
    membershipsRemoved: integer('memberships_removed').notNull().default(0),
    /** Deletions a threshold-blocked or dry run would have made. */
    wouldDelete: integer('would_delete').notNull().default(0),
    issues: jsonb('issues').notNull().$type<RunIssue[]>().default(sql`'[]'::jsonb`),
    /** Issues the run found; `issues` keeps only the first ones so a bad run cannot bloat its row. */
    issueCount: integer('issue_count').notNull().default(0),
    workerId: text('worker_id'),
    /** Attempt now running or last run (1-based; 0 before the first). */
    attempt: integer('attempt').notNull().default(0),
    /** Attempts the queue allows the job. */
    maxAttempts: integer('max_attempts'),
    /** Fencing token of the attempt that owns the run (see `integrations.sync_fence`). */
    fence: text('fence'),
    /** Error of the latest failed attempt (kept while the run is `retrying`). */
    lastError: text('last_error'),
    /** Last time the owning attempt wrote a batch or changed the run's state. */
    heartbeatAt: timestamp('heartbeat_at', { withTimezone: true }),
    /** When the reconciler put the run's lost job back on the queue (done once). */
    requeuedAt: timestamp('requeued_at', { withTimezone: true }),
    error: text('error'),
    approvedAt: timestamp('approved_at', { withTimezone: true }),
    approvedBy: text('approved_by'),
    queuedAt: timestamp('queued_at', { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    durationMs: integer('duration_ms'),
  },
  (t) => [
    index('sync_runs_integration_idx').on(t.integrationId, t.queuedAt),
    index('sync_runs_account_status_queued_idx').on(t.accountId, t.status, t.queuedAt, t.id),
    // The runs not finished yet, which the reconciler and the metrics read every minute or
    // scrape: a few rows, where the table holds every run kept.
    index('sync_runs_active_idx').on(t.status).where(sql`status in ('queued', 'running', 'retrying')`),
    check('sync_runs_status_ck', inList('status', runStatuses)),
    check('sync_runs_trigger_ck', inList('trigger', syncTriggers)),
  ],
);

/** Who did what to which integration, for administrators. */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    accountId: uuid('account_id'),
    integrationId: uuid('integration_id'),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    details: jsonb('details').notNull().$type<Record<string, unknown>>().default(sql`'{}'::jsonb`),
    createdAt: createdAt(),
  },
  (t) => [
    index('audit_events_integration_idx').on(t.integrationId, t.createdAt),
    // An account's log, newest first (GET /v1/audit): read in index order, never sorted (the
    // order of its ORDER BY, nulls first as DESC has them).
    index('audit_events_account_idx').on(t.accountId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
    // The few events recorded with an integration alone (a worker's), which are its account's too.
    index('audit_events_integration_only_idx')
      .on(t.integrationId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst())
      .where(sql`${t.accountId} is null`),
  ],
);
export * from './schema-entra.ts';
export * from './schema-api.ts';
export * from './schema-console.ts';
export * from './schema-changes.ts';
export * from './schema-webhooks.ts';
