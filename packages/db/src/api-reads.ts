import type { Db } from './client.ts';
import { InvalidCursorError } from './errors.ts';
import { isUuid } from './ids.ts';
import { runStatuses, type RunCounts, type RunStatus, type SyncMode, type SyncTrigger } from '@dirsync/contracts';
import { directoryObjects, type RunIssue } from './schema.ts';

// Account-scoped reads of the API in SQL: every statement names the account (or an integration
// already checked to belong to it), so isolation does not depend on a check a handler might
// forget. Timestamps travel as ISO text with microseconds, which is also what cursors carry:
// a JavaScript Date would round them to milliseconds and a page boundary could skip rows.

const isoText = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** A page of rows and the cursor of the next page. */
export interface Page<T> {
  readonly items: T[];
  readonly nextCursor: string | null;
}

/** Keyset position: a timestamp (ISO text) and a tie-breaking id (an edge's: group and member). */
type Position = readonly [string, string] | readonly [string, string, string];

function encodeCursor(position: Position): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

// Exactly what isoText produces: the cursor goes back to PostgreSQL, so anything else (year
// 0000, an odd offset, 24:00) must be refused here rather than fail there.
const cursorTime = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.\d{6}Z$/;
const uuidText = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const maxBigint = 9_223_372_036_854_775_807n;

function validCursorTime(text: string): boolean {
  const parts = cursorTime.exec(text);
  if (!parts) return false;
  const [year, month, day, hour, minute, second] = parts.slice(1).map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  // Date.UTC rolls 2024-02-30 over to March: a real date reads back unchanged.
  return year >= 1 && date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day && date.getUTCHours() === hour && minute < 60 && second < 60;
}

/** What the tie-breaking half of a cursor holds: a uuid, or a positive row number. */
type CursorKey = 'uuid' | 'bigint';

function validCursorKey(text: string, kind: CursorKey): boolean {
  if (kind === 'uuid') return uuidText.test(text);
  return /^\d{1,19}$/.test(text) && BigInt(text) <= maxBigint;
}

function decodeCursor(cursor: string | undefined, key: CursorKey): Position | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string' && validCursorTime(value[0]) && validCursorKey(value[1], key)) {
      return [value[0], value[1]];
    }
  } catch {
    // reported below
  }
  throw new InvalidCursorError();
}

/**
 * The keyset start of a page, as one row value to compare `(updated_at, …keys)` with: after the
 * cursor (`time` and its `keys`, each given with a value below every stored one), and not before
 * `floor` (a time the rows must have reached; null for none), whichever comes later. One row
 * comparison, never `$time is null or …`: a generic plan cannot start an index scan at a
 * condition that may be switched off, and read every row of the integration before the page
 * instead (0.8–1.1 s deep into a million objects or five million edges).
 */
function keysetStart(time: string, keys: readonly (readonly [key: string, least: string])[], floor: string): string {
  const cursor = `${time} is not null and ${time} >= coalesce(${floor}, '-infinity'::timestamptz)`;
  const parts = keys.map(([key, least]) => `case when ${cursor} then ${key} else ${least} end`);
  return `(case when ${cursor} then ${time} else coalesce(${floor}, '-infinity'::timestamptz) end, ${parts.join(', ')})`;
}

/**
 * The keyset end of a newest-first page, as one row value to compare `(time, …keys)` with: before
 * the cursor (`time` and its `keys`, each given with a value above every stored one), or above
 * every row without a cursor. One row comparison, for the reason given at {@link keysetStart}.
 */
function keysetBefore(time: string, keys: readonly (readonly [key: string, greatest: string])[]): string {
  const parts = keys.map(([key, greatest]) => `coalesce(${key}, ${greatest})`);
  return `(coalesce(${time}, 'infinity'::timestamptz), ${parts.join(', ')})`;
}

/** {@link keysetStart} of objects: ids start at 1. */
const objectKeysetStart = (time: string, id: string, floor: string) => keysetStart(time, [[id, '0']], floor);

/**
 * Object types a listing of every type reads, each from its own stretch of the
 * `(integration_id, type, updated_at)` index (the table's check constraint allows no other).
 */
const objectTypes: readonly string[] = directoryObjects.type.enumValues;

// Edge ids are the source's (a DN can be long); a cursor holding more is not one this API made.
const maxEdgeIdLength = 8192;

