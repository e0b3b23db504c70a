import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { EmulatedGroup, EmulatedTenantDirectory, EmulatedUser, MemberKind } from './directory.ts';

/** The two resources the emulator tracks with delta queries. */
export type DeltaResource = 'users' | 'groups';

/**
 * Where a delta round stands. It travels inside `$skiptoken` (next page of the same round) and
 * `$deltatoken` (start of the next round), opaque to the client, like Graph's state tokens.
 */
export interface RoundState {
  readonly r: DeltaResource;
  /** Tenant the token was issued for. */
  readonly t: string;
  /** Token generation of the tenant; an older one is expired (`syncStateNotFound`). */
  readonly g: number;
  /** `$select` of the initial request, carried along as Graph does; null: default properties. */
  readonly sel: readonly string[] | null;
  /** Sequence number the round reports changes after; null for the initial (full) round. */
  readonly since: number | null;
  /** Sequence number when the round started: the next round's `since`. */
  readonly upTo: number;
  /** Last object fully returned. */
  readonly after: string | null;
  /** A group whose member records were cut by the page end: its id and the next member index. */
  readonly part: { readonly id: string; readonly offset: number } | null;
  /** Planned round (see `rounds.ts`): its id, the next record's position, the page number, and whether the last page was empty. */
  readonly plan?: { readonly id: string; readonly pos: number; readonly n: number; readonly empty: boolean };
}

/** Properties a `$select` may name, per resource (besides `id`). */
export const selectableProperties: Record<DeltaResource, readonly string[]> = {
  users: [
    'userPrincipalName', 'displayName', 'givenName', 'surname', 'mail', 'accountEnabled', 'department', 'jobTitle',
    'proxyAddresses', 'onPremisesImmutableId', 'employeeId',
  ],
  groups: ['displayName', 'description', 'mail', 'mailEnabled', 'mailNickname', 'securityEnabled', 'groupTypes', 'members'],
};

// Graph returns a smaller default set when there is no $select.
export const defaultProperties: Record<DeltaResource, readonly string[]> = {
  users: ['userPrincipalName', 'displayName', 'givenName', 'surname', 'mail', 'jobTitle'],
  groups: ['displayName', 'description', 'mail', 'mailEnabled', 'mailNickname', 'securityEnabled', 'groupTypes'],
};

/** Encodes a round state as an opaque token. */
export function encodeState(state: RoundState): string {
  return Buffer.from(JSON.stringify(state)).toString('base64url');
}

/** Decodes a token; undefined when it is not one the emulator made. */
export function decodeState(token: string): RoundState | undefined {
  try {
    const value = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Partial<RoundState>;
    if ((value.r !== 'users' && value.r !== 'groups') || typeof value.t !== 'string' || typeof value.g !== 'number') return undefined;
    if (typeof value.upTo !== 'number') return undefined;
    return value as RoundState;
  } catch {
    return undefined;
  }
}

/**
 * Seals round states into tokens a client can neither read nor forge: Graph's state tokens "are
 * opaque to the client" and a client copies the `@odata.nextLink` / `@odata.deltaLink` URL
 * "without having to inspect the contents of the URL, including its state token"
 * (microsoft-graph-docs-contrib: concepts/delta-query-overview.md, "State tokens"). AES-256-GCM
 * under a key of this emulator: a token edited or made up by a client is not one it issued.
 */
export class StateSealer {
  private readonly key = randomBytes(32);

  seal(state: RoundState): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(JSON.stringify(state), 'utf8'), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
  }

  /** The state a token holds; undefined when this emulator did not issue it. */
  open(token: string): RoundState | undefined {
    try {
      const raw = Buffer.from(token, 'base64url');
      if (raw.length < 29) return undefined;
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      const text = Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
      return decodeState(Buffer.from(text, 'utf8').toString('base64url'));
    } catch {
      return undefined;
    }
  }
}

/** One page of a round: the records and the state after them (null: the round is complete). */
export interface DeltaPage {
  readonly value: Record<string, unknown>[];
  readonly next: RoundState | null;
}

