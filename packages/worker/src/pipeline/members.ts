import { applyMembershipChanges, type MembershipEdge, replaceMemberships, resolveDns, type GroupMemberSet } from '@dirsync/db';
import type { MemberDelta, MemberRef } from '@dirsync/providers';
import { chunks, inParallel, type SyncContext } from './context.ts';
import { membersHash } from './hash.ts';

/** A group whose complete member list the source reported, with the members hash stored for it. */
export interface GroupToSync {
  readonly externalId: string;
  readonly members: readonly MemberRef[];
  readonly storedMembersHash: string | null;
}

/** A group with DN references not resolvable yet (a nested group that comes later in the fetch). */
interface DeferredGroup {
  readonly externalId: string;
  readonly resolved: Set<string>;
  readonly unresolvedDns: string[];
  readonly storedMembersHash: string | null;
}

/** Largest number of DNs sent to one resolution query at the end of a run. */
const resolveChunk = 10_000;
/** Largest number of groups written by one statement at the end of a run. */
const groupChunk = 500;

function uniqueDns(refs: Iterable<MemberRef>, into: Set<string>): void {
  for (const ref of refs) if (ref.by === 'dn') into.add(ref.value);
}

/**
 * Membership stage of the pipeline. Groups are written batch by batch, right after the objects of
 * their batch (whose DNs must be stored first). Only groups with references that cannot be
 * resolved yet are kept in memory, and resolved once more when the fetch is over.
 */
export class MemberSync {
  readonly #ctx: SyncContext;
  #deferred: DeferredGroup[] = [];

  constructor(ctx: SyncContext) {
    this.#ctx = ctx;
  }

  /** Groups waiting for the end of the fetch. */
  get deferredCount(): number {
    return this.#deferred.length;
  }

  /** Forgets deferred groups (a delta abandoned for a full sync, which sees every group again). */
  reset(): void {
    this.#deferred = [];
  }

  /** Resolves and writes the complete member lists of a batch's groups. */
  async syncGroups(groups: readonly GroupToSync[]): Promise<void> {
    if (groups.length === 0) return;
    const { sql, integrationId, runId } = this.#ctx;
    const dns = new Set<string>();
    for (const group of groups) uniqueDns(group.members, dns);
    const byDn = await this.#resolve([...dns]);
    const ready: GroupMemberSet[] = [];
    for (const group of groups) {
      const resolved = new Set<string>();
      const unresolvedDns: string[] = [];
      for (const ref of group.members) {
        if (ref.by === 'externalId') {
          resolved.add(ref.value);
          continue;
        }
        const id = byDn.get(ref.value);
        if (id === undefined) unresolvedDns.push(ref.value);
        else resolved.add(id);
      }
      if (unresolvedDns.length > 0) {
        this.#deferred.push({ externalId: group.externalId, resolved, unresolvedDns, storedMembersHash: group.storedMembersHash });
        continue;
      }
      const set = memberSet(group.externalId, resolved, group.storedMembersHash);
      if (set) ready.push(set);
    }
    await this.#write(ready);
  }

  /**
   * Second and last attempt for deferred groups, once every object of the fetch is stored.
   * References still unresolved (members outside the synced scope) become issues; the group keeps
   * the members that did resolve.
   */
  async resolveDeferred(): Promise<void> {
    const deferred = this.#deferred;
    this.#deferred = [];
    const { sql, integrationId, runId, issues } = this.#ctx;
    for (const part of chunks(deferred, groupChunk)) {
      const dns = new Set<string>();
      for (const group of part) for (const dn of group.unresolvedDns) dns.add(dn);
      const byDn = new Map<string, string>();
      for (const slice of chunks([...dns], resolveChunk)) {
        for (const [dn, id] of await this.#resolve(slice)) byDn.set(dn, id);
      }
      const ready: GroupMemberSet[] = [];
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
        const set = memberSet(group.externalId, group.resolved, group.storedMembersHash);
        if (set) ready.push(set);
      }
      await this.#write(ready);
    }
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
    const byDn = await this.#resolve([...dns]);
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

  async #write(groups: readonly GroupMemberSet[]): Promise<void> {
    if (groups.length === 0) return;
    const { sql, integrationId, runId, counts } = this.#ctx;
    // Groups are disjoint across parts, so are their edges and rows.
    const results = await inParallel(this.#ctx, groups, (part) => replaceMemberships(sql, integrationId, runId, part));
    for (const result of results) {
      counts.membershipsAdded += result.added;
      counts.membershipsRemoved += result.removed;
    }
  }

  async #resolve(dns: readonly string[]): Promise<Map<string, string>> {
    const { sql, integrationId, runId } = this.#ctx;
    const byDn = new Map<string, string>();
    for (const part of await inParallel(this.#ctx, dns, (slice) => resolveDns(sql, integrationId, runId, slice))) {
      for (const [dn, id] of part) byDn.set(dn, id);
    }
    return byDn;
  }
}

/** The member set to write, or undefined when its hash equals the stored one (nothing changed). */
function memberSet(groupExternalId: string, members: Set<string>, stored: string | null): GroupMemberSet | undefined {
  const hash = membersHash(members);
  if (hash === stored) return undefined;
  return { groupExternalId, memberExternalIds: [...members], membersHash: hash };
}
