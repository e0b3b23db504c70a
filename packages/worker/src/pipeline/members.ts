import {
  analyzeObjects,
  applyMembershipChanges,
  type GroupDanglingMembers,
  type GroupMemberSet,
  insertMemberships,
  type MembershipEdge,
  replaceDanglingMembers,
  replaceMemberships,
  resolveDns,
  tentatively,
} from '@dirsync/db';
import type { MemberDelta, MemberRef } from '@dirsync/providers';
import { chunks, inLanes, inParallel, type SyncContext } from './context.ts';
import { DnCache } from './dn-cache.ts';
import { memberRefsHash } from './hash.ts';

/**
 * A group whose complete member list the source reported, with the members hash stored for it
 * (null when none is stored, or when this run cleared it).
 */
export interface GroupToSync {
  readonly externalId: string;
  readonly members: readonly MemberRef[];
  readonly storedMembersHash: string | null;
  /** The group had no stored row before this run wrote it, so it should have no stored edges. */
  readonly isNew: boolean;
}

/** A member set ready to write, and whether its group should have no stored edges yet. */
interface ReadyGroup extends GroupMemberSet {
  readonly isNew: boolean;
}

/** An object that just came into scope, with the groups the source says it is a direct member of. */
export interface MemberOfToLink {
  readonly externalId: string;
  readonly memberOf: readonly MemberRef[];
}

/**
 * A group's references hashed, and resolved against the DN cache, ahead of its write step (see
 * {@link MemberSync.prepare}).
 */
export interface PreparedMembers {
  readonly refsHash: string;
  /** What the cache resolved, read at {@link PreparedMembers.cacheVersion}; undefined when not resolved ahead. */
  readonly resolved: Set<string> | undefined;
  /** DNs the cache did not know then. */
  readonly missed: string[] | undefined;
  readonly cacheVersion: number;
}

/** A group with DN references not resolvable yet (a nested group that comes later in the fetch). */
interface DeferredGroup {
  readonly externalId: string;
  readonly isNew: boolean;
  readonly refsHash: string;
  readonly resolved: Set<string>;
  readonly unresolvedDns: string[];
}

/** Largest number of DNs sent to one resolution query at the end of a run. */
const resolveChunk = 10_000;
/** Largest number of groups written by one statement at the end of a run. */
const groupChunk = 500;
/**
 * DNs of stored objects kept in memory for resolution (about 150 bytes each): enough for the
 * objects of a large directory, small enough to keep a worker's memory flat beyond that. Each of
 * the cache's two generations (65,000) fits a Map's table of 2^16 entries. V8 doubles a table
 * that fills: measured with 60-character DNs, a generation of 75,000 took 12.7 MB of heap and
 * one of 65,000 takes 9.7 MB.
 */
const defaultDnCacheEntries = 130_000;
/**
 * Objects a run writes before it refreshes the objects table's statistics (see
 * {@link MemberSync.refreshStatistics}). With statistics older than an integration's rows the
 * planner takes the integration for a few rows: at a million users, resolving 10,000 DNs took
 * 0.4–0.6 s instead of 0.16 s, and each batch's stamp read every object of the integration (the
 * unchanged full sync's database CPU fell from 29–32 s to 13.5 s once the table was analyzed).
 */
const defaultAnalyzeAfterWrites = 50_000;

function isStoredEdge(error: unknown): boolean {
  const e = error as { code?: unknown; constraint_name?: unknown } | null;
  return e?.code === '23505' && e.constraint_name === 'memberships_edge_uq';
}

function uniqueDns(refs: Iterable<MemberRef>, into: Set<string>): void {
  for (const ref of refs) if (ref.by === 'dn') into.add(ref.value);
}

