import { type ChangeRetention, pruneChanges } from './changes.ts';
import { pruneWebhookDeliveries } from './webhooks.ts';
import type { Db } from './client.ts';
import { finalRunStatuses } from '@dirsync/contracts';

/** Default days a finished run is kept (`DIRSYNC_RUN_RETENTION_DAYS`). */
export const defaultRunRetentionDays = 30;
/** Default number of latest runs of each integration kept whatever their age (`DIRSYNC_RUN_RETENTION_KEEP`). */
export const defaultRunRetentionKeep = 50;
/** Default days an audit event is kept (`DIRSYNC_AUDIT_RETENTION_DAYS`). */
export const defaultAuditRetentionDays = 365;
/** Default rows one pruning statement deletes at most. */
export const defaultRetentionBatchSize = 1000;
/** Default statements one {@link pruneHistory} call runs at most per table. */
export const defaultRetentionMaxBatches = 20;

/** What {@link pruneRuns} and {@link pruneAudit} may delete. */
export interface RunRetention {
  /** Finished runs older than this many days may go (0: runs are kept for ever). */
  readonly days: number;
  /**
   * The latest this-many runs of each integration stay whatever their age (at least 1), so a
   * quiet integration keeps its history.
   */
  readonly keep: number;
  /** Rows one statement deletes at most (default {@link defaultRetentionBatchSize}). */
  readonly batchSize?: number | undefined;
}

/** What {@link pruneAudit} may delete. */
export interface AuditRetention {
  /** Events older than this many days go (0: audit events are kept for ever). */
  readonly days: number;
  /** Rows one statement deletes at most (default {@link defaultRetentionBatchSize}). */
  readonly batchSize?: number | undefined;
}

function checkRetention(days: number, batchSize: number): void {
  if (!Number.isFinite(days) || days < 0) throw new RangeError('retention days must be 0 or more');
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) throw new RangeError('retention batch size must be 1–100000');
}

/**
 * Deletes one bounded batch of old sync runs: finished (never `queued`, `running` or
 * `retrying`), finished more than `days` ago, with at least `keep` newer runs in the same
 * integration, and not referenced: not the integration's last run or last successful run, and
 * not a `blocked` run whose approval still means something (no later successful run of its mode,
 * as `approveRun` and `findApproval` judge it). Returns the number deleted; fewer than the batch
 * size means nothing more is due now.
 *
 * The candidates are found per integration through `sync_runs_integration_idx`
 * (integration, queued_at), oldest first, so no index over all runs is needed and the statement
 * stops as soon as it has a batch.
 */
export async function pruneRuns(db: Db, retention: RunRetention): Promise<number> {
  const batchSize = retention.batchSize ?? defaultRetentionBatchSize;
  checkRetention(retention.days, batchSize);
  if (!Number.isInteger(retention.keep) || retention.keep < 1) throw new RangeError('runs kept per integration must be 1 or more');
  if (retention.days === 0) return 0;
  const cutoffSeconds = Math.round(retention.days * 86_400);
  const rows = await db.$client<{ deleted: number }[]>`
    with candidates as (
      select r.id
      from integrations i
      cross join lateral (
        select r.id
        from sync_runs r
        where r.integration_id = i.id
          and r.queued_at < now() - make_interval(secs => ${cutoffSeconds})
          and coalesce(r.finished_at, r.queued_at) < now() - make_interval(secs => ${cutoffSeconds})
          and r.status in ${db.$client([...finalRunStatuses])}
          and r.id is distinct from i.last_run_id
          and r.id is distinct from i.last_success_run_id
          and (
            r.status <> 'blocked'
            or exists (
              select 1 from sync_runs later
              where later.integration_id = r.integration_id
                and later.status = 'succeeded' and not later.dry_run
                and later.mode is not distinct from r.mode
                and later.finished_at > coalesce(r.finished_at, r.queued_at)
            )
          )
          -- At least \`keep\` newer runs: the keep-th one found ends the scan.
          and exists (
            select 1 from sync_runs newer
            where newer.integration_id = r.integration_id
              and newer.queued_at >= r.queued_at
              and (newer.queued_at, newer.id) > (r.queued_at, r.id)
            offset ${retention.keep - 1} limit 1
          )
        order by r.queued_at
        limit ${batchSize}
      ) r
      limit ${batchSize}
    ), gone as (
      delete from sync_runs s using candidates c where s.id = c.id returning 1
    )
    select count(*)::int as deleted from gone`;
  return rows[0]?.deleted ?? 0;
}

/**
 * Deletes one bounded batch of audit events older than `days`. It looks only at the `batchSize`
 * oldest events by id (the primary key; ids grow with time), so each statement reads a bounded
 * number of rows without an index on the time: an event written out of order behind a newer one
 * waits until that one is due too. Returns the number deleted.
 */
export async function pruneAudit(db: Db, retention: AuditRetention): Promise<number> {
  const batchSize = retention.batchSize ?? defaultRetentionBatchSize;
  checkRetention(retention.days, batchSize);
  if (retention.days === 0) return 0;
  const cutoffSeconds = Math.round(retention.days * 86_400);
  const rows = await db.$client<{ deleted: number }[]>`
    with oldest as (
      select id, created_at from audit_events order by id limit ${batchSize}
    ), gone as (
      delete from audit_events a using oldest o
      where a.id = o.id and o.created_at < now() - make_interval(secs => ${cutoffSeconds})
      returning 1
    )
    select count(*)::int as deleted from gone`;
  return rows[0]?.deleted ?? 0;
}

