import { randomUUID } from 'node:crypto';

/** A user as Graph returns it (the properties the emulator knows; `id` is immutable). */
export interface EmulatedUser {
  readonly id: string;
  userPrincipalName: string;
  displayName: string | null;
  givenName: string | null;
  surname: string | null;
  mail: string | null;
  accountEnabled: boolean;
  department: string | null;
  jobTitle: string | null;
  proxyAddresses: string[];
  onPremisesImmutableId: string | null;
  employeeId: string | null;
}

/** A group as Graph returns it. */
export interface EmulatedGroup {
  readonly id: string;
  displayName: string;
  description: string | null;
  mail: string | null;
  mailEnabled: boolean;
  mailNickname: string | null;
  securityEnabled: boolean;
  groupTypes: string[];
}

/** The kind of a group member, as its `@odata.type` names it. */
export type MemberKind = 'user' | 'group' | 'device';

/** Why an object left: `changed` (soft-deleted, restorable) or `deleted` (gone for good). */
export type RemovalReason = 'changed' | 'deleted';

/** Input of {@link EmulatedTenantDirectory.addUser}: everything but the UPN is optional. */
export type NewEmulatedUser = Partial<Omit<EmulatedUser, 'userPrincipalName'>> & { userPrincipalName: string };
/** Input of {@link EmulatedTenantDirectory.addGroup}. */
export type NewEmulatedGroup = Partial<EmulatedGroup> & { displayName: string };

interface Versioned<T> {
  data: T;
  /** Change sequence of the latest change to the object itself. */
  version: number;
  /** Change sequence of the object's creation. */
  readonly created: number;
  /** Property name → change sequence of its latest change (for partial delta records). */
  readonly changed: Map<string, number>;
}

interface Tombstone {
  readonly seq: number;
  readonly reason: RemovalReason;
}

interface Edge {
  readonly kind: MemberKind;
  present: boolean;
  seq: number;
  /** Change sequence at which the member was (last) added. */
  added: number;
}

interface GroupState extends Versioned<EmulatedGroup> {
  /** Member id → edge; removed edges stay (with `present: false`) so a delta can report them. */
  readonly edges: Map<string, Edge>;
  /** Latest change of the group or of any of its edges. */
  lastChange: number;
}

/** Keeps ids sorted so that a page after a given id is found by binary search. */
class SortedIds {
  readonly ids: string[] = [];

  insert(id: string): void {
    const at = this.lowerBound(id);
    if (this.ids[at] !== id) this.ids.splice(at, 0, id);
  }

  /** Inserts many ids at once (one sort instead of one shift per id). */
  insertMany(ids: readonly string[]): void {
    const merged = [...new Set([...this.ids, ...ids])].sort();
    this.ids.length = 0;
    for (const id of merged) this.ids.push(id);
  }

  remove(id: string): void {
    const at = this.lowerBound(id);
    if (this.ids[at] === id) this.ids.splice(at, 1);
  }

  /** First index whose id is > `after` (0 when `after` is null). */
  startAfter(after: string | null): number {
    if (after === null) return 0;
    const at = this.lowerBound(after);
    return this.ids[at] === after ? at + 1 : at;
  }