/**
 * Membership stage of the pipeline. Groups are written batch by batch, right after the objects of
 * their batch (whose DNs must be stored first). Only groups with references that cannot be
 * resolved yet are kept in memory, and resolved once more when the fetch is over.
 *
 * A group's `members_hash` is the hash of the member references it was last written from
 * ({@link memberRefsHash}), stored only when every reference resolved. Invariant: while a group
 * has a members hash, its live edges are exactly what its references resolve to now. A group
 * whose references hash to its stored hash is therefore skipped without resolving anything
 * (the unchanged full sync's 500,000 references cost nothing). Everything that can change what
 * references resolve to clears the hash of the groups concerned, in the same run:
 * - a group with an unresolved reference keeps no hash, so its next complete member list is
 *   resolved again; the unresolved DNs are stored as dangling member references, and the run that
 *   stores an object at such a DN (created, restored, renamed or moved in, by a delta or a full
 *   sync) adds the edge, even when the group itself is not read again (`linkArrivedObjects`);
 * - deleting an object clears the hash of every group that loses an edge to it and keeps its DN as
 *   a dangling member reference of those groups (`softDelete`), so a restore is picked up the
 *   same way;
 * - an object that comes into scope with its own group list (AD `memberOf`, read by deltas)
 *   gets the edges to the synced groups it names ({@link MemberSync.linkMemberOf}): those groups
 *   did not change, so they are not read again;
 * - writing an object under a DN it did not have (created, restored, renamed) clears the hash of
 *   groups with an edge to it if it was renamed, and of groups with an edge to another live
 *   object holding that DN (`clearMemberHashesAround`);
 * - incremental member changes clear the touched groups' hash (`applyMembershipChanges`).
 */
export class MemberSync {
  readonly #ctx: SyncContext;
  readonly #dns: DnCache;
  readonly #analyzeAfterWrites: number;
  #analysis: 'not needed' | 'wanted' | 'done' = 'not needed';
  #deferred: DeferredGroup[] = [];

  constructor(ctx: SyncContext, dnCacheEntries = defaultDnCacheEntries, analyzeAfterWrites = defaultAnalyzeAfterWrites) {
    this.#ctx = ctx;
    this.#dns = new DnCache(dnCacheEntries);
    this.#analyzeAfterWrites = analyzeAfterWrites;
  }

  /** Groups waiting for the end of the fetch. */
  get deferredCount(): number {
    return this.#deferred.length;
  }

  /** Forgets deferred groups (a delta abandoned for a full sync, which sees every group again). */
  reset(): void {
    this.#deferred = [];
  }

  /**
   * Records the DN of an object this run has just stored (`written`, or found unchanged: then
   * only where the cache holds the DN already, see {@link DnCache.refresh}), and forgets the DN
   * it had before when it was renamed.
   */
  remember(externalId: string, dn: string | null, previousDn: string | null, written: boolean): void {
    if (previousDn !== null && previousDn !== dn) this.#dns.forget(previousDn, externalId);
    if (dn === null) return;
    if (written) this.#dns.set(dn, externalId);
    else this.#dns.refresh(dn, externalId);
  }

