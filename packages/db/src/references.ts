import type postgres from 'postgres';
import type { Db } from './client.ts';

/**
 * Dangling references: what the source refers to but dirsync cannot store as a reference yet.
 * - `member`: a group lists a member DN that matches no synced object (not yet created, outside
 *   the scope, deleted). Kept per group while the group's last complete member list says so;
 *   the edge is made by whichever run stores an object at that DN.
 * - `manager`: an object's manager was deleted, so the attribute was cleared; it comes back when
 *   the manager is restored, as long as the holder was not rewritten from the source meanwhile.
 * Set-based like the rest of the pipeline's SQL: one statement per batch.
 */

type RawSql = postgres.Sql | postgres.TransactionSql;
/** A drizzle handle, a postgres.js pool or a transaction (the objects repository's `ObjectSql`). */
type ObjectSql = Db | RawSql;

function raw(handle: ObjectSql): RawSql {
  return '$client' in handle ? handle.$client : handle;
}

/** Prefix of the content hash of an object whose manager was cleared (see {@link clearedHash}). */
const clearedPrefix = 'cleared:';

/**
 * The content hash stored on an object whose manager was cleared: never a real hash, so the next
 * read of the object from the source rewrites it, and recognisable, so a restore can tell that the
 * object was not rewritten since.
 */
export function clearedHash(contentHash: string): string {
  return `${clearedPrefix}${contentHash}`;
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
      returning 1
    )
    select (select count(*) from added)::int as added`;
  return row?.added ?? 0;
}

/**
 * Gives restored objects back as manager to the objects whose `manager` was cleared when they
 * were deleted, unless such an object was rewritten from the source since (then the source's
 * value stands). The holders get their content hash from before the clearing back. Returns the
 * objects relinked.
 */
export async function relinkManagers(handle: ObjectSql, integrationId: string, restoredIds: readonly string[]): Promise<number> {
  if (restoredIds.length === 0) return 0;
  const sql = raw(handle);
  const result = await sql`
    with hits as (
      delete from dangling_references r
      where r.integration_id = ${integrationId} and r.attribute = 'manager' and r.target = any(${restoredIds}::text[])
      returning r.source_external_id, r.target, r.restore_hash
    )
    update directory_objects o set
      attributes = jsonb_set(o.attributes, '{manager}', to_jsonb(h.target)),
      content_hash = h.restore_hash,
      updated_at = now()
    from hits h
    where o.integration_id = ${integrationId} and o.external_id = h.source_external_id
      and o.deleted_at is null and o.content_hash = ${clearedPrefix} || h.restore_hash`;
  return result.count;
}
