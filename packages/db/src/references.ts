import type postgres from 'postgres';
import { feedWrite } from './changes.ts';
import type { Db } from './client.ts';

/**
 * References between stored objects that the pipeline keeps right between full syncs.
 * - Dangling member references: a group lists a member DN that matches no synced object (not yet
 *   created, outside the scope, deleted). Kept per group while the group's last complete member
 *   list says so; the edge is made by whichever run stores an object at that DN.
 * - Managers: a deleted manager is cleared from its reports (see the objects repository's
 *   deletions), and a restored one given back to the reports the directory names
 *   ({@link linkManagers}).
 * Set-based like the rest of the pipeline's SQL: one statement per batch.
 */

type RawSql = postgres.Sql | postgres.TransactionSql;
/** A drizzle handle, a postgres.js pool or a transaction (the objects repository's `ObjectSql`). */
type ObjectSql = Db | RawSql;

function raw(handle: ObjectSql): RawSql {
  return '$client' in handle ? handle.$client : handle;
}

/**
 * The pipeline's content hash of an object from its type and attributes: objects whose attributes
 * the database changes itself (a manager cleared or given back) get the hash a read of the same
 * content from the source would have, so the next read finds them unchanged.
 */
export type ContentHasher = (type: string, attributes: Record<string, unknown>) => string;

/** An object whose attributes were just changed by the database, as it now stands. */
export interface HeldAttributes {
  readonly externalId: string;
  readonly type: string;
  readonly attributes: Record<string, unknown>;
}

/** Stores the content hashes of objects whose attributes were rewritten in place. */
export async function setContentHashes(
  handle: ObjectSql,
  integrationId: string,
  objects: readonly HeldAttributes[],
  contentHashOf: ContentHasher,
): Promise<void> {
  if (objects.length === 0) return;
  const sql = raw(handle);
  const ids = objects.map((o) => o.externalId);
  const hashes = objects.map((o) => contentHashOf(o.type, o.attributes));
  await sql`
    update directory_objects o set content_hash = u.hash
    from unnest(${ids}::text[], ${hashes}::text[]) as u(id, hash)
    where o.integration_id = ${integrationId} and o.external_id = u.id`;
}

/** The member DNs of one group that matched no synced object when its member list was written. */
export interface GroupDanglingMembers {
  readonly groupExternalId: string;
  /** Empty when every reference resolved. */
  readonly dns: readonly string[];
}

/**
 * Makes the stored dangling member DNs of each group equal to `dns`: the group's complete member
 * list was just written, so what it lists and what did not resolve is known exactly.
 */
export async function replaceDanglingMembers(
  handle: ObjectSql,
  integrationId: string,
  groups: readonly GroupDanglingMembers[],
): Promise<void> {
  if (groups.length === 0) return;
  const sql = raw(handle);
  const groupIds = groups.map((g) => g.groupExternalId);
  const pairGroups: string[] = [];
  const pairDns: string[] = [];
  for (const group of groups) {
    for (const dn of group.dns) {
      pairGroups.push(group.groupExternalId);
      pairDns.push(dn);
    }
  }
  await sql`
    with wanted as materialized (
      select distinct g, d from unnest(${pairGroups}::text[], ${pairDns}::text[]) as w(g, d)
    ),
    stale as (
      delete from dangling_references r
      where r.integration_id = ${integrationId} and r.attribute = 'member'
        and r.source_external_id = any(${groupIds}::text[])
        and not exists (select 1 from wanted w where w.g = r.source_external_id and w.d = r.target)
      returning 1
    )
    insert into dangling_references (integration_id, attribute, target, source_external_id)
    select ${integrationId}, 'member', d, g from wanted
    on conflict do nothing`;
}

/** An object just stored under a DN it did not have (created, restored, renamed or moved in). */
export interface ArrivedObject {
  readonly externalId: string;
  readonly dn: string;
  /**
   * Whether groups still listing the DN as a dangling member get the edge. False when the source
   * reported the object's own group list (AD `memberOf`), which is then the truth: a DN some group
   * listed before belonged to another object (moved or deleted since).
   */
  readonly link: boolean;
}