/**
 * The position of a membership page: the edge's timestamp, group and member. A cursor from before
 * edges were keyed by themselves (a timestamp and a row number) resumes at its timestamp: the
 * page may repeat edges of that instant, none is skipped.
 */
function decodeEdgeCursor(cursor: string | undefined): readonly [string, string, string] | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.every((part) => typeof part === 'string') && validCursorTime(value[0] as string)) {
      const [time, group, member] = value as string[];
      if (value.length === 3 && (group as string).length <= maxEdgeIdLength && (member as string).length <= maxEdgeIdLength) {
        return [time as string, group as string, member as string];
      }
      if (value.length === 2 && validCursorKey(group as string, 'bigint')) return [time as string, '', ''];
    }
  } catch {
    // reported below
  }
  throw new InvalidCursorError();
}

function paged<R, T>(rows: readonly R[], limit: number, position: (row: R) => Position, map: (row: R) => T): Page<T> {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items: items.map(map), nextCursor: rows.length > limit && last !== undefined ? encodeCursor(position(last)) : null };
}

/** A run row as the API reads it (timestamps as ISO text). */
export interface RunRow extends RunCounts {
  id: string;
  integrationId: string;
  jobId: string | null;
  modeRequested: SyncMode;
  mode: SyncMode | null;
  trigger: SyncTrigger;
  reason: string | null;
  dryRun: boolean;
  status: RunStatus;
  requestedBy: string | null;
  issueCount: number;
  workerId: string | null;
  error: string | null;
  approvedAt: string | null;
  approvedBy: string | null;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  /** Attempts started so far (0 while queued). */
  attempt: number;
  /** Attempts the queue allows; null until the first starts. */
  maxAttempts: number | null;
  /** Error of the latest failed attempt (what a `retrying` run is retrying after). */
  lastError: string | null;
}

const runColumns = `
  r.id, r.integration_id as "integrationId", r.job_id as "jobId", r.mode_requested as "modeRequested", r.mode,
  r.trigger, r.reason, r.dry_run as "dryRun", r.status, r.requested_by as "requestedBy", r.fetched, r.created,
  r.updated, r.unchanged, r.deleted, r.restored, r.failed, r.memberships_added as "membershipsAdded",
  r.memberships_removed as "membershipsRemoved", r.would_delete as "wouldDelete", r.issue_count as "issueCount",
  r.worker_id as "workerId", r.error, ${isoText('r.approved_at')} as "approvedAt", r.approved_by as "approvedBy",
  ${isoText('r.queued_at')} as "queuedAt", ${isoText('r.started_at')} as "startedAt",
  ${isoText('r.finished_at')} as "finishedAt", r.duration_ms as "durationMs",
  r.attempt, r.max_attempts as "maxAttempts", r.last_error as "lastError"`;