  /**
   * Resolves and writes the complete member lists of a batch's groups whose references changed.
   * `pending`: objects the step wrote in its own transaction (see {@link MemberSync.#write}).
   */
  async syncGroups(
    groups: readonly GroupToSync[],
    pending: ReadonlySet<string> = new Set(),
    prepared: ReadonlyMap<string, PreparedMembers> = new Map(),
  ): Promise<void> {
    const changed: { readonly group: GroupToSync; readonly ahead: PreparedMembers }[] = [];
    for (const group of groups) {
      const ahead = prepared.get(group.externalId) ?? this.#prepareOne(group.members, false);
      if (ahead.refsHash !== group.storedMembersHash) changed.push({ group, ahead });
    }
    if (changed.length === 0) return;
    const dnCache = this.#dns;
    const misses = new Set<string>();
    const sets: { readonly group: GroupToSync; readonly refsHash: string; readonly resolved: Set<string>; readonly missed: string[] | undefined }[] = [];
    for (const { group, ahead } of changed) {
      // Resolved ahead and no DN has changed hands since: still what the cache answers. Only
      // what it missed then is asked again (an object of the batches written since may hold it).
      const current = ahead.resolved !== undefined && ahead.cacheVersion === dnCache.version ? ahead : this.#resolveCached(group.members);
      const resolved = current.resolved as Set<string>;
      let missed: string[] | undefined;
      for (const dn of current.missed ?? []) {
        const id = dnCache.get(dn);
        if (id !== undefined) {
          resolved.add(id);
          continue;
        }
        (missed ??= []).push(dn);
        misses.add(dn);
      }
      sets.push({ group, refsHash: ahead.refsHash, resolved, missed });
    }
    const byDn = misses.size === 0 ? undefined : await this.#resolveStored(misses);
    const ready: ReadyGroup[] = [];
    for (const { group, refsHash, resolved, missed } of sets) {
      const unresolvedDns: string[] = [];
      for (const dn of missed ?? []) {
        const id = byDn?.get(dn);
        if (id === undefined) unresolvedDns.push(dn);
        else resolved.add(id);
      }
      if (unresolvedDns.length > 0) {
        this.#deferred.push({ externalId: group.externalId, isNew: group.isNew, refsHash, resolved, unresolvedDns });
        continue;
      }
      ready.push({ groupExternalId: group.externalId, memberExternalIds: [...resolved], membersHash: refsHash, isNew: group.isNew });
    }
    await this.#write(ready, pending);
    // A group created by this run has no dangling references yet; a stored one may have some.
    await this.#replaceDangling(ready.filter((group) => !group.isNew).map((group) => ({ groupExternalId: group.groupExternalId, dns: [] })));
  }

  /**
   * Hashes the references of a batch's groups, and with `resolve` also looks them up in the DN
   * cache, before the batch's write step: done while the previous batch is still being written,
   * this work leaves the step's critical path. {@link MemberSync.syncGroups} uses a resolution
   * only while the cache's version is unchanged; otherwise it resolves again.
   */
  prepare(objects: Iterable<{ readonly externalId: string; readonly members: readonly MemberRef[] | undefined }>, resolve: boolean): Map<string, PreparedMembers> {
    const prepared = new Map<string, PreparedMembers>();
    for (const object of objects) {
      if (object.members !== undefined) prepared.set(object.externalId, this.#prepareOne(object.members, resolve));
    }
    return prepared;
  }

  #prepareOne(refs: readonly MemberRef[], resolve: boolean): PreparedMembers {
    const refsHash = memberRefsHash(refs);
    const cacheVersion = this.#dns.version;
    if (!resolve) return { refsHash, resolved: undefined, missed: undefined, cacheVersion };
    return { refsHash, ...this.#resolveCached(refs), cacheVersion };
  }

  #resolveCached(refs: readonly MemberRef[]): { resolved: Set<string>; missed: string[] | undefined } {
    // Each reference is looked up in the DN cache once, straight into its group's set: the
    // cache answers nearly all of them, and a DN → id map of the whole batch in between cost
    // three more hash-table operations per reference. Only misses go to the database.
    const dnCache = this.#dns;
    const resolved = new Set<string>();
    let missed: string[] | undefined;
    for (const ref of refs) {
      if (ref.by === 'externalId') {
        resolved.add(ref.value);
        continue;
      }
      const id = dnCache.get(ref.value);
      if (id === undefined) (missed ??= []).push(ref.value);
      else resolved.add(id);
    }
    return { resolved, missed };
  }

