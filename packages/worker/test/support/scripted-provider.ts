import {
  type ConnectionReport,
  type Cursor,
  CursorRejectedError,
  type FetchPage,
  type JsonValue,
  type MapResult,
  type MemberDelta,
  type MemberRef,
  type ObjectType,
  type Provider,
  UnavailableError,
} from '@dirsync/providers';

/** One entry of the scripted directory, in the source's own shape. */
export interface ScriptedEntry {
  readonly id: string;
  readonly type: ObjectType;
  readonly dn?: string;
  readonly attributes: { readonly [key: string]: JsonValue };
  readonly members?: readonly MemberRef[];
  /** The groups the entry belongs to, as a source reporting them with the entry (AD memberOf). */
  readonly memberOf?: readonly MemberRef[];
  /** The entries it manages, as a source reporting them with the entry (AD directReports). */
  readonly directReports?: readonly MemberRef[];
  /** Makes `map` refuse the entry with this reason. */
  readonly broken?: string;
}

const typeOrder: Record<ObjectType, number> = { user: 0, contact: 1, group: 2 };

/**
 * An in-memory directory implementing the Provider contract, for pipeline tests: full fetches
 * stream its current entries (users, contacts, then groups, as LDAP providers do), deltas
 * stream what changed since a version cursor and the deletions recorded since. Tests can
 * script failures, cursor rejection, empty results and explicit delta pages.
 */
export class ScriptedProvider implements Provider<ScriptedEntry> {
  readonly kind = 'scripted';
  pageSize = 3;
  /** Throw an UnavailableError before yielding this page (0-based) of the next fetches. */
  failAtPage: number | undefined;
  /** How many fetches fail at `failAtPage` before they work again. */
  failures = Number.POSITIVE_INFINITY;
  /** Stop answering (until aborted) before yielding this page of a full fetch: a hung server. */
  hangAtPage: number | undefined;
  /** Reject every delta cursor with this reason. */
  rejectCursor: string | undefined;
  /** Make full fetches return nothing (a wrong base DN). */
  returnNothing = false;
  /** Pages a delta returns instead of the computed changes (then cleared). */
  scriptedDelta: FetchPage<ScriptedEntry>[] | undefined;
  /** Explicit order of a full fetch (ids); entries not listed follow in the default order. */
  fullOrder: string[] | undefined;
  fullFetches = 0;
  deltaFetches = 0;
  closed = false;

  readonly #entries = new Map<string, ScriptedEntry>();
  readonly #changedAt = new Map<string, number>();
  readonly #deletedAt = new Map<string, number>();
  #version = 0;

  /** Adds or replaces an entry. */
  put(...entries: ScriptedEntry[]): this {
    this.#version += 1;
    for (const entry of entries) {
      this.#entries.set(entry.id, entry);
      this.#changedAt.set(entry.id, this.#version);
      this.#deletedAt.delete(entry.id);
    }
    return this;
  }

  /** Changes some attributes of an entry. */
  change(id: string, attributes: Record<string, JsonValue>, extra: Partial<ScriptedEntry> = {}): this {
    const entry = this.#entries.get(id);
    if (!entry) throw new Error(`no entry ${id}`);
    return this.put({ ...entry, ...extra, attributes: { ...entry.attributes, ...attributes } });
  }

  /** Removes entries (a delta reports them as deleted). */
  remove(...ids: string[]): this {
    this.#version += 1;
    for (const id of ids) {
      this.#entries.delete(id);
      this.#changedAt.delete(id);
      this.#deletedAt.set(id, this.#version);
    }
    return this;
  }

  get(id: string): ScriptedEntry | undefined {
    return this.#entries.get(id);
  }

  async testConnection(): Promise<ConnectionReport> {
    return { ok: true, checks: [{ name: 'scripted', ok: true, detail: 'in memory' }] };
  }

  async *fetchFull(signal: AbortSignal): AsyncIterable<FetchPage<ScriptedEntry>> {
    this.fullFetches += 1;
    const entries = this.returnNothing ? [] : this.#ordered();
    yield* this.#paged(entries, [], [], { version: this.#version }, signal);
  }