/** Filter of {@link listAccountRuns}. */
export interface AccountRunFilter {
  integrationId?: string | undefined;
  status?: string | undefined;
  trigger?: string | undefined;
  since?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

/**
 * Runs of the account's integrations, newest first. A page reads the account's runs of each
 * status asked for (every status without `status`) from the cursor on, in the order of
 * `sync_runs_account_status_queued_idx`, and keeps the newest of them; with `integrationId`, the
 * integration's runs from its own index. The cursor and `since` are each one bound that any
 * plan, generic or custom, starts or stops the scan at (see {@link keysetStart} for the lists in
 * ascending order).
 */
export async function listAccountRuns(db: Db, accountId: string, filter: AccountRunFilter): Promise<Page<RunRow>> {
  const after = decodeCursor(filter.cursor, 'uuid');
  if (!isUuid(accountId)) return { items: [], nextCursor: null };
  if (filter.integrationId !== undefined && !isUuid(filter.integrationId)) return { items: [], nextCursor: null };
  const statuses = filter.status === undefined ? [...runStatuses] : [filter.status];
  const bounds = `($3::text is null or r.trigger = $3::text)
       and r.queued_at >= coalesce($4::timestamptz, '-infinity'::timestamptz)
       and (r.queued_at, r.id) < ${keysetBefore('$5::timestamptz', [['$6::uuid', "'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid"]])}`;
  // With an integration, its own index serves the page, in a statement of its own so that a
  // generic plan cannot read the account's index for it.
  const text =
    filter.integrationId === undefined
      ? `select ${runColumns}
         from unnest($2::text[]) s(status)
         cross join lateral (
           select * from sync_runs r
           where r.account_id = $1::uuid and r.status = s.status and ${bounds}
           order by r.queued_at desc, r.id desc
           limit $7) r
         order by r.queued_at desc, r.id desc
         limit $7`
      : `select ${runColumns}
         from sync_runs r
         where r.integration_id = $8::uuid and r.account_id = $1::uuid and r.status = any($2::text[]) and ${bounds}
         order by r.queued_at desc, r.id desc
         limit $7`;
  const rows = await db.$client.unsafe<RunRow[]>(text, [
    accountId,
    statuses,
    filter.trigger ?? null,
    filter.since ?? null,
    after?.[0] ?? null,
    after?.[1] ?? null,
    filter.limit + 1,
    ...(filter.integrationId === undefined ? [] : [filter.integrationId]),
  ]);
  return paged(rows, filter.limit, (row) => [row.queuedAt, row.id], (row) => row);
}

/**
 * The newest run (by queue time, whatever its status) of each of the account's integrations,
 * or of those of `integrationIds` among them, in one statement: an integration list shows its
 * last run without a query per row. Integrations without a run have no entry.
 */
export async function listLatestRuns(db: Db, accountId: string, integrationIds?: readonly string[]): Promise<Map<string, RunRow>> {
  const ids = integrationIds?.filter(isUuid);
  if (ids !== undefined && ids.length === 0) return new Map();
  const rows = await db.$client.unsafe<RunRow[]>(
    `select ${runColumns}
     from integrations i
     join lateral (select * from sync_runs s where s.integration_id = i.id order by s.queued_at desc, s.id desc limit 1) r on true
     where i.account_id = $1 and ($2::uuid[] is null or i.id = any($2::uuid[]))`,
    [accountId, ids === undefined ? null : [...ids]],
  );
  return new Map(rows.map((row) => [row.integrationId, row]));
}

/** One run of the account, or undefined (another account's run reads as absent). */
export async function getAccountRun(db: Db, accountId: string, runId: string): Promise<RunRow | undefined> {
  if (!isUuid(runId)) return undefined;
  const rows = await db.$client.unsafe<RunRow[]>(
    `select ${runColumns} from sync_runs r join integrations i on i.id = r.integration_id
     where i.account_id = $1 and r.id = $2::uuid`,
    [accountId, runId],
  );
  return rows[0];
}

/** A page of a run's stored issues, in the order the run found them. */
export async function listRunIssues(db: Db, runId: string, limit: number, cursor: string | undefined): Promise<Page<RunIssue>> {
  const after = decodeCursor(cursor, 'bigint');
  const offset = after === undefined ? 0 : Number(after[1]);
  if (!Number.isSafeInteger(offset)) throw new InvalidCursorError();
  const rows = await db.$client<{ issue: RunIssue; n: number }[]>`
    select e.issue, e.n::int as n from sync_runs r, jsonb_array_elements(r.issues) with ordinality as e(issue, n)
    where r.id = ${runId} and e.n > ${offset}
    order by e.n limit ${limit + 1}`;
  return paged(rows, limit, (row) => ['1970-01-01T00:00:00.000000Z', String(row.n)], (row) => row.issue);
}

/** An object a run changed. */
export interface RunChangeRow {
  externalId: string;
  type: string;
  dn: string | null;
  deleted: boolean;
  updatedAt: string;
  change: 'created' | 'updated' | 'deleted';
  rowId: string;
}

/**
 * Objects whose latest change happened while the run was writing (between its start and its
 * end): what it created, updated or deleted, unless a later run changed them again. A dry run
 * writes nothing, so it has none.
 */
export async function listRunChanges(db: Db, run: RunRow, limit: number, cursor: string | undefined): Promise<Page<Omit<RunChangeRow, 'rowId'>>> {
  if (run.startedAt === null || run.dryRun) return { items: [], nextCursor: null };
  const after = decodeCursor(cursor, 'bigint');
  // One page per type, then the earliest of them: each reads its stretch of the index from the
  // start of the page (the cursor, or the run's start) to the run's end.
  const rows = await db.$client.unsafe<RunChangeRow[]>(
    `select o.external_id as "externalId", o.type, o.dn, o.deleted_at is not null as deleted,
       ${isoText('o.updated_at')} as "updatedAt", o.id::text as "rowId",
       case when o.deleted_at is not null and o.deleted_at >= $2::timestamptz then 'deleted'
            when o.created_at >= $2::timestamptz then 'created' else 'updated' end as change
     from unnest($7::text[]) as k (type)
     cross join lateral (
       select * from directory_objects o
       where o.integration_id = $1::uuid and o.type = k.type
         and (o.updated_at, o.id) > ${objectKeysetStart('$4::timestamptz', '$5::bigint', '$2::timestamptz')}
         and o.updated_at <= coalesce($3::timestamptz, now())
       order by o.updated_at, o.id
       limit $6
     ) as o
     order by o.updated_at, o.id
     limit $6`,
    [run.integrationId, run.startedAt, run.finishedAt, after?.[0] ?? null, after?.[1] ?? null, limit + 1, objectTypes],
  );
  return paged(rows, limit, (row) => [row.updatedAt, row.rowId], ({ rowId: _rowId, ...row }) => row);
}

/** Filter of the synced-data lists. */
export interface DirectoryFilter {
  updatedSince?: string | undefined;
  includeDeleted?: boolean | undefined;
  limit: number;
  cursor?: string | undefined;
}

/** A synced object as the API reads it. */
export interface ObjectRow {
  externalId: string;
  type: string;
  dn: string | null;
  attributes: Record<string, unknown>;
  deleted: boolean;
  deletedAt: string | null;
  createdAt: string;
  updatedAt: string;
  rowId: string;
}

/**
 * Synced objects of an integration, of one type or (`type` undefined) of every type, oldest change
 * first (a feed with `updatedSince`).
 */
export async function listObjects(
  db: Db,
  integrationId: string,
  type: 'user' | 'group' | 'contact' | undefined,
  filter: DirectoryFilter,
): Promise<Page<Omit<ObjectRow, 'rowId'>>> {
  const after = decodeCursor(filter.cursor, 'bigint');
  const includeDeleted = filter.includeDeleted ?? filter.updatedSince !== undefined;
  const rows = await db.$client.unsafe<ObjectRow[]>(
    `select o.external_id as "externalId", o.type, o.dn, o.attributes, o.deleted_at is not null as deleted,
       ${isoText('o.deleted_at')} as "deletedAt", ${isoText('o.created_at')} as "createdAt",
       ${isoText('o.updated_at')} as "updatedAt", o.id::text as "rowId"
     from unnest($2::text[]) as k (type)
     cross join lateral (
       select * from directory_objects o
       where o.integration_id = $1::uuid and o.type = k.type
         and ($3::boolean or o.deleted_at is null)
         and (o.updated_at, o.id) > ${objectKeysetStart('$5::timestamptz', '$6::bigint', '$4::timestamptz')}
       order by o.updated_at, o.id
       limit $7
     ) as o
     order by o.updated_at, o.id
     limit $7`,
    [integrationId, type === undefined ? objectTypes : [type], includeDeleted, filter.updatedSince ?? null, after?.[0] ?? null, after?.[1] ?? null, filter.limit + 1],
  );
  return paged(rows, filter.limit, (row) => [row.updatedAt, row.rowId], ({ rowId: _rowId, ...row }) => row);
}

/** One synced object (deleted ones included), by its external id, or undefined. */
export async function getObject(db: Db, integrationId: string, externalId: string): Promise<Omit<ObjectRow, 'rowId'> | undefined> {
  const rows = await db.$client.unsafe<Omit<ObjectRow, 'rowId'>[]>(
    `select o.external_id as "externalId", o.type, o.dn, o.attributes, o.deleted_at is not null as deleted,
       ${isoText('o.deleted_at')} as "deletedAt", ${isoText('o.created_at')} as "createdAt",
       ${isoText('o.updated_at')} as "updatedAt"
     from directory_objects o
     where o.integration_id = $1::uuid and o.external_id = $2`,
    [integrationId, externalId],
  );
  return rows[0];
}

/** The other end of a live membership edge, as stored. */
export interface LinkedObjectRow {
  externalId: string;
  type: string;
  dn: string | null;
  /** `attributes.displayName` of the object, when it has one. */
  displayName: string | null;
}

/** Where an object stands in the synced memberships. */
export interface ObjectLinks {
  /** Groups it is a direct member of. */
  memberOf: LinkedObjectRow[];
  /** Its direct members (a group's; empty for others). */
  members: LinkedObjectRow[];
  /** Member DNs its group lists that match no synced object (yet). */
  unresolvedMembers: string[];
}

/** The live memberships of an object in both directions, each list ordered by DN. */
export async function getObjectLinks(db: Db, integrationId: string, externalId: string): Promise<ObjectLinks> {
  const sql = db.$client;
  // A left join: an edge whose other end is gone still shows, with its external id alone.
  const [memberOf, members, unresolved] = await Promise.all([
    sql<LinkedObjectRow[]>`
      select m.group_external_id as "externalId", coalesce(o.type, 'group') as type, o.dn,
        o.attributes ->> 'displayName' as "displayName"
      from memberships m
      left join directory_objects o
        on o.integration_id = m.integration_id and o.external_id = m.group_external_id and o.deleted_at is null
      where m.integration_id = ${integrationId} and m.member_external_id = ${externalId} and m.deleted_at is null
      order by o.dn nulls last, m.group_external_id`,
    sql<LinkedObjectRow[]>`
      select m.member_external_id as "externalId", coalesce(o.type, 'unknown') as type, o.dn,
        o.attributes ->> 'displayName' as "displayName"
      from memberships m
      left join directory_objects o
        on o.integration_id = m.integration_id and o.external_id = m.member_external_id and o.deleted_at is null
      where m.integration_id = ${integrationId} and m.group_external_id = ${externalId} and m.deleted_at is null
      order by o.dn nulls last, m.member_external_id`,
    sql<{ target: string }[]>`
      select target from dangling_references
      where integration_id = ${integrationId} and attribute = 'member' and source_external_id = ${externalId}
      order by target`,
  ]);
  return { memberOf: [...memberOf], members: [...members], unresolvedMembers: unresolved.map((row) => row.target) };
}

/** A membership edge as the API reads it. */
export interface MembershipRow {
  groupExternalId: string;
  memberExternalId: string;
  deleted: boolean;
  deletedAt: string | null;
  updatedAt: string;
}

/** Membership edges of an integration, oldest change first. External ids are never empty. */
export async function listMemberships(db: Db, integrationId: string, filter: DirectoryFilter): Promise<Page<MembershipRow>> {
  const after = decodeEdgeCursor(filter.cursor);
  const includeDeleted = filter.includeDeleted ?? filter.updatedSince !== undefined;
  const rows = await db.$client.unsafe<MembershipRow[]>(
    `select m.group_external_id as "groupExternalId", m.member_external_id as "memberExternalId",
       m.deleted_at is not null as deleted, ${isoText('m.deleted_at')} as "deletedAt",
       ${isoText('m.updated_at')} as "updatedAt"
     from memberships m
     where m.integration_id = $1::uuid
       and ($2::boolean or m.deleted_at is null)
       and (m.updated_at, m.group_external_id, m.member_external_id)
         > ${keysetStart('$4::timestamptz', [['$5::text', "''"], ['$6::text', "''"]], '$3::timestamptz')}
     order by m.updated_at, m.group_external_id, m.member_external_id
     limit $7`,
    [integrationId, includeDeleted, filter.updatedSince ?? null, after?.[0] ?? null, after?.[1] ?? null, after?.[2] ?? null, filter.limit + 1],
  );
  return paged(rows, filter.limit, (row) => [row.updatedAt, row.groupExternalId, row.memberExternalId], (row) => row);
}

/** What the actions list needs to know about an integration and its last run. */
export interface IntegrationHealthRow {
  id: string;
  name: string;
  kind: string;
  enabled: boolean;
  status: string;
  settings: Record<string, unknown>;
  hasSecret: boolean;
  lastRunId: string | null;
  lastRunError: string | null;
  lastRunFinishedAt: string | null;
  lastSuccessAt: string | null;
  createdAt: string;
}

/** Every integration of the account with its last run's outcome. */
export async function listIntegrationHealth(db: Db, accountId: string): Promise<IntegrationHealthRow[]> {
  return db.$client.unsafe<IntegrationHealthRow[]>(
    `select i.id, i.name, i.kind, i.enabled, i.status, i.settings, i.secret_ciphertext is not null as "hasSecret",
       i.last_run_id as "lastRunId", r.error as "lastRunError", ${isoText('r.finished_at')} as "lastRunFinishedAt",
       ${isoText('i.last_success_at')} as "lastSuccessAt", ${isoText('i.created_at')} as "createdAt"
     from integrations i left join sync_runs r on r.id = i.last_run_id
     where i.account_id = $1
     order by i.name`,
    [accountId],
  );
}

/** An audit event as the API reads it (timestamp as ISO text, id as decimal text). */
export interface AuditRow {
  id: string;
  occurredAt: string;
  actor: string;
  action: string;
  integrationId: string | null;
  details: Record<string, unknown>;
}

/** Filter of {@link listAccountAudit}. */
export interface AccountAuditFilter {
  /** Events at or after this time (ISO 8601). */
  since?: string | undefined;
  /** Events before this time (ISO 8601). */
  until?: string | undefined;
  /** Events whose actor contains this text (case-insensitive). */
  actor?: string | undefined;
  /** Events of this action; `integration.*` matches every action under `integration.`. */
  action?: string | undefined;
  integrationId?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

const likeEscaped = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/** A statement and its parameters, as `db.$client.unsafe` takes them. */
export interface Statement {
  readonly text: string;
  readonly params: (string | number | null)[];
}

/**
 * The statement of {@link listAccountAudit} (exported so that tests can check its plan). The
 * account's own events and those recorded with one of its integrations alone are two branches,
 * each read from its index in the page's order (`audit_events_account_idx`,
 * `audit_events_integration_only_idx`) and cut at the page's size: one condition on either
 * (an `or`) could use neither index's order and sorted every matching event for each page.
 */
export function accountAuditStatement(accountId: string, filter: AccountAuditFilter): Statement {
  const after = decodeCursor(filter.cursor, 'bigint');
  const action = filter.action;
  const actionPattern = action === undefined ? null : action.endsWith('.*') ? `${likeEscaped(action.slice(0, -1))}%` : likeEscaped(action);
  // The time range and the cursor are bounds of the index scan whatever the plan (see
  // {@link keysetBefore}).
  const conditions = `a.created_at >= coalesce($2::timestamptz, '-infinity'::timestamptz)
         and a.created_at < coalesce($3::timestamptz, 'infinity'::timestamptz)
         and ($4::text is null or strpos(lower(a.actor), lower($4::text)) > 0)
         and ($5::text is null or a.action like $5::text)
         and ($6::uuid is null or a.integration_id = $6::uuid)
         and (a.created_at, a.id) < ${keysetBefore('$7::timestamptz', [['$8::bigint', '9223372036854775807']])}`;
  return {
    text: `select a.id::text as id, ${isoText('a.created_at')} as "occurredAt", a.actor, a.action,
            a.integration_id as "integrationId", a.details
     from (
       (select * from audit_events a
        where a.account_id = $1 and ${conditions}
        order by a.created_at desc, a.id desc
        limit $9)
       union all
       (select * from audit_events a
        where a.account_id is null and a.integration_id in (select i.id from integrations i where i.account_id = $1) and ${conditions}
        order by a.created_at desc, a.id desc
        limit $9)
     ) a
     order by a.created_at desc, a.id desc
     limit $9`,
    params: [accountId, filter.since ?? null, filter.until ?? null, filter.actor ?? null, actionPattern, filter.integrationId ?? null, after?.[0] ?? null, after?.[1] ?? null, filter.limit + 1],
  };
}

/**
 * The account's audit events, newest first. An event recorded with only its integration (a
 * worker's credential rotation) belongs to the integration's account; an event of no account
 * (platform changes) is never shown to one.
 */
export async function listAccountAudit(db: Db, accountId: string, filter: AccountAuditFilter): Promise<Page<AuditRow>> {
  if (!isUuid(accountId)) return { items: [], nextCursor: null };
  if (filter.integrationId !== undefined && !isUuid(filter.integrationId)) return { items: [], nextCursor: null };
  const statement = accountAuditStatement(accountId, filter);
  const rows = await db.$client.unsafe<AuditRow[]>(statement.text, statement.params);
  return paged(rows, filter.limit, (row) => [row.occurredAt, row.id], (row) => row);
}
