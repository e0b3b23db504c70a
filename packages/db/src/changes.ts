import type postgres from 'postgres';
import type { Db } from './client.ts';
import { changeOps } from './schema-changes.ts';

/**
 * The change feed: each account's log of object and membership changes, written by the statements
 * that make them (see {@link feedWrite}) and read in cursor order. A cursor is a per-account
 * sequence number, dense and increasing, assigned when the writing transaction commits (migration
 * 0015 explains why then); the feed stores ids, and readers join the objects' current state.
 */

type RawSql = postgres.Sql | postgres.TransactionSql;
type Handle = Db | RawSql;

function raw(handle: Handle): RawSql {
  return '$client' in handle ? handle.$client : handle;
}

/**
 * The tail of a data-modifying statement that logs its changes: appended to a `with` list that
 * defines a CTE named `feed` with columns `(k, op, object_type, external_id, added, removed)`
 * (`k` orders the entries of one statement; `op` one of {@link changeOps}). It adds the entries to
 * the transaction's batch of the integration and run, made on its first entry; nothing at all
 * when `feed` is empty (no batch, so no counter is touched at commit). Object entries are stored
 * as one row per kind of change and object type (see migration 0015), membership entries one row
 * per group.
 *
 * Internal to the repositories that write directory data: every such statement logs through it,
 * so a change and its entry commit or roll back together.
 */
export function feedWrite(sql: RawSql, integrationId: string, runId: string | null): postgres.PendingQuery<postgres.Row[]> {
  return sql`,
    feed_rows as materialized (
      select k, op, object_type, null::text as external_id, array_agg(external_id) as ids,
        null::jsonb as added, null::jsonb as removed, count(*)::int as span
      from feed where op <> 5 group by k, op, object_type
      union all
      select k, op, object_type, external_id, null, added, removed, 1 from feed where op = 5
    ),
    feed_count as materialized (select coalesce(sum(span), 0)::int as n from feed_rows),
    feed_batch as (
      insert into change_batches (xact, account_id, integration_id, run_id, entries)
      select pg_current_xact_id(), i.account_id, i.id, ${runId}::uuid, c.n
      from integrations i, feed_count c
      where i.id = ${integrationId}::uuid and c.n > 0
      on conflict (xact, integration_id, run_id) do update set entries = change_batches.entries + excluded.entries
      returning id, entries
    ),
    feed_written as (
      insert into changes (batch_id, ordinal, span, op, object_type, external_id, ids, added, removed)
      select b.id, b.entries - c.n + (sum(f.span) over (order by f.k rows between unbounded preceding and current row))::int - f.span + 1,
             f.span, f.op, f.object_type, f.external_id, f.ids, f.added, f.removed
      from feed_batch b, feed_count c, feed_rows f
      returning 1
    )`;
}

/** The feed cursor range of one run's entries. */
export interface RunChangeRange {
  /** Cursor of the run's first entry. */
  readonly cursorFrom: string;
  /** Cursor of its last entry. */
  readonly cursorTo: string;
  /**
   * Entries the run wrote. Fewer than the range spans when another integration of the account
   * wrote in between: the range then also holds those entries.
   */
  readonly count: number;
}

/**
 * The cursor range of the entries `runId` wrote (committed ones; a run's transactions that rolled
 * back wrote none), or null when it wrote none (a run that changed nothing, a dry run).
 */
export async function changeRangeOfRun(db: Handle, runId: string): Promise<RunChangeRange | null> {
  const sql = raw(db);
  const [row] = await sql<{ from: string | null; to: string | null; count: number }[]>`
    select min(first_seq)::text as from, max(last_seq)::text as to, coalesce(sum(entries), 0)::int as count
    from change_batches where run_id = ${runId}::uuid and last_seq is not null`;
  if (row === undefined || row.from === null || row.to === null || row.count === 0) return null;
  return { cursorFrom: row.from, cursorTo: row.to, count: row.count };
}