  /**
   * Second and last attempt for deferred groups, once every object of the fetch is stored.
   * References still unresolved (members outside the synced scope, or not created yet) become
   * issues and dangling member references; the group keeps the members that did resolve, and no
   * members hash, so its next complete member list is resolved again.
   */
  async resolveDeferred(): Promise<void> {
    const deferred = this.#deferred;
    this.#deferred = [];
    const { issues } = this.#ctx;
    for (const part of chunks(deferred, groupChunk)) {
      const dns = new Set<string>();
      for (const group of part) for (const dn of group.unresolvedDns) dns.add(dn);
      const byDn = await this.#resolve(dns);
      const ready: ReadyGroup[] = [];
      const dangling: GroupDanglingMembers[] = [];
      for (const group of part) {
        const missing: string[] = [];
        for (const dn of group.unresolvedDns) {
          const id = byDn.get(dn);
          if (id === undefined) missing.push(dn);
          else group.resolved.add(id);
        }
        if (missing.length > 0) {
          issues.add({
            externalId: group.externalId,
            reason: `${missing.length} member reference(s) match no synced object and were skipped (first: ${missing[0]})`,
          });
        }
        ready.push({
          groupExternalId: group.externalId,
          memberExternalIds: [...group.resolved],
          membersHash: missing.length === 0 ? group.refsHash : null,
          isNew: group.isNew,
        });
        if (missing.length > 0 || !group.isNew) dangling.push({ groupExternalId: group.externalId, dns: missing });
      }
      await this.#write(ready);
      await this.#replaceDangling(dangling);
    }
  }

  /**
   * Adds the edges from synced groups to objects that just came into scope (created or
   * restored) with the list of groups they belong to. The groups did not change, so the source
   * does not report them again. Groups that are not synced (outside the scope) resolve to
   * nothing and are left out; a group that comes later in the same fetch brings its complete
   * member list itself.
   */
  async linkMemberOf(objects: readonly MemberOfToLink[]): Promise<void> {
    if (objects.length === 0) return;
    const { sql, integrationId, runId, counts } = this.#ctx;
    const dns = new Set<string>();
    for (const object of objects) uniqueDns(object.memberOf, dns);
    const byDn = await this.#resolve(dns);
    const added: MembershipEdge[] = [];
    for (const object of objects) {
      for (const ref of object.memberOf) {
        const group = ref.by === 'externalId' ? ref.value : byDn.get(ref.value);
        if (group !== undefined && group !== object.externalId) added.push({ groupExternalId: group, memberExternalId: object.externalId });
      }
    }
    const result = await applyMembershipChanges(sql, integrationId, runId, { added, removed: [] });
    counts.membershipsAdded += result.added;
  }

  /** DN → external id of the live objects holding those DNs (what member references resolve to). */
  resolveDns(dns: Iterable<string>): Promise<Map<string, string>> {
    return this.#resolve(dns);
  }

