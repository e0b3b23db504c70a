import {
  type ArrivedObject,
  clearMemberHashesAround,
  insertObjects,
  linkArrivedObjects,
  loadObjectAttributes,
  linkManagers,
  type ManagerLink,
  type ObjectSql,
  type ObjectWrite,
  stampObjects,
  type StoredObjectState,
  tentatively,
  writeObjects,
} from '@dirsync/db';
import type { CanonicalObject, JsonValue, MemberRef } from '@dirsync/providers';
import { inLanes, laneOf, minPartWeight, type SyncContext, type Tally, unfork } from './context.ts';
import { decideObject } from './decide.ts';
import { contentHash, contentHashOf, stableJson } from './hash.ts';
import type { GroupToSync, MemberOfToLink, MemberSync, PreparedMembers } from './members.ts';

/** A mapped object with its canonical attribute text and content hash, ready to compare and write. */
export interface PreparedObject extends ObjectWrite {
  /** The group's complete member list, when the source reported one. */
  readonly members: readonly MemberRef[] | undefined;
  /** The groups the object is a direct member of, when the source reported them. */
  readonly memberOf: readonly MemberRef[] | undefined;
  /** The objects it manages, when the source reported them. */
  readonly directReports: readonly MemberRef[] | undefined;
  /**
   * Set when the source sent only some attributes ({@link CanonicalObject.partial}): what it
   * carried and cleared, merged over the stored attributes before the object is compared.
   * `attributesJson` and `contentHash` then cover only what it carried.
   */
  readonly partial: PartialAttributes | undefined;
  /** Listed earlier in the same run ({@link CanonicalObject.repeat}): written if it differs, not counted. */
  readonly repeat: boolean;
}

/** The attributes a partial record carried and the ones it cleared. */
export interface PartialAttributes {
  readonly attributes: { readonly [key: string]: JsonValue };
  readonly cleared: readonly string[];
}

/** One batch of prepared objects, and the ids of entries that failed (kept from the sweep). */
export interface ObjectBatch {
  /** Unique by external id, in fetch order. */
  readonly objects: readonly PreparedObject[];
  readonly failedIds: readonly string[];
  /** The batch's groups' references hashed (and resolved) ahead of the step, by external id. */
  readonly preparedMembers?: ReadonlyMap<string, PreparedMembers> | undefined;
}

// jsonb cannot hold U+0000; the JSON text escapes it as \u0000.
const nulEscape = '\\u0000';

/**
 * Serialises and hashes a mapped object (CPU work, done while the previous batch is being
 * written). Returns a reason instead when the object cannot be stored.
 */
export function prepareObject(object: CanonicalObject): PreparedObject | { readonly rejected: string } {
  const attributesJson = stableJson(object.attributes);
  if (attributesJson.includes(nulEscape)) return { rejected: 'attributes contain a NUL character, which cannot be stored' };
  return {
    externalId: object.externalId,
    type: object.type,
    dn: object.dn ?? null,
    attributesJson,
    contentHash: contentHash(object.type, attributesJson),
    members: object.members,
    memberOf: object.memberOf,
    directReports: object.directReports,
    partial: object.partial === undefined ? undefined : { attributes: object.attributes, cleared: object.partial.cleared },
    repeat: object.repeat === true,
  };
}

/**
 * `base` with a partial record's attributes over it: what the record carries replaces, what it
 * cleared goes, the rest stays. Pure.
 */
export function mergeAttributes(
  base: { readonly [key: string]: unknown },
  partial: PartialAttributes,
): { [key: string]: JsonValue } {
  const merged: { [key: string]: JsonValue } = { ...(base as { [key: string]: JsonValue }), ...partial.attributes };
  for (const name of partial.cleared) if (!Object.hasOwn(partial.attributes, name)) delete merged[name];
  return merged;
}

/** The object as a whole with `attributes`: hashed again, no longer partial. */
function withAttributes(object: PreparedObject, attributes: { readonly [key: string]: JsonValue }): PreparedObject {
  const attributesJson = stableJson(attributes);
  return { ...object, attributesJson, contentHash: contentHash(object.type as CanonicalObject['type'], attributesJson), partial: undefined };
}

/**
 * Two records of one object in one batch, `next` the later: the later wins, a partial one merged
 * over the earlier (which may be partial too). Counted once unless both are repeats.
 */
export function combineRecords(previous: PreparedObject, next: PreparedObject): PreparedObject {
  let combined = next;
  if (next.partial !== undefined) {
    if (previous.partial === undefined) {
      combined = withAttributes(next, mergeAttributes(JSON.parse(previous.attributesJson) as { [key: string]: JsonValue }, next.partial));
    } else {
      const attributes = mergeAttributes(previous.partial.attributes, next.partial);
      const cleared = new Set([...previous.partial.cleared.filter((name) => !Object.hasOwn(next.partial?.attributes ?? {}, name)), ...next.partial.cleared]);
      const attributesJson = stableJson(attributes);
      combined = { ...next, attributesJson, contentHash: contentHash(next.type as CanonicalObject['type'], attributesJson), partial: { attributes, cleared: [...cleared] } };
    }
  }
  return previous.repeat || !combined.repeat ? combined : { ...combined, repeat: false };
}

