import type { ConnectionReport, Cursor, FetchPage, MapResult, Provider } from '@dirsync/providers';

/** A source entry shaped like what an LDAP provider hands the pipeline. */
interface GeneratedEntry {
  id: string;
  kind: 'user' | 'group';
  index: number;
  revision: number;
}

/**
 * A provider that generates a directory of `users` users and `groups` groups of
 * `membersPerGroup` members on the fly, page by page: it holds nothing, so the benchmark measures
 * the pipeline's memory, not the source's. `changed` entries get a new revision (a delta returns
 * only those).
 */
export class GeneratedProvider implements Provider<GeneratedEntry> {
  readonly kind = 'generated';
  readonly users: number;
  readonly groups: number;
  readonly membersPerGroup: number;
  readonly pageSize: number;
  revision = 1;
  changed: number[] = [];

  constructor(options: { users: number; groups: number; membersPerGroup: number; pageSize?: number }) {
    this.users = options.users;
    this.groups = options.groups;
    this.membersPerGroup = options.membersPerGroup;
    this.pageSize = options.pageSize ?? 1000;
  }

  async testConnection(): Promise<ConnectionReport> {
    return { ok: true, checks: [] };
  }

  async *fetchFull(): AsyncIterable<FetchPage<GeneratedEntry>> {
    const total = this.users + this.groups;
    for (let start = 0; start < total; start += this.pageSize) {
      const entries: GeneratedEntry[] = [];
      for (let i = start; i < Math.min(total, start + this.pageSize); i += 1) entries.push(this.#entry(i));
      // A page boundary is an await, as with a real server.
      await new Promise((resolve) => setImmediate(resolve));
      yield start + this.pageSize >= total ? { entries, cursor: { revision: this.revision } } : { entries };
    }
  }

  async *fetchDelta(_cursor: Cursor): AsyncIterable<FetchPage<GeneratedEntry>> {
    yield { entries: this.changed.map((i) => this.#entry(i)), cursor: { revision: this.revision } };
  }

  /** Gives `count` users a new revision (a title change), as an LDAP modify would. */
  change(count: number): void {
    this.revision += 1;
    this.changed = Array.from({ length: count }, (_, k) => Math.floor((k * this.users) / count));
    this.#revisions = new Map(this.changed.map((i) => [i, this.revision]));
  }

  #revisions = new Map<number, number>();

  #entry(i: number): GeneratedEntry {
    const kind = i < this.users ? 'user' : 'group';
    const index = kind === 'user' ? i : i - this.users;
    return { id: `${kind}-${index.toString(36)}-0000-4000-8000-00000000${i.toString(16).padStart(4, '0')}`, kind, index, revision: this.#revisions.get(i) ?? 1 };
  }

  map(entry: GeneratedEntry): MapResult {
    if (entry.kind === 'user') {
      const n = entry.index;
      return {
        ok: true,
        object: {
          externalId: entry.id,
          type: 'user',
          dn: `uid=user${n},ou=people,dc=example,dc=com`,
          attributes: {
            uid: `user${n}`,
            cn: `User Number ${n}`,
            givenName: 'User',
            sn: `Number ${n}`,
            mail: `user${n}@example.com`,
            title: entry.revision === 1 ? 'Engineer' : `Engineer rev ${entry.revision}`,
            department: `Department ${n % 50}`,
            telephoneNumber: `+1 555 ${String(n).padStart(7, '0')}`,
            employeeNumber: String(100000 + n),
          },
        },
      };
    }
    const g = entry.index;
    const members = [];
    for (let k = 0; k < this.membersPerGroup; k += 1) {
      const user = (g * 7919 + k * 104729) % this.users;
      members.push({ by: 'dn' as const, value: `uid=user${user},ou=people,dc=example,dc=com` });
    }
    return {
      ok: true,
      object: {
        externalId: entry.id,
        type: 'group',
        dn: `cn=group${g},ou=groups,dc=example,dc=com`,
        attributes: { cn: `group${g}`, description: `Group number ${g}` },
        members,
      },
    };
  }

  async close(): Promise<void> {}
}