/**
 * Makes the edges that dangling member references at the arrived objects' DNs were waiting for
 * (live groups only), and forgets those references. Returns the edges added or restored.
 */
export async function linkArrivedObjects(
  handle: ObjectSql,
  integrationId: string,
  runId: string,
  arrived: readonly ArrivedObject[],
): Promise<number> {
  if (arrived.length === 0) return 0;
  const sql = raw(handle);
  const ids = arrived.map((a) => a.externalId);
  const dns = arrived.map((a) => a.dn);
  // As text: postgres.js sends a plain parameter of booleans as a scalar, not an array.
  const links = arrived.map((a) => (a.link ? 'true' : 'false'));
  const [row] = await sql<{ added: number }[]>`
    with arrived as materialized (
      select id, dn, link::boolean as link from unnest(${ids}::text[], ${dns}::text[], ${links}::text[]) as a(id, dn, link)
    ),
    hits as (
      delete from dangling_references r using arrived a
      where r.integration_id = ${integrationId} and r.attribute = 'member' and r.target = a.dn
      returning r.source_external_id as g, a.id as m, a.link
    ),
    edges as (
      select distinct h.g, h.m from hits h
      join directory_objects o on o.integration_id = ${integrationId} and o.external_id = h.g
        and o.deleted_at is null and o.type = 'group'
      where h.link and h.g <> h.m
    ),
    added as (
      insert into memberships (integration_id, group_external_id, member_external_id, last_seen_run_id)
      select ${integrationId}, g, m, ${runId} from edges
      on conflict (integration_id, group_external_id, member_external_id) do update set
        deleted_at = null, last_seen_run_id = excluded.last_seen_run_id, updated_at = now()
      where memberships.deleted_at is not null
      returning group_external_id, member_external_id
    ),
    feed as (
      select 0 as k, 5::smallint as op, null::text as object_type, group_external_id as external_id,
        jsonb_agg(member_external_id) as added, null::jsonb as removed
      from added group by group_external_id
    )${feedWrite(sql, integrationId, runId)}
    select (select count(*) from added)::int as added`;
  return row?.added ?? 0;
}

/** An object the directory says is managed by another one (AD `directReports`, read back). */
export interface ManagerLink {
  readonly holderExternalId: string;
  readonly managerExternalId: string;
}

/**
 * Sets `manager` on live objects whose stored manager differs from what the directory says (a
 * restored manager's reports, whose own entries did not change), with their content hash
 * recomputed, each logged to the change feed as an update by `runId`. Returns the objects changed.
 */
export async function linkManagers(
  handle: ObjectSql,
  integrationId: string,
  links: readonly ManagerLink[],
  contentHashOf: ContentHasher,
  runId: string | null = null,
): Promise<number> {
  if (links.length === 0) return 0;
  const sql = raw(handle);
  const holders = links.map((l) => l.holderExternalId);
  const managers = links.map((l) => l.managerExternalId);
  const rows = await sql<{ external_id: string; type: string; attributes: Record<string, unknown> }[]>`
    with linked as (
      update directory_objects o set attributes = jsonb_set(o.attributes, '{manager}', to_jsonb(l.manager)), updated_at = now()
      from (select distinct on (holder) holder, manager from unnest(${holders}::text[], ${managers}::text[]) as u(holder, manager)) as l
      where o.integration_id = ${integrationId} and o.external_id = l.holder and o.deleted_at is null
        and (o.attributes ->> 'manager') is distinct from l.manager
      returning o.external_id, o.type, o.attributes
    ),
    feed as (
      select 0 as k, 2::smallint as op, type as object_type, external_id, null::jsonb as added, null::jsonb as removed from linked
    )${feedWrite(sql, integrationId, runId)}
    select external_id, type, attributes from linked`;
  await setContentHashes(
    sql,
    integrationId,
    rows.map((row) => ({ externalId: row.external_id, type: row.type, attributes: row.attributes })),
    contentHashOf,
  );
  return rows.length;
}