  async *fetchDelta(cursor: Cursor, signal: AbortSignal): AsyncIterable<FetchPage<ScriptedEntry>> {
    this.deltaFetches += 1;
    if (this.rejectCursor !== undefined) throw new CursorRejectedError(this.rejectCursor);
    const since = cursor['version'];
    if (typeof since !== 'number') throw new CursorRejectedError('cursor has no version');
    if (this.scriptedDelta) {
      const pages = this.scriptedDelta;
      this.scriptedDelta = undefined;
      for (const page of pages) {
        signal.throwIfAborted();
        yield page;
      }
      return;
    }
    const changed = this.#ordered().filter((entry) => (this.#changedAt.get(entry.id) ?? 0) > since);
    const deleted = [...this.#deletedAt].filter(([, at]) => at > since).map(([id]) => id);
    yield* this.#paged(changed, deleted, [], { version: this.#version }, signal);
  }

  map(entry: ScriptedEntry): MapResult {
    if (entry.broken !== undefined) return { ok: false, externalId: entry.id, reason: entry.broken };
    return {
      ok: true,
      object: {
        externalId: entry.id,
        type: entry.type,
        ...(entry.dn === undefined ? {} : { dn: entry.dn }),
        attributes: entry.attributes,
        ...(entry.members === undefined ? {} : { members: entry.members }),
        ...(entry.memberOf === undefined ? {} : { memberOf: entry.memberOf }),
        ...(entry.directReports === undefined ? {} : { directReports: entry.directReports }),
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  #ordered(): ScriptedEntry[] {
    const all = [...this.#entries.values()].sort((a, b) => typeOrder[a.type] - typeOrder[b.type]);
    if (!this.fullOrder) return all;
    const listed = this.fullOrder.map((id) => this.#entries.get(id)).filter((e): e is ScriptedEntry => e !== undefined);
    return [...listed, ...all.filter((entry) => !this.fullOrder?.includes(entry.id))];
  }

  async *#paged(
    entries: ScriptedEntry[],
    deletions: string[],
    memberDeltas: MemberDelta[],
    cursor: Cursor,
    signal: AbortSignal,
  ): AsyncIterable<FetchPage<ScriptedEntry>> {
    const pageCount = Math.max(1, Math.ceil(entries.length / this.pageSize));
    for (let page = 0; page < pageCount; page += 1) {
      signal.throwIfAborted();
      await Promise.resolve();
      if (page === this.hangAtPage) {
        await new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
        });
      }
      if (page === this.failAtPage && this.failures > 0) {
        this.failures -= 1;
        throw new UnavailableError(`scripted server went away at page ${page}`);
      }
      const last = page === pageCount - 1;
      yield {
        entries: entries.slice(page * this.pageSize, (page + 1) * this.pageSize),
        ...(last ? { deletions, memberDeltas, cursor } : {}),
      };
    }
  }
}

/** A user entry with a DN under `ou=people`. */
export function user(id: string, attributes: Record<string, JsonValue> = {}): ScriptedEntry {
  return { id, type: 'user', dn: `uid=${id},ou=people,dc=example`, attributes: { name: id, ...attributes } };
}

/** A group entry whose members are given by DN (as LDAP reports them). */
export function group(id: string, memberDns: string[], attributes: Record<string, JsonValue> = {}): ScriptedEntry {
  return {
    id,
    type: 'group',
    dn: `cn=${id},ou=groups,dc=example`,
    attributes: { name: id, ...attributes },
    members: memberDns.map((value) => ({ by: 'dn' as const, value })),
  };
}

/** DN of a scripted user. */
export const userDn = (id: string) => `uid=${id},ou=people,dc=example`;
/** DN of a scripted group. */
export const groupDn = (id: string) => `cn=${id},ou=groups,dc=example`;

/** A directory of `users` users and `groups` groups of `membersPerGroup` members, the same every time. */
export function fixtureDirectory(users: number, groups: number, membersPerGroup: number): ScriptedProvider {
  const provider = new ScriptedProvider();
  const entries: ScriptedEntry[] = [];
  for (let i = 0; i < users; i += 1) entries.push(user(`u${i}`, { mail: `u${i}@example.com`, index: i }));
  for (let g = 0; g < groups; g += 1) {
    const members = Array.from({ length: membersPerGroup }, (_, k) => userDn(`u${(g * 31 + k * 7) % users}`));
    entries.push(group(`g${g}`, members));
  }
  return provider.put(...entries);
}