  async #replaceDangling(groups: readonly GroupDanglingMembers[]): Promise<void> {
    const { sql, integrationId } = this.#ctx;
    for (const part of chunks(groups, groupChunk)) await replaceDanglingMembers(sql, integrationId, part);
  }

  /** Applies incremental membership changes (after the objects of their page are stored). */
  async applyDeltas(deltas: readonly MemberDelta[]): Promise<void> {
    if (deltas.length === 0) return;
    const { sql, integrationId, runId, counts, issues } = this.#ctx;
    const dns = new Set<string>();
    for (const delta of deltas) {
      uniqueDns(delta.added, dns);
      uniqueDns(delta.removed, dns);
    }
    const byDn = await this.#resolve(dns);
    const added: MembershipEdge[] = [];
    const removed: MembershipEdge[] = [];
    for (const delta of deltas) {
      for (const ref of delta.added) {
        const member = ref.by === 'externalId' ? ref.value : byDn.get(ref.value);
        if (member === undefined) {
          issues.add({ externalId: delta.groupExternalId, reason: `added member ${ref.value} matches no synced object` });
        } else {
          added.push({ groupExternalId: delta.groupExternalId, memberExternalId: member });
        }
      }
      for (const ref of delta.removed) {
        // A removed member that no longer resolves was deleted, and its edges with it.
        const member = ref.by === 'externalId' ? ref.value : byDn.get(ref.value);
        if (member !== undefined) removed.push({ groupExternalId: delta.groupExternalId, memberExternalId: member });
      }
    }
    const result = await applyMembershipChanges(sql, integrationId, runId, { added, removed });
    counts.membershipsAdded += result.added;
    counts.membershipsRemoved += result.removed;
  }

  /**
   * Writes member sets: new groups by one plain insert, falling back to the full comparison when
   * it meets a stored edge after all (a group the fetch listed twice); the others by
   * {@link replaceMemberships}, split across lanes. Groups are disjoint across parts, so are their
   * edges and rows. A group with a member in `pending` (written by the step's own transaction,
   * not committed yet) is written there too, never in a forked transaction that could commit its
   * edges without them.
   */
  async #write(groups: readonly ReadyGroup[], pending: ReadonlySet<string> = new Set()): Promise<void> {
    if (groups.length === 0) return;
    const { sql, counts, integrationId, runId } = this.#ctx;
    const edges = (group: GroupMemberSet) => group.memberExternalIds.length;
    const lane = (group: GroupMemberSet) =>
      pending.size > 0 && group.memberExternalIds.some((id) => pending.has(id)) ? undefined : group.groupExternalId;
    const tryInsert = groups.filter((group) => group.isNew);
    const compare = tryInsert.length === 0 ? [...groups] : groups.filter((group) => !group.isNew);
    if (tryInsert.length > 0) {
      // One statement on the step's own connection (lane 0, where every group may go), not one
      // per lane: each edge inserted also bumps the tuple count on the metapage of the member
      // hash index, and two connections inserting at once queue on that one page. Measured on
      // the benchmark's first sync (500,000 edges, 2 cores): PostgreSQL CPU 6.5–7.0 s against
      // 7.8–9.2 s with two lanes, and the sync no slower.
      try {
        const added = await tentatively(sql, (handle) => insertMemberships(handle, integrationId, runId, tryInsert));
        // Added after the await: `counts.membershipsAdded += await …` would read the count before it.
        counts.membershipsAdded += added;
      } catch (error) {
        if (!isStoredEdge(error)) throw error;
        compare.push(...tryInsert);
      }
    }
    if (compare.length === 0) return;
    await inLanes(
      this.#ctx,
      compare,
      lane,
      async (part, handle, tally) => {
        const result = await replaceMemberships(handle, integrationId, runId, part);
        tally.membershipsAdded += result.added;
        tally.membershipsRemoved += result.removed;
      },
      edges,
    );
  }

  /**
   * Analyzes the objects table, at most once per run, after {@link defaultAnalyzeAfterWrites}
   * writes: between batches once a member resolution went to the database (for the rest of the
   * run), or at the end of the run (for the next runs' stamps). Called between steps, never inside
   * one: it takes a connection of its own from the pool, and a step waiting for one while every
   * connection is held by steps would never go on. Nothing in a dry run.
   */
  async refreshStatistics(endOfRun = false): Promise<void> {
    const { pool } = this.#ctx;
    if (pool === undefined || this.#analysis === 'done') return;
    if (this.#analysis === 'not needed' && !(endOfRun && this.#wroteEnough())) return;
    this.#analysis = 'done';
    await analyzeObjects(pool);
  }

  #wroteEnough(): boolean {
    const { counts } = this.#ctx;
    return counts.created + counts.updated + counts.restored >= this.#analyzeAfterWrites;
  }

  /** DN → external id: from memory first, the rest from the database. */
  async #resolve(dns: Iterable<string>): Promise<Map<string, string>> {
    const byDn = new Map<string, string>();
    const misses: string[] = [];
    for (const dn of dns) {
      const id = this.#dns.get(dn);
      if (id === undefined) misses.push(dn);
      else byDn.set(dn, id);
    }
    return this.#resolveStored(misses, byDn);
  }

  /** DN → external id from the database alone, added to `into`. */
  async #resolveStored(dns: Iterable<string>, into = new Map<string, string>()): Promise<Map<string, string>> {
    const { sql, integrationId, runId } = this.#ctx;
    if (this.#analysis === 'not needed' && this.#wroteEnough()) this.#analysis = 'wanted';
    for (const slice of chunks([...dns], resolveChunk)) {
      for (const part of await inParallel(this.#ctx, slice, (dnPart) => resolveDns(sql, integrationId, runId, dnPart))) {
        for (const [dn, id] of part) into.set(dn, id);
      }
    }
    return into;
  }
}
