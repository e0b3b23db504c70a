import { guidBytes, guidWord, readGuid, writeGuid } from '../guid.ts';
import type { GraphRecord } from './map.ts';

/*
 * Compact per-round state of a Graph delta round. Graph may list the same group anywhere in a
 * round's nextLink sequence, each time with another part of `members@delta`, and advises clients
 * to "locally merge each group's state" and to "assume that the same group could show up anywhere
 * in the nextLink sequence" (microsoft-graph-docs-contrib concepts/delta-query-groups.md, "Paging
 * through members in a large group"); any object may also be "contained multiple times in the
 * response" (concepts/delta-query-overview.md). Object ids are GUIDs (`recordId` checked and
 * lower-cased them), kept here as 16 bytes rather than 36-character strings.
 */

/** One member change: the member's GUID, then 1 (added) or 0 (removed). */
const opBytes = guidBytes + 1;

/**
 * The member changes of one group in the order the round gave them, 17 bytes each. Its buffers
 * are allocated on their own (`allocUnsafeSlow`), not as slices of Node's shared 64 KB pool: a
 * log keeps its slice for the whole round, so thousands of small logs growing in turn kept every
 * pool they had touched alive, twice the bytes they held (20 MB for 4,400 groups of 100 members).
 */
class MemberLog {
  #buffer = Buffer.allocUnsafeSlow(opBytes * 4);
  #count = 0;