/** Options of {@link pruneHistory}. */
export interface HistoryRetention {
  readonly runs: RunRetention;
  readonly audit: AuditRetention;
  /** Change feed entries (omitted: kept for ever). */
  readonly changes?: ChangeRetention | undefined;
  /** Finished webhook deliveries and their events (omitted: kept for ever). */
  readonly webhooks?: { readonly days: number; readonly batchSize?: number | undefined } | undefined;
  /** Statements per table at most in this call (default {@link defaultRetentionMaxBatches}). */
  readonly maxBatches?: number | undefined;
}

/** What one {@link pruneHistory} call deleted. */
export interface PrunedHistory {
  readonly runs: number;
  readonly auditEvents: number;
  /** Change feed entries. */
  readonly changes: number;
  /** Webhook deliveries and events (present when `webhooks` retention was given). */
  readonly webhooks?: number | undefined;
  /** A table still had rows due when the call stopped at `maxBatches`; the next call goes on. */
  readonly more: boolean;
}

/**
 * Prunes runs, then audit events, then change feed entries, in batches (each batch its own statement and transaction, so
 * locks are short and the work done is committed as it goes), stopping per table at the first
 * short batch or after `maxBatches`.
 */
export async function pruneHistory(db: Db, retention: HistoryRetention): Promise<PrunedHistory> {
  const maxBatches = retention.maxBatches ?? defaultRetentionMaxBatches;
  if (!Number.isInteger(maxBatches) || maxBatches < 1) throw new RangeError('maxBatches must be 1 or more');
  let more = false;
  const drain = async (batch: () => Promise<number>, size: number) => {
    let total = 0;
    for (let i = 0; i < maxBatches; i++) {
      const deleted = await batch();
      total += deleted;
      if (deleted < size) return total;
    }
    more = true;
    return total;
  };
  const runs = await drain(() => pruneRuns(db, retention.runs), retention.runs.batchSize ?? defaultRetentionBatchSize);
  const auditEvents = await drain(() => pruneAudit(db, retention.audit), retention.audit.batchSize ?? defaultRetentionBatchSize);
  const feed = retention.changes;
  const changes = feed === undefined ? 0 : await drain(() => pruneChanges(db, feed), feed.batchSize ?? defaultRetentionBatchSize);
  const hooks = retention.webhooks;
  if (hooks === undefined) return { runs, auditEvents, changes, more };
  const webhooks = await drain(async () => {
    const pruned = await pruneWebhookDeliveries(db, hooks);
    // A batch is full when either table filled it: then more may be due.
    return Math.max(pruned.deliveries, pruned.events);
  }, hooks.batchSize ?? defaultRetentionBatchSize);
  return { runs, auditEvents, changes, webhooks, more };
}

/** Options of {@link pruneConsoleSignIns}. */
export interface ConsoleSignInRetention {
  /** Rows one statement deletes at most (default {@link defaultRetentionBatchSize}). */
  readonly batchSize?: number | undefined;
  /** Statements per table at most in this call (default {@link defaultRetentionMaxBatches}). */
  readonly maxBatches?: number | undefined;
}

/** What one {@link pruneConsoleSignIns} call deleted. */
export interface PrunedConsoleSignIns {
  readonly sessions: number;
  readonly links: number;
  readonly oidcLogins: number;
  /** A table still had rows due when the call stopped at `maxBatches`; the next call goes on. */
  readonly more: boolean;
}

/**
 * Deletes console sessions past their expiry, one-time links used or past their expiry, and
 * OpenID Connect sign-ins never finished in time, in bounded batches like {@link pruneHistory}.
 * Nothing of them is history worth keeping (expired ones no longer sign anyone in), so there is
 * no retention period. Each batch is found through the table's `expires_at` index, oldest first;
 * used links are few (each lives minutes).
 */
export async function pruneConsoleSignIns(db: Db, options: ConsoleSignInRetention = {}): Promise<PrunedConsoleSignIns> {
  const batchSize = options.batchSize ?? defaultRetentionBatchSize;
  const maxBatches = options.maxBatches ?? defaultRetentionMaxBatches;
  checkRetention(0, batchSize);
  if (!Number.isInteger(maxBatches) || maxBatches < 1) throw new RangeError('maxBatches must be 1 or more');
  const batches = {
    sessions: () => db.$client<{ deleted: number }[]>`
      with due as (
        select id from console_sessions where expires_at <= now() order by expires_at limit ${batchSize}
      ), gone as (
        delete from console_sessions s using due d where s.id = d.id returning 1
      )
      select count(*)::int as deleted from gone`,
    links: () => db.$client<{ deleted: number }[]>`
      with due as (
        (select id from console_sign_in_links where expires_at <= now() order by expires_at limit ${batchSize})
        union
        (select id from console_sign_in_links where used_at is not null limit ${batchSize})
        limit ${batchSize}
      ), gone as (
        delete from console_sign_in_links l using due d where l.id = d.id returning 1
      )
      select count(*)::int as deleted from gone`,
    oidcLogins: () => db.$client<{ deleted: number }[]>`
      with due as (
        select state_hash from console_oidc_logins where expires_at <= now() order by expires_at limit ${batchSize}
      ), gone as (
        delete from console_oidc_logins o using due d where o.state_hash = d.state_hash returning 1
      )
      select count(*)::int as deleted from gone`,
  };
  let more = false;
  const drain = async (batch: () => Promise<{ deleted: number }[]>) => {
    let total = 0;
    for (let i = 0; i < maxBatches; i++) {
      const deleted = (await batch())[0]?.deleted ?? 0;
      total += deleted;
      if (deleted < batchSize) return total;
    }
    more = true;
    return total;
  };
  const sessions = await drain(batches.sessions);
  const links = await drain(batches.links);
  const oidcLogins = await drain(batches.oidcLogins);
  return { sessions, links, oidcLogins, more };
}