  private lowerBound(id: string): number {
    let lo = 0;
    let hi = this.ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.ids[mid] as string) < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** One entry of the change log: which object changed at which sequence number. */
interface Change {
  readonly seq: number;
  readonly id: string;
}

/** Records which properties a patch really changes, at the object's new version. */
function markChanged<T extends object>(state: Versioned<T>, patch: Partial<T>): void {
  const current = state.data as Record<string, unknown>;
  for (const [name, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    if (JSON.stringify(current[name] ?? null) !== JSON.stringify(value ?? null)) state.changed.set(name, state.version);
  }
}

/** Thrown by the control API for a request that makes no sense (unknown id, duplicate UPN). */
export class EmulatorControlError extends Error {}

/**
 * The directory of one emulated tenant: users, groups, membership edges, and a change log with a
 * monotonic sequence number from which delta rounds are computed. Deleted objects stay as
 * tombstones so a delta can report `@removed`.
 */
export class EmulatedTenantDirectory {
  readonly tenantId: string;
  /** Latest change sequence number. */
  seq = 0;
  /** Bumped to invalidate every delta and skip token issued so far. */
  tokenGeneration = 1;
  readonly users = new Map<string, Versioned<EmulatedUser>>();
  readonly groups = new Map<string, GroupState>();
  readonly userTombstones = new Map<string, Tombstone>();
  readonly groupTombstones = new Map<string, Tombstone>();
  readonly userIds = new SortedIds();
  readonly groupIds = new SortedIds();
  readonly userChanges: Change[] = [];
  readonly groupChanges: Change[] = [];
  /** Time (epoch ms of the directory's clock) of each change: `changeTimes[seq - 1]`. */
  readonly changeTimes: number[] = [];
  private readonly upns = new Map<string, string>();
  private pendingUserIds: string[] | undefined;
  private readonly now: () => number;

  constructor(tenantId: string, now: () => number = Date.now) {
    this.tenantId = tenantId;
    this.now = now;
  }

  /** The latest change sequence made at or before `time` (0 when none). */
  seqAt(time: number): number {
    let lo = 0;
    let hi = this.changeTimes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.changeTimes[mid] as number) <= time) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Loads many users at once, for large test tenants: the same as {@link addUser} for each, but
   * the id index is sorted once at the end.
   */
  addUsers(inputs: readonly NewEmulatedUser[]): void {
    // Inserting one by one would shift the sorted index once per user.
    const pending: string[] = [];
    this.pendingUserIds = pending;
    try {
      for (const input of inputs) this.addUser(input);
    } finally {
      this.pendingUserIds = undefined;
      this.userIds.insertMany(pending);
    }
  }

  addUser(input: NewEmulatedUser): EmulatedUser {
    const id = input.id ?? randomUUID();
    if (this.users.has(id)) throw new EmulatorControlError(`user ${id} exists`);
    const upnKey = input.userPrincipalName.toLowerCase();
    if (this.upns.has(upnKey)) throw new EmulatorControlError(`userPrincipalName ${input.userPrincipalName} is taken`);
    const user: EmulatedUser = {
      id,
      userPrincipalName: input.userPrincipalName,
      displayName: input.displayName ?? null,
      givenName: input.givenName ?? null,
      surname: input.surname ?? null,
      mail: input.mail ?? null,
      accountEnabled: input.accountEnabled ?? true,
      department: input.department ?? null,
      jobTitle: input.jobTitle ?? null,
      proxyAddresses: input.proxyAddresses ?? [],
      onPremisesImmutableId: input.onPremisesImmutableId ?? null,
      employeeId: input.employeeId ?? null,
    };
    const seq = this.next();
    this.users.set(id, { data: user, version: seq, created: seq, changed: new Map() });
    this.userTombstones.delete(id);
    if (this.pendingUserIds) this.pendingUserIds.push(id);
    else this.userIds.insert(id);
    this.upns.set(upnKey, id);
    this.userChanges.push({ seq, id });
    return { ...user };
  }

  updateUser(id: string, patch: Partial<Omit<EmulatedUser, 'id'>>): EmulatedUser {
    const state = this.users.get(id);
    if (!state) throw new EmulatorControlError(`no live user ${id}`);
    if (patch.userPrincipalName !== undefined && patch.userPrincipalName !== state.data.userPrincipalName) {
      const key = patch.userPrincipalName.toLowerCase();
      if (this.upns.has(key)) throw new EmulatorControlError(`userPrincipalName ${patch.userPrincipalName} is taken`);
      this.upns.delete(state.data.userPrincipalName.toLowerCase());
      this.upns.set(key, id);
    }
    state.version = this.next();
    markChanged(state, patch);
    Object.assign(state.data, patch);
    this.userChanges.push({ seq: state.version, id });
    return { ...state.data };
  }

  /**
   * Deletes a user: soft (to the recycle bin, `@removed: changed`) unless `permanent`. Its
   * memberships go with it, as in Entra ID.
   */
  deleteUser(id: string, options: { permanent?: boolean } = {}): void {
    const state = this.users.get(id);
    if (!state) throw new EmulatorControlError(`no live user ${id}`);
    this.users.delete(id);
    this.userIds.remove(id);
    this.upns.delete(state.data.userPrincipalName.toLowerCase());
    const seq = this.next();
    this.userTombstones.set(id, { seq, reason: options.permanent ? 'deleted' : 'changed' });
    this.userChanges.push({ seq, id });
    this.dropMemberEverywhere(id);
  }

  addGroup(input: NewEmulatedGroup): EmulatedGroup {
    const id = input.id ?? randomUUID();
    if (this.groups.has(id)) throw new EmulatorControlError(`group ${id} exists`);
    const group: EmulatedGroup = {
      id,
      displayName: input.displayName,
      description: input.description ?? null,
      mail: input.mail ?? null,
      mailEnabled: input.mailEnabled ?? false,
      mailNickname: input.mailNickname ?? null,
      securityEnabled: input.securityEnabled ?? true,
      groupTypes: input.groupTypes ?? [],
    };
    const seq = this.next();
    this.groups.set(id, { data: group, version: seq, created: seq, changed: new Map(), edges: new Map(), lastChange: seq });
    this.groupTombstones.delete(id);
    this.groupIds.insert(id);
    this.groupChanges.push({ seq, id });
    return { ...group };
  }

  updateGroup(id: string, patch: Partial<Omit<EmulatedGroup, 'id'>>): EmulatedGroup {
    const state = this.groups.get(id);
    if (!state) throw new EmulatorControlError(`no live group ${id}`);
    state.version = this.next();
    markChanged(state, patch);
    Object.assign(state.data, patch);
    state.lastChange = state.version;
    this.groupChanges.push({ seq: state.version, id });
    return { ...state.data };
  }

  deleteGroup(id: string, options: { permanent?: boolean } = {}): void {
    if (!this.groups.delete(id)) throw new EmulatorControlError(`no live group ${id}`);
    this.groupIds.remove(id);
    const seq = this.next();
    this.groupTombstones.set(id, { seq, reason: options.permanent ? 'deleted' : 'changed' });
    this.groupChanges.push({ seq, id });
    this.dropMemberEverywhere(id);
  }

  /** Adds members (users, groups or devices by id); members already present are left alone. */
  addMembers(groupId: string, memberIds: readonly string[]): void {
    const state = this.groups.get(groupId);
    if (!state) throw new EmulatorControlError(`no live group ${groupId}`);
    const seq = this.next();
    let changed = false;
    for (const memberId of memberIds) {
      const kind: MemberKind | undefined = this.users.has(memberId) ? 'user' : this.groups.has(memberId) ? 'group' : undefined;
      if (kind === undefined) throw new EmulatorControlError(`no live user or group ${memberId}`);
      const edge = state.edges.get(memberId);
      if (edge?.present) continue;
      state.edges.set(memberId, { kind, present: true, seq, added: seq });
      changed = true;
    }
    if (changed) this.touchGroup(state, seq);
  }

  /** Adds a device member (not a user or group: a sync must skip it). */
  addDeviceMember(groupId: string, deviceId: string = randomUUID()): string {
    const state = this.groups.get(groupId);
    if (!state) throw new EmulatorControlError(`no live group ${groupId}`);
    const seq = this.next();
    state.edges.set(deviceId, { kind: 'device', present: true, seq, added: seq });
    this.touchGroup(state, seq);
    return deviceId;
  }

  removeMembers(groupId: string, memberIds: readonly string[]): void {
    const state = this.groups.get(groupId);
    if (!state) throw new EmulatorControlError(`no live group ${groupId}`);
    const seq = this.next();
    let changed = false;
    for (const memberId of memberIds) {
      const edge = state.edges.get(memberId);
      if (!edge?.present) continue;
      edge.present = false;
      edge.seq = seq;
      changed = true;
    }
    if (changed) this.touchGroup(state, seq);
  }

  /** Current members of a group (ids). */
  membersOf(groupId: string): string[] {
    const state = this.groups.get(groupId);
    if (!state) throw new EmulatorControlError(`no live group ${groupId}`);
    return [...state.edges].filter(([, edge]) => edge.present).map(([id]) => id);
  }

  user(id: string): EmulatedUser | undefined {
    const state = this.users.get(id);
    return state ? { ...state.data } : undefined;
  }

  group(id: string): EmulatedGroup | undefined {
    const state = this.groups.get(id);
    return state ? { ...state.data } : undefined;
  }

  private dropMemberEverywhere(memberId: string): void {
    for (const state of this.groups.values()) {
      const edge = state.edges.get(memberId);
      if (!edge?.present) continue;
      edge.present = false;
      edge.seq = this.seq;
      this.touchGroup(state, this.seq);
    }
  }

  private touchGroup(state: GroupState, seq: number): void {
    state.lastChange = seq;
    this.groupChanges.push({ seq, id: state.data.id });
  }

  private next(): number {
    this.seq += 1;
    this.changeTimes.push(this.now());
    return this.seq;
  }
}