/** The record of an object with these properties (`id` first; arrays copied; absent values null). */
export function project(source: EmulatedUser | EmulatedGroup, properties: readonly string[]): Record<string, unknown> {
  const record: Record<string, unknown> = { id: source.id };
  const values = source as unknown as Record<string, unknown>;
  for (const property of properties) {
    if (property === 'members') continue;
    const value = values[property];
    record[property] = Array.isArray(value) ? [...(value as unknown[])] : value ?? null;
  }
  return record;
}

/** Ids changed after `since` (and up to `upTo`), sorted, from a change log ordered by sequence number. */
export function changedIds(log: readonly { seq: number; id: string }[], since: number, upTo = Infinity): string[] {
  let lo = 0;
  let hi = log.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((log[mid] as { seq: number }).seq <= since) lo = mid + 1;
    else hi = mid;
  }
  const ids = new Set<string>();
  for (let i = lo; i < log.length && (log[i] as { seq: number }).seq <= upTo; i++) ids.add((log[i] as { id: string }).id);
  return [...ids].sort();
}

function startAfter(ids: readonly string[], after: string | null): number {
  if (after === null) return 0;
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ids[mid] as string) <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export const odataType: Record<MemberKind, string> = {
  user: '#microsoft.graph.user',
  group: '#microsoft.graph.group',
  device: '#microsoft.graph.device',
};

/** Options of a page computation. */
export interface PageOptions {
  readonly pageSize: number;
  /** Members per group record; a group with more appears again in further records. */
  readonly membersPerRecord: number;
}

/**
 * Computes the next page of a users or groups delta round. The initial round lists every live
 * object; later rounds list objects changed after `since`, deleted ones as `@removed`, and for
 * groups the membership edges that changed (`members@delta`, removed ones with `@removed`). A
 * group with many members is spread over several records, possibly over several pages: the
 * first record carries its properties, the following ones only `id` and `members@delta`.
 */
export function computePage(directory: EmulatedTenantDirectory, state: RoundState, options: PageOptions): DeltaPage {
  const properties = state.sel ?? defaultProperties[state.r];
  const value: Record<string, unknown>[] = [];
  const ids =
    state.since === null
      ? state.r === 'users'
        ? directory.userIds.ids
        : directory.groupIds.ids
      : changedIds(state.r === 'users' ? directory.userChanges : directory.groupChanges, state.since);
  let index = startAfter(ids, state.after);
  let after = state.after;
  let part = state.part;
  const withMembers = state.r === 'groups' && properties.includes('members');

  while (value.length < options.pageSize && (part !== null || index < ids.length)) {
    const id = part?.id ?? (ids[index] as string);
    if (state.r === 'users') {
      index += 1;
      after = id;
      const live = directory.users.get(id);
      if (live) value.push(project(live.data, properties));
      else {
        const gone = directory.userTombstones.get(id);
        if (gone && state.since !== null) value.push({ id, '@removed': { reason: gone.reason } });
      }
      continue;
    }
    const live = directory.groups.get(id);
    if (!live) {
      // Not `index + 1`: a group deleted while its records were being paged is no longer listed.
      index = startAfter(ids, id);
      after = id;
      part = null;
      const gone = directory.groupTombstones.get(id);
      if (gone && state.since !== null) value.push({ id, '@removed': { reason: gone.reason } });
      continue;
    }
    const since = state.since;
    const edges = withMembers
      ? [...live.edges].filter(([, edge]) => (since === null ? edge.present : edge.seq > since))
      : [];
    const offset = part?.offset ?? 0;
    const chunk = edges.slice(offset, offset + options.membersPerRecord);
    const record: Record<string, unknown> = offset === 0 ? project(live.data, properties) : { id };
    if (withMembers) {
      record['members@delta'] = chunk.map(([memberId, edge]) =>
        edge.present
          ? { '@odata.type': odataType[edge.kind], id: memberId }
          : { '@odata.type': odataType[edge.kind], id: memberId, '@removed': { reason: 'deleted' } },
      );
    }
    value.push(record);
    if (offset + options.membersPerRecord < edges.length) {
      part = { id, offset: offset + options.membersPerRecord };
    } else {
      part = null;
      index = startAfter(ids, id);
      after = id;
    }
  }
  const done = part === null && index >= ids.length;
  return { value, next: done ? null : { ...state, after, part } };
}