  push(id: string, present: boolean): void {
    const at = this.#count * opBytes;
    if (at + opBytes > this.#buffer.length) {
      const grown = Buffer.allocUnsafeSlow(this.#buffer.length * 2);
      this.#buffer.copy(grown, 0, 0, at);
      this.#buffer = grown;
    }
    writeGuid(id, this.#buffer, at);
    this.#buffer[at + guidBytes] = present ? 1 : 0;
    this.#count += 1;
  }

  /** The memory its buffer keeps alive: the whole underlying allocation, shared or not. */
  get bytes(): number {
    return this.#buffer.buffer.byteLength;
  }

  /**
   * The net effect of the changes: members whose last change added them, and those whose last
   * change removed them, each once, in the order they first appeared.
   */
  net(): { added: string[]; removed: string[] } {
    // The last change of a member decides (a member removed while the round was read, or added
    // back); the map lives only while one group is handed on.
    const state = new Map<string, boolean>();
    for (let i = 0; i < this.#count; i += 1) {
      const at = i * opBytes;
      state.set(readGuid(this.#buffer, at), this.#buffer[at + guidBytes] === 1);
    }
    const added: string[] = [];
    const removed: string[] = [];
    for (const [id, present] of state) (present ? added : removed).push(id);
    return { added, removed };
  }

  get count(): number {
    return this.#count;
  }
}

/** Properties beyond `id` and annotations: a record that has them describes the object itself. */
export function hasProperties(record: GraphRecord): boolean {
  for (const key of Object.keys(record)) if (key !== 'id' && !key.includes('@')) return true;
  return false;
}

/** The record's id and properties, without annotations (`members@delta` is kept apart). */
function propertiesOf(record: GraphRecord): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) if (!key.includes('@')) properties[key] = value;
  return properties;
}

/** A group as a whole round described it: its latest properties and its complete member list. */
export interface AccumulatedGroup {
  readonly record: GraphRecord;
  readonly members: readonly string[];
}

/** Member ids per page of accumulated groups handed on, unless one group alone has more. */
export const accumulatedMembersPerPage = 25_000;

/**
 * The groups of one full round, merged by id: properties from the latest record that carries any
 * (merged over the earlier ones), member changes of every record in round order. Memory: the
 * properties as JSON text (a few hundred bytes a group) and 17 bytes per member record, at most
 * doubled by growth: a group of 100,000 members holds 1.7 to 3.4 MB (measured: 2.4 MB), and
 * its list handed on as strings takes 4.3 MB more while its page is processed.
 */
export class GroupAccumulator {
  readonly #groups = new Map<string, { properties: string; readonly log: MemberLog }>();

  /** Adds one record of group `id` (the caller checked the id) and its `members@delta` changes. */
  add(id: string, record: GraphRecord, changes: { readonly added: readonly string[]; readonly removed: readonly string[] }): void {
    let group = this.#groups.get(id);
    if (group === undefined) {
      group = { properties: JSON.stringify(propertiesOf(record)), log: new MemberLog() };
      this.#groups.set(id, group);
    } else if (hasProperties(record)) {
      group.properties = JSON.stringify({ ...(JSON.parse(group.properties) as object), ...propertiesOf(record) });
    }
    for (const member of changes.added) group.log.push(member, true);
    for (const member of changes.removed) group.log.push(member, false);
  }

  /** Groups held. */
  get size(): number {
    return this.#groups.size;
  }

  /** Bytes held for member lists and properties (the allocations buffers keep alive, text as UTF-16). */
  get bytes(): number {
    let bytes = 0;
    for (const group of this.#groups.values()) bytes += group.log.bytes + group.properties.length * 2;
    return bytes;
  }

  /**
   * Hands the groups on in the order they first appeared, in pages of at most `pageSize` groups
   * and about {@link accumulatedMembersPerPage} member ids, releasing each group as it goes: only
   * the page being handed on exists as strings.
   */
  *pages(pageSize: number, membersPerPage = accumulatedMembersPerPage): Generator<AccumulatedGroup[]> {
    let page: AccumulatedGroup[] = [];
    let members = 0;
    for (const [id, group] of this.#groups) {
      this.#groups.delete(id);
      const list = group.log.net().added;
      if (page.length > 0 && (page.length >= pageSize || members + list.length > membersPerPage)) {
        yield page;
        page = [];
        members = 0;
      }
      page.push({ record: JSON.parse(group.properties) as GraphRecord, members: list });
      members += list.length;
    }
    if (page.length > 0) yield page;
  }
}

/**
 * A set of object ids (GUIDs) seen in a round, 16 bytes a slot in an open-addressed table kept
 * at most three quarters full: a million users cost about 34 MB, against some 80 MB for a `Set`
 * of strings.
 */
export class SeenIds {
  #words = new Uint32Array(4 * 1024);
  #used = new Uint8Array(1024);
  #size = 0;

  /** Adds `id`; true when it was there already. */
  add(id: string): boolean {
    if ((this.#size + 1) * 4 > this.#used.length * 3) this.#grow();
    if (this.#find(guidWord(id, 0), guidWord(id, 1), guidWord(id, 2), guidWord(id, 3), true)) return true;
    this.#size += 1;
    return false;
  }

  get size(): number {
    return this.#size;
  }

  get bytes(): number {
    return this.#words.byteLength + this.#used.byteLength;
  }

  /** Whether the id is stored; when not and `insert`, stores it. */
  #find(w0: number, w1: number, w2: number, w3: number, insert: boolean): boolean {
    const mask = this.#used.length - 1;
    // Ids need not be random (generated or migrated ones): every word goes into the slot.
    let h = Math.imul(w0 ^ Math.imul(w1, 0x85ebca6b), 0xc2b2ae35) ^ Math.imul(w2 ^ (w3 >>> 7), 0x27d4eb2f) ^ w3;
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 12;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      if (this.#used[slot] === 0) {
        if (insert) {
          this.#used[slot] = 1;
          const at = slot * 4;
          this.#words[at] = w0;
          this.#words[at + 1] = w1;
          this.#words[at + 2] = w2;
          this.#words[at + 3] = w3;
        }
        return false;
      }
      const at = slot * 4;
      if (this.#words[at] === w0 && this.#words[at + 1] === w1 && this.#words[at + 2] === w2 && this.#words[at + 3] === w3) return true;
    }
  }

  #grow(): void {
    const words = this.#words;
    const used = this.#used;
    this.#words = new Uint32Array(words.length * 2);
    this.#used = new Uint8Array(used.length * 2);
    for (let slot = 0; slot < used.length; slot += 1) {
      if (used[slot] === 1) {
        const at = slot * 4;
        this.#find(words[at] as number, words[at + 1] as number, words[at + 2] as number, words[at + 3] as number, true);
      }
    }
  }
}

/** The net membership changes of one group over a round. */
export interface GroupMemberChanges {
  readonly groupExternalId: string;
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

/**
 * The `members@delta` changes of a round read from a delta link, merged by group in round order
 * (17 bytes a change, as in {@link GroupAccumulator}), so that parts of one group anywhere in the
 * round, or replayed, become one net change per member applied once the round is complete.
 */
export class MemberChangeAccumulator {
  readonly #groups = new Map<string, MemberLog>();

  add(id: string, changes: { readonly added: readonly string[]; readonly removed: readonly string[] }): void {
    if (changes.added.length === 0 && changes.removed.length === 0) return;
    let log = this.#groups.get(id);
    if (log === undefined) {
      log = new MemberLog();
      this.#groups.set(id, log);
    }
    for (const member of changes.added) log.push(member, true);
    for (const member of changes.removed) log.push(member, false);
  }

  get size(): number {
    return this.#groups.size;
  }

  /**
   * The net changes by group, in the order groups first appeared, in pages of about `perPage`
   * member ids (a larger group alone), releasing each group as it goes.
   */
  *pages(perPage = accumulatedMembersPerPage): Generator<GroupMemberChanges[]> {
    let page: GroupMemberChanges[] = [];
    let members = 0;
    for (const [id, log] of this.#groups) {
      this.#groups.delete(id);
      const { added, removed } = log.net();
      const size = added.length + removed.length;
      if (page.length > 0 && members + size > perPage) {
        yield page;
        page = [];
        members = 0;
      }
      page.push({ groupExternalId: id, added, removed });
      members += size;
    }
    if (page.length > 0) yield page;
  }
}
