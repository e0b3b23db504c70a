import { sql } from 'drizzle-orm';
import { bigint, check, customType, index, integer, jsonb, pgTable, primaryKey, smallint, text, timestamp, unique, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

// Tables of the change feed (migration 0015, which also holds the commit-time trigger that gives
// each batch its cursor range; see there for why ranges are assigned at commit). schema.ts
// re-exports this file, so the tables referenced are named through stand-ins of their key columns
// (see schema-api.ts).
const accounts = pgTable('accounts', { id: uuid('id').primaryKey() });

/** PostgreSQL's 64-bit transaction id (`pg_current_xact_id()`), never reused. */
const xid8 = customType<{ data: string }>({ dataType: () => 'xid8' });

/**
 * Per account: the last cursor handed out, and the last one pruned (a consumer whose cursor is
 * older has missed entries and must resync).
 */
export const changeCursors = pgTable('change_cursors', {
  accountId: uuid('account_id')
    .primaryKey()
    .references(() => accounts.id, { onDelete: 'cascade' }),
  last: bigint('last', { mode: 'bigint' }).notNull().default(sql`0`),
  prunedThrough: bigint('pruned_through', { mode: 'bigint' }).notNull().default(sql`0`),
});

/**
 * The entries one transaction wrote for one integration and run. `entries` grows with each
 * statement; `first_seq`/`last_seq`/`published_at` are set at commit.
 */
export const changeBatches = pgTable(
  'change_batches',
  {
    id: bigint('id', { mode: 'bigint' }).primaryKey().generatedAlwaysAsIdentity(),
    xact: xid8('xact').notNull(),
    accountId: uuid('account_id')
      .notNull()
      .references(() => accounts.id, { onDelete: 'cascade' }),
    integrationId: uuid('integration_id').notNull(),
    runId: uuid('run_id'),
    entries: integer('entries').notNull(),
    firstSeq: bigint('first_seq', { mode: 'bigint' }),
    lastSeq: bigint('last_seq', { mode: 'bigint' }),
    publishedAt: timestamp('published_at', { withTimezone: true }),
  },
  (t) => [
    unique('change_batches_xact_uq').on(t.xact, t.integrationId, t.runId).nullsNotDistinct(),
    uniqueIndex('change_batches_account_seq_uq').on(t.accountId, t.lastSeq),
    index('change_batches_run_idx').on(t.runId).where(sql`run_id is not null`),
    index('change_batches_published_idx').on(t.publishedAt).where(sql`last_seq is not null`),
  ],
);

/** Operations of change entries, as stored (`changes.op`). */
export const changeOps = { created: 1, updated: 2, restored: 3, deleted: 4, membership: 5 } as const;

/**
 * A run of `span` changes of one statement: objects of one type created, updated, restored or
 * deleted (their external ids in `ids`; readers join the objects' current state), or one group's
 * membership edges added and removed (`external_id`, `added`, `removed`, span 1). Entry i of the
 * run (from 0) has the cursor `first_seq` of the batch + `ordinal` + i - 1.
 */
export const changes = pgTable(
  'changes',
  {
    /** The batch's id; no foreign key (see migration 0015): its entries go with it by trigger. */
    batchId: bigint('batch_id', { mode: 'bigint' }).notNull(),
    ordinal: integer('ordinal').notNull(),
    span: integer('span').notNull().default(1),
    op: smallint('op').notNull(),
    objectType: text('object_type'),
    externalId: text('external_id'),
    /** External ids of a run of object entries. */
    ids: text('ids').array(),
    /** Member external ids (JSON array of strings; membership entries only). */
    added: jsonb('added').$type<string[]>(),
    removed: jsonb('removed').$type<string[]>(),
  },
  (t) => [primaryKey({ name: 'changes_pk', columns: [t.batchId, t.ordinal] }), check('changes_op_ck', sql`op between 1 and 5`)],
);