/**
 * Partial objects of a batch merged over their stored attributes (one read for the batch), so
 * that the content hash covers the whole object and a record that changes nothing is unchanged.
 * An object not stored yet is kept with what it carries. Objects that are whole stay as they are.
 */
async function completePartials(ctx: SyncContext, objects: readonly PreparedObject[]): Promise<readonly PreparedObject[]> {
  const ids: string[] = [];
  for (const object of objects) if (object.partial !== undefined) ids.push(object.externalId);
  if (ids.length === 0) return objects;
  const stored = await loadObjectAttributes(ctx.sql, ctx.integrationId, ids);
  return objects.map((object) => {
    if (object.partial === undefined) return object;
    const base = stored.get(object.externalId);
    return withAttributes(object, base === undefined ? object.partial.attributes : mergeAttributes(base, object.partial));
  });
}

/** How many of `part` are repeats, which a run counts once (at their first listing). */
function repeatsIn(part: readonly ObjectWrite[], repeats: ReadonlySet<string>): number {
  if (repeats.size === 0) return 0;
  let count = 0;
  for (const object of part) if (repeats.has(object.externalId)) count += 1;
  return count;
}

/** The stored objects the directory names as managed by each of `managers`. */
async function managerLinks(
  members: MemberSync,
  managers: readonly { readonly externalId: string; readonly reports: readonly MemberRef[] }[],
): Promise<ManagerLink[]> {
  const dns = new Set<string>();
  for (const manager of managers) for (const ref of manager.reports) if (ref.by === 'dn') dns.add(ref.value);
  const byDn = await members.resolveDns(dns);
  const links: ManagerLink[] = [];
  for (const manager of managers) {
    for (const ref of manager.reports) {
      const holder = ref.by === 'externalId' ? ref.value : byDn.get(ref.value);
      if (holder !== undefined && holder !== manager.externalId) links.push({ holderExternalId: holder, managerExternalId: manager.externalId });
    }
  }
  return links;
}

const byExternalId = (object: { readonly externalId: string }) => object.externalId;

/** The unique index of stored objects: what an insert of an object that exists runs into. */
const objectKey = 'directory_objects_integration_external_uq';

function isStoredAlready(error: unknown): boolean {
  const e = error as { code?: unknown; constraint_name?: unknown } | null;
  return e?.code === '23505' && e.constraint_name === objectKey;
}

/**
 * First sync of an empty integration: inserts the batch without stamping it first (nothing can be
 * stored yet, so the stamp would find nothing). An object the fetch listed twice makes its part's
 * insert fail whole; those objects are returned, and the run stops assuming (see
 * {@link SyncContext.assumeAbsent}).
 */
async function insertAssumingAbsent(ctx: SyncContext, objects: readonly PreparedObject[], repeats: ReadonlySet<string>): Promise<PreparedObject[]> {
  const { integrationId, runId } = ctx;
  const refused = await inLanes(ctx, objects, byExternalId, async (part, sql, tally) => {
    try {
      const inserted = await tentatively(sql, (handle) => insertObjects(handle, integrationId, runId, part));
      // Added after the await: `tally.created += await …` would read the count before it.
      tally.created += inserted - repeatsIn(part, repeats);
      return [];
    } catch (error) {
      if (!isStoredAlready(error)) throw error;
      return part;
    }
  });
  const rest = refused.flat();
  if (rest.length > 0) ctx.assumeAbsent = false;
  return rest;
}

/**
 * Object stage for one batch, a handful of statements whatever its size (each possibly split
 * across connections): stamp every fetched id with the run while reading the stored state,
 * insert what is new, rewrite what changed or came back, clear the members hash of groups whose
 * edges a DN change may have made wrong, make the references that waited for the objects that
 * arrived (dangling member DNs, the groups a moved-in object belongs to, the reports of a
 * restored manager), then the members of the batch's groups (after their members' DNs are
 * stored).
 */