/** Where an account's feed stands. */
export interface ChangeHead {
  /** The latest cursor ("0" before the first change). */
  readonly head: string;
  /** Entries up to this cursor are pruned: a consumer that has read less must resync. */
  readonly prunedThrough: string;
}

/** The account's latest cursor and how far its feed is pruned. */
export async function changeHead(db: Handle, accountId: string): Promise<ChangeHead> {
  const sql = raw(db);
  const [row] = await sql<{ last: string; pruned: string }[]>`
    select last::text as last, pruned_through::text as pruned from change_cursors where account_id = ${accountId}::uuid`;
  return { head: row?.last ?? '0', prunedThrough: row?.pruned ?? '0' };
}

/** Kind of a change entry as the feed reports it. */
export type ChangeKind = 'object.created' | 'object.updated' | 'object.restored' | 'object.deleted' | 'membership.changed';

const kinds: Record<number, ChangeKind> = {
  [changeOps.created]: 'object.created',
  [changeOps.updated]: 'object.updated',
  [changeOps.restored]: 'object.restored',
  [changeOps.deleted]: 'object.deleted',
  [changeOps.membership]: 'membership.changed',
};

/** An object's stored state at read time (what the API's object schema shows). */
export interface ChangedObjectRow {
  readonly externalId: string;
  readonly type: string;
  readonly dn: string | null;
  readonly attributes: Record<string, unknown>;
  readonly deleted: boolean;
  readonly deletedAt: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** One feed entry as stored, with the object's current state for object entries. */
export interface ChangeRow {
  readonly cursor: string;
  /** When the transaction that made the change committed (ISO 8601). */
  readonly occurredAt: string;
  readonly integrationId: string;
  readonly runId: string | null;
  readonly type: ChangeKind;
  /** The object's type (object entries; null for membership entries). */
  readonly objectType: string | null;
  /** The object's external id, or the group's for a membership entry. */
  readonly externalId: string;
  /** Member external ids (membership entries; empty otherwise). */
  readonly added: string[];
  readonly removed: string[];
  /** Created/updated/restored entries: the object as stored now; null if it is gone altogether. */
  readonly object: ChangedObjectRow | null;
}

/** Largest page {@link readChanges} returns. */
export const maxChangePage = 1000;

/**
 * Bytes of member lists and object attributes (as JSON) a page holds before it is cut, whatever
 * its limit: a membership entry carries every member a write added, so a thousand entries of
 * large groups came to tens of megabytes held by the API and sent at once. A page always holds
 * its first entry, so it can pass this by one entry.
 */
export const maxChangePageBytes = 4 * 1024 * 1024;

/** Why a feed read was refused. */
export type ChangeReadRefusal =
  /** `after` is older than the retained history: the consumer has missed entries. */
  | { readonly refused: 'expired'; readonly head: string }
  /** `after` was never handed out (greater than the head). */
  | { readonly refused: 'beyond-head'; readonly head: string };

/** A page of the feed. */
export interface ChangePage {
  readonly items: ChangeRow[];
  /** Cursor of the last item, or `after` when the page is empty. */
  readonly cursor: string;
  readonly hasMore: boolean;
}

const isoText = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** Whether `text` is a cursor this feed could have handed out (a decimal in bigint range). */
export function isChangeCursor(text: string): boolean {
  return /^(0|[1-9]\d{0,18})$/.test(text) && BigInt(text) <= 9_223_372_036_854_775_807n;
}

/**
 * Up to `limit` (1..{@link maxChangePage}) entries of the account's feed after cursor `after`, in
 * cursor order. Only the account's own batches are read, so a cursor of another account's
 * stream reveals nothing. Refuses an `after` older than what retention kept, or beyond the head.
 */
export async function readChanges(db: Handle, accountId: string, after: string, limit: number): Promise<ChangePage | ChangeReadRefusal> {
  if (!isChangeCursor(after)) throw new RangeError('a change cursor is a decimal number');
  if (!Number.isInteger(limit) || limit < 1 || limit > maxChangePage) throw new RangeError(`limit must be 1–${maxChangePage}`);
  const sql = raw(db);
  const { head, prunedThrough } = await changeHead(sql, accountId);
  const position = BigInt(after);
  if (position > BigInt(head)) return { refused: 'beyond-head', head };
  if (position < BigInt(prunedThrough)) return { refused: 'expired', head };
  // Cursor order is (batch, ordinal). The page is cut before anything is joined: batches are taken
  // in order through (account_id, last_seq) only until they hold `limit` entries after the cursor
  // (their sequence numbers are dense, so that needs no read of their entries), from each at most
  // `limit` entries in order through the primary key, and only the page's object entries look
  // their object up. One more than asked tells whether there is more. Without the cut by entries,
  // the planner read the entries of every one of up to `limit` batches and sorted them all: a
  // page 1,000 entries into a feed of 1,100,000 took 150–700 ms instead of 16–26 ms.
  // The page is then cut where the member lists and attributes before an entry pass
  // maxChangePageBytes; `page_rows` counts the entries before that cut.
  const rows = await sql.unsafe<(Omit<ChangeRow, 'type' | 'object'> & { op: number; o_type: string | null; page_rows: number } & Partial<Record<`o_${string}`, unknown>>)[]>(
    `with page as (
       select b.first_seq, b.last_seq, b.published_at, b.integration_id, b.run_id,
         c.ordinal + e.n - 1 as ordinal, c.op, c.object_type, coalesce(e.id, c.external_id) as external_id, c.added, c.removed
       from (
         select id, first_seq, last_seq, published_at, integration_id, run_id
         from (
           select id, first_seq, last_seq, published_at, integration_id, run_id,
             sum(last_seq - greatest(first_seq - 1, $2::bigint))
               over (order by last_seq rows between unbounded preceding and 1 preceding) as entries_before
           from change_batches
           where account_id = $1::uuid and last_seq > $2::bigint
           order by last_seq
           limit $3
         ) as w
         where coalesce(entries_before, 0) < $3
       ) as b
       cross join lateral (
         select ordinal, span, op, object_type, external_id, ids, added, removed from changes
         where batch_id = b.id and ordinal + span - 1 > greatest(0, $2::bigint - b.first_seq + 1)
         order by ordinal
         limit $3
       ) as c
       cross join lateral (
         select x.id, x.n from unnest(c.ids) with ordinality as x(id, n) where c.ids is not null
         union all
         select null, 1 where c.ids is null
       ) as e
       where c.ordinal + e.n - 1 > greatest(0, $2::bigint - b.first_seq + 1)
       order by b.last_seq, c.ordinal, e.n
       limit $3
     )
     , sized as (
     select (p.first_seq + p.ordinal - 1)::text as cursor, ${isoText('p.published_at')} as "occurredAt",
       p.integration_id as "integrationId", p.run_id as "runId", p.op, p.object_type as "objectType", p.external_id as "externalId",
       coalesce(p.added, '[]'::jsonb) as added, coalesce(p.removed, '[]'::jsonb) as removed,
       o.type as o_type, o.dn as o_dn, o.attributes as o_attributes, o.deleted_at is not null as o_deleted,
       ${isoText('o.deleted_at')} as "o_deletedAt", ${isoText('o.created_at')} as "o_createdAt", ${isoText('o.updated_at')} as "o_updatedAt",
       p.last_seq, p.ordinal, count(*) over ()::int as page_rows,
       coalesce(sum(coalesce(octet_length(p.added::text), 0) + coalesce(octet_length(p.removed::text), 0) + coalesce(octet_length(o.attributes::text), 0))
         over (order by p.last_seq, p.ordinal rows between unbounded preceding and 1 preceding), 0) as bytes_before
     from page p
     left join directory_objects o on p.op in (1, 2, 3) and o.integration_id = p.integration_id and o.external_id = p.external_id
     )
     select * from sized where bytes_before < $4
     order by last_seq, ordinal`,
    [accountId, after, limit + 1, maxChangePageBytes],
  );
  // Pruning may have committed between the check above and the page's snapshot: the page then
  // starts after a gap. Checked again now, so a consumer is told to resync instead.
  const since = await changeHead(sql, accountId);
  if (position < BigInt(since.prunedThrough)) return { refused: 'expired', head: since.head };
  const hasMore = rows.length > limit || (rows[0]?.page_rows ?? 0) > rows.length;
  const items = rows.slice(0, limit).map((row): ChangeRow => {
    const type = kinds[row.op];
    if (type === undefined) throw new Error(`unknown change op ${row.op}`);
    const object: ChangedObjectRow | null =
      row.op <= changeOps.restored && row.o_type !== null
        ? {
            externalId: row.externalId,
            type: row.o_type,
            dn: (row.o_dn as string | null) ?? null,
            attributes: row.o_attributes as Record<string, unknown>,
            deleted: row.o_deleted as boolean,
            deletedAt: (row.o_deletedAt as string | null) ?? null,
            createdAt: row.o_createdAt as string,
            updatedAt: row.o_updatedAt as string,
          }
        : null;
    return {
      cursor: row.cursor,
      occurredAt: row.occurredAt,
      integrationId: row.integrationId,
      runId: row.runId,
      type,
      objectType: row.objectType,
      externalId: row.externalId,
      added: row.added,
      removed: row.removed,
      object,
    };
  });
  return { items, cursor: items.at(-1)?.cursor ?? after, hasMore };
}

/** Default hours a change feed entry is kept (`DIRSYNC_CHANGE_RETENTION_HOURS`). */
export const defaultChangeRetentionHours = 168;

/** What {@link pruneChanges} may delete. */
export interface ChangeRetention {
  /** Entries committed more than this many hours ago go (0: kept for ever). */
  readonly hours: number;
  /** Entries one statement deletes at most, give or take one batch (default 1000). */
  readonly batchSize?: number | undefined;
}

/**
 * Deletes one bounded batch of old feed entries: whole write batches, oldest commit first, up to
 * about `batchSize` entries (at least one batch), and records per account the last cursor pruned,
 * so a consumer still behind it is told to resync instead of silently missing entries. Returns
 * the number of entries deleted; fewer than `batchSize` means nothing more is due now.
 */
export async function pruneChanges(db: Handle, retention: ChangeRetention): Promise<number> {
  const batchSize = retention.batchSize ?? 1000;
  if (!Number.isFinite(retention.hours) || retention.hours < 0) throw new RangeError('change retention hours must be 0 or more');
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) throw new RangeError('retention batch size must be 1–100000');
  if (retention.hours === 0) return 0;
  const cutoffSeconds = Math.round(retention.hours * 3600);
  const sql = raw(db);
  // Batches are taken in commit order through their published_at index, at most `batchSize` of
  // them (each holds one entry or more), then cut where their entries pass `batchSize`.
  const [row] = await sql<{ deleted: number }[]>`
    with oldest as (
      select id, account_id, last_seq, entries, sum(entries) over (order by published_at, id) as running
      from (
        select id, account_id, last_seq, entries, published_at from change_batches
        where last_seq is not null and published_at < now() - make_interval(secs => ${cutoffSeconds})
        order by published_at, id
        limit ${batchSize}
      ) as due
    ),
    chosen as (
      select id, account_id, last_seq, entries from oldest
      where running <= ${batchSize} or running = entries
    ),
    gone as (
      delete from change_batches b using chosen c where b.id = c.id returning b.account_id, b.last_seq, b.entries
    ),
    marked as (
      update change_cursors k set pruned_through = greatest(k.pruned_through, g.through)
      from (select account_id, max(last_seq) as through from gone group by account_id) as g
      where k.account_id = g.account_id
      returning 1
    )
    select coalesce(sum(entries), 0)::int as deleted from gone`;
  return row?.deleted ?? 0;
}