export async function syncObjectBatch(ctx: SyncContext, members: MemberSync, batch: ObjectBatch): Promise<void> {
  const { integrationId, runId, counts } = ctx;
  let work = batch.objects.length;
  for (const object of batch.objects) work += object.members?.length ?? 0;
  if (work < minPartWeight * ctx.parallelism) unfork(ctx);
  // Read in the step's transaction, after the previous batch committed: a repeat merges over
  // what its earlier record wrote.
  const objects = await completePartials(ctx, batch.objects);
  const repeats = new Set<string>();
  for (const object of objects) if (object.repeat) repeats.add(object.externalId);
  const optimistic = ctx.assumeAbsent;
  const candidates = optimistic ? await insertAssumingAbsent(ctx, objects, repeats) : objects;
  const stored = new Map<string, StoredObjectState>();
  if (!optimistic || candidates.length > 0) {
    // Stamping the failed ids protects them too: a full sync's sweep must not delete what the
    // source still has just because one record could not be read.
    const stampIds = [...batch.failedIds];
    for (const object of candidates) stampIds.push(object.externalId);
    for (const part of await inLanes(ctx, stampIds, (id) => id, (ids, sql) => stampObjects(sql, integrationId, runId, ids))) {
      for (const [id, state] of part) stored.set(id, state);
    }
  }

  const inserts: ObjectWrite[] = [];
  const rewrites: ObjectWrite[] = [];
  const restored = new Set<string>();
  const arrived: ArrivedObject[] = [];
  const managers: { readonly externalId: string; readonly reports: readonly MemberRef[] }[] = [];
  const joined: MemberOfToLink[] = [];
  const dnChanges = { writtenIds: [] as string[], dns: [] as string[], renamedIds: [] as string[] };
  const unchanged = new Set<string>();
  for (const object of candidates) {
    const state = stored.get(object.externalId);
    switch (decideObject(state, object)) {
      case 'create':
        inserts.push(object);
        break;
      case 'update':
        // The decision travels with the row: the change feed logs it as it is.
        rewrites.push({ ...object, change: 'update' });
        break;
      case 'restore':
        restored.add(object.externalId);
        rewrites.push({ ...object, change: 'restore' });
        break;
      case 'unchanged':
        if (!object.repeat) counts.unchanged += 1;
        unchanged.add(object.externalId);
        continue;
    }
    const gainedDn = object.dn !== null && (state === undefined || state.deleted || state.dn !== object.dn);
    if (gainedDn && ctx.storedAtStart) {
      dnChanges.writtenIds.push(object.externalId);
      dnChanges.dns.push(object.dn as string);
      arrived.push({ externalId: object.externalId, dn: object.dn as string, link: object.memberOf === undefined });
    }
    if (state === undefined || state.deleted) {
      if (object.memberOf !== undefined) joined.push({ externalId: object.externalId, memberOf: object.memberOf });
      if (object.directReports !== undefined && object.directReports.length > 0) {
        managers.push({ externalId: object.externalId, reports: object.directReports });
      }
    }
    if (state !== undefined && !state.deleted && state.dn !== null && state.dn !== object.dn) dnChanges.renamedIds.push(object.externalId);
  }
  // What follows reads and writes rows of any lane: from here the step writes in its own
  // transaction only, which then holds everything it depends on.
  if (arrived.length > 0 || dnChanges.renamedIds.length > 0 || joined.length > 0 || managers.length > 0) unfork(ctx);
  // Counted as written, in the transaction that writes them, so a run's counts cover every attempt.
  const insert = (part: ObjectWrite[], sql: ObjectSql, tally: Tally) =>
    insertObjects(sql, integrationId, runId, part).then(() => {
      tally.created += part.length - repeatsIn(part, repeats);
    });
  const rewrite = (part: ObjectWrite[], sql: ObjectSql, tally: Tally) =>
    writeObjects(sql, integrationId, runId, part).then(() => {
      for (const object of part) {
        if (repeats.has(object.externalId)) continue;
        if (restored.has(object.externalId)) tally.restored += 1;
        else tally.updated += 1;
      }
    });
  if (ctx.fork === undefined) {
    // Objects of one batch are disjoint, so inserts and rewrites cannot wait on each other.
    await Promise.all([inLanes(ctx, inserts, byExternalId, insert), inLanes(ctx, rewrites, byExternalId, rewrite)]);
  } else {
    // One after the other: each forks a connection per lane.
    await inLanes(ctx, inserts, byExternalId, insert);
    await inLanes(ctx, rewrites, byExternalId, rewrite);
  }
  const { sql } = ctx;
  // Members written in this step's own transaction are not committed before it: edges to them are
  // written there too, so they cannot outlive them.
  const pending = new Set<string>();
  if (ctx.fork !== undefined) {
    for (const object of [...inserts, ...rewrites]) if (laneOf(object.externalId, ctx.parallelism) === 0) pending.add(object.externalId);
  }
  const cleared = new Set(await clearMemberHashesAround(sql, integrationId, dnChanges));
  // Groups that listed a DN nobody held, the groups an object says it belongs to and the objects
  // it says it manages were waiting for exactly these objects; the source will not report those
  // groups or reports again, their entries did not change.
  counts.membershipsAdded += await linkArrivedObjects(sql, integrationId, runId, arrived);
  await members.linkMemberOf(joined);
  if (managers.length > 0) counts.updated += await linkManagers(sql, integrationId, await managerLinks(members, managers), contentHashOf, runId);

  const groups: GroupToSync[] = [];
  for (const object of objects) {
    const state = stored.get(object.externalId);
    members.remember(object.externalId, object.dn, state?.dn ?? null, !unchanged.has(object.externalId));
    if (object.members === undefined) continue;
    groups.push({
      externalId: object.externalId,
      members: object.members,
      isNew: state === undefined,
      // A restored group's hash was cleared when it was deleted; a cleared one was read before.
      storedMembersHash: state === undefined || state.deleted || cleared.has(object.externalId) ? null : state.membersHash,
    });
  }
  await members.syncGroups(groups, pending, batch.preparedMembers);
}
