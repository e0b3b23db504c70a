import { changedIds, defaultProperties, odataType, project, type DeltaResource } from './delta.ts';
import type { EmulatedTenantDirectory } from './directory.ts';
import { seededUnit, type EntraRealism } from './realism.ts';

/**
 * A delta round computed whole when it starts, for the {@link EntraRealism} behaviours that shape
 * what a round returns: its records are then served page by page from the plan, so that a page
 * asked for again is the same page. Graph documents each token as "a snapshot of the resource in
 * that round of change tracking" (microsoft-graph-docs-contrib: concepts/delta-query-overview.md,
 * "State tokens").
 */
export interface RoundPlan {
  readonly id: string;
  readonly resource: DeltaResource;
  readonly tenantId: string;
  readonly generation: number;
  readonly sel: readonly string[] | null;
  readonly since: number | null;
  /** Changes up to this sequence number are in the round; the next round starts after it. */
  readonly upTo: number;
  readonly records: readonly Record<string, unknown>[];
}

/** What a plan is made from. */
export interface PlanInput {
  /** What seeded choices (order, duplicates) are keyed on. */
  readonly id: string;
  readonly resource: DeltaResource;
  readonly sel: readonly string[] | null;
  readonly since: number | null;
  readonly upTo: number;
  readonly membersPerRecord: number;
  readonly realism: EntraRealism;
}

type MemberEntry = Record<string, unknown>;

/** Values of an object's properties, shaped by `omitNulls` (partial records keep a changed-to-null property). */
function shapeProperties(record: Record<string, unknown>, omitNulls: boolean, keepNull: ReadonlySet<string> = new Set()): Record<string, unknown> {
  if (!omitNulls) return record;
  const shaped: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(record)) {
    if (value === null && !keepNull.has(name)) continue;
    shaped[name] = value;
  }
  return shaped;
}

/**
 * The property part of an object's record in this round. Partial records: "Updated instances are
 * represented by their id with at least the properties that have been updated"
 * (delta-query-overview.md, "Resource representation in the delta query response"); an object
 * created during the round's window is new, and comes whole. `undefined`: in a partial round, an
 * object none of whose selected properties changed (its record then carries only what else
 * changed, e.g. members).
 */
function propertiesOf(
  data: object,
  meta: { created: number; changed: ReadonlyMap<string, number> },
  properties: readonly string[],
  input: PlanInput,
): Record<string, unknown> {
  const whole = project(data as never, properties);
  const updated = input.since !== null && meta.created <= input.since;
  if (!updated || input.realism.partialRecords !== true) {
    // A property cleared since the last round stays an explicit null even in a whole record:
    // otherwise a client could not tell it from one left out.
    const since = input.since ?? Infinity;
    const cleared = new Set(updated ? properties.filter((name) => whole[name] === null && (meta.changed.get(name) ?? 0) > since) : []);
    return shapeProperties(whole, input.realism.omitNulls === true, cleared);
  }
  const since = input.since as number;
  const record: Record<string, unknown> = { id: whole['id'] };
  const changedToNull = new Set<string>();
  for (const name of properties) {
    if (name === 'members') continue;
    if ((meta.changed.get(name) ?? 0) <= since) continue;
    record[name] = whole[name];
    if (whole[name] === null) changedToNull.add(name);
  }
  // A property cleared to null is sent as an explicit null: it is one of "the properties that have
  // been updated" (delta-query-overview.md), and leaving it out would read as "unchanged".
  return shapeProperties(record, input.realism.omitNulls === true, changedToNull);
}

/** Member entries of a group for this round: as they stood at `upTo` (initial) or changed in `(since, upTo]`. */
function memberEntries(
  edges: ReadonlyMap<string, { kind: 'user' | 'group' | 'device'; present: boolean; seq: number; added: number }>,
  since: number | null,
  upTo: number,
): MemberEntry[] {
  const entries: MemberEntry[] = [];
  for (const [memberId, edge] of edges) {
    const type = odataType[edge.kind];
    if (since === null) {
      // Present at `upTo`: added by then and not removed by then (a removal after it is a later round's news).
      const wasPresent = edge.added <= upTo && (edge.present || edge.seq > upTo);
      if (wasPresent) entries.push({ '@odata.type': type, id: memberId });
      continue;
    }
    if (edge.seq > since && edge.seq <= upTo) {
      entries.push(edge.present ? { '@odata.type': type, id: memberId } : { '@odata.type': type, id: memberId, '@removed': { reason: 'deleted' } });
    } else if (edge.seq > upTo && !edge.present && edge.added > since && edge.added <= upTo) {
      // Added within the window, removed after it: the round reports the addition.
      entries.push({ '@odata.type': type, id: memberId });
    }
  }
  return entries;
}

/** One object's records in the round, in order (a group with many members has several). */
function objectRecords(directory: EmulatedTenantDirectory, id: string, input: PlanInput, properties: readonly string[]): Record<string, unknown>[] {
  const { resource, since, upTo } = input;
  if (resource === 'users') {
    const live = directory.users.get(id);
    if (live) {
      if (since === null && live.created > upTo) return [];
      const record = propertiesOf(live.data, live, properties, input);
      return Object.keys(record).length === 1 && since !== null && live.created <= since && input.realism.partialRecords ? [] : [record];
    }
    const gone = directory.userTombstones.get(id);
    return gone && since !== null && gone.seq <= upTo ? [{ id, '@removed': { reason: gone.reason } }] : [];
  }
  const live = directory.groups.get(id);
  if (!live) {
    const gone = directory.groupTombstones.get(id);
    return gone && since !== null && gone.seq <= upTo ? [{ id, '@removed': { reason: gone.reason } }] : [];
  }
  if (since === null && live.created > upTo) return [];
  const head = propertiesOf(live.data, live, properties, input);
  if (!properties.includes('members')) {
    return Object.keys(head).length === 1 && since !== null && live.created <= since && input.realism.partialRecords ? [] : [head];
  }
  const members = memberEntries(live.edges, since, upTo);
  const size = Math.max(1, input.membersPerRecord);
  const records: Record<string, unknown>[] = [];
  for (let offset = 0; offset === 0 || offset < members.length; offset += size) {
    const chunk = members.slice(offset, offset + size);
    // Graph may repeat a group's properties on each of its records: "you may receive a response
    // again containing the same group object. The same property values will be returned but the
    // expanded members@delta property now contains a different list of users"
    // (microsoft-graph-docs-contrib: concepts/delta-query-groups.md, "Paging through members in a large group").
    const base = offset === 0 || input.realism.continuationWithProperties ? head : { id };
    records.push({ ...base, 'members@delta': chunk });
  }
  if (since !== null && live.created <= since && input.realism.partialRecords && Object.keys(head).length === 1 && members.length === 0) return [];
  return records;
}

/**
 * Spreads every group's records over the round: the records are ordered by a seeded key, a
 * group's parts evenly over the whole round, and a group's first record in that order takes its
 * first part (with its properties), the next one the next part, so a large group's parts have
 * other groups' records between them. Graph: "It is best
 * not to assume a specific sequence of the responses. Assume that the same group could show up
 * anywhere in the nextLink sequence" (delta-query-groups.md, "Paging through members in a large
 * group"); "Assume that the same item can show up anywhere in the @odata.nextLink sequence"
 * (delta-query-overview.md, "Optional query parameters", `$orderby`).
 */
function spread(perObject: readonly (readonly Record<string, unknown>[])[], input: PlanInput): Record<string, unknown>[] {
  const seed = input.realism.seed ?? 1;
  const slots: { key: number; object: number }[] = [];
  perObject.forEach((records, object) => {
    records.forEach((record, part) => {
      const u = seededUnit(seed, input.id, String(record['id']), part);
      // Part k of n lands in the middle half of the k-th n-th of the round: consecutive parts
      // are at least half a stratum apart, whatever the seed.
      slots.push({ key: records.length === 1 ? u : (part + 0.25 + 0.5 * u) / records.length, object });
    });
  });
  slots.sort((a, b) => a.key - b.key);
  const taken = perObject.map(() => 0);
  return slots.map(({ object }) => {
    const part = taken[object] as number;
    taken[object] = part + 1;
    return (perObject[object] as readonly Record<string, unknown>[])[part] as Record<string, unknown>;
  });
}

/**
 * Adds replays: with probability `duplicateRate` an object's record comes a second time, later in
 * the round. Graph: "It's possible that a single entity will be contained multiple times in the
 * response ... Delta queries enable your application to list all the changes, but can't ensure
 * that entities are unified in a single response" (delta-query-overview.md, "Resource
 * representation in the delta query response"; "Replays").
 */
function duplicate(records: readonly Record<string, unknown>[], input: PlanInput): Record<string, unknown>[] {
  const rate = input.realism.duplicateRate ?? 0;
  if (rate <= 0) return [...records];
  const seed = input.realism.seed ?? 1;
  const extra = new Map<number, Record<string, unknown>[]>();
  const seen = new Set<string>();
  records.forEach((record, index) => {
    const id = String(record['id']);
    if (seen.has(id)) return;
    seen.add(id);
    if (seededUnit(seed, input.id, 'duplicate', id) >= rate) return;
    const at = index + Math.floor(seededUnit(seed, input.id, 'duplicate-at', id) * (records.length - index));
    const list = extra.get(at) ?? [];
    list.push(structuredClone(record));
    extra.set(at, list);
  });
  const out: Record<string, unknown>[] = [];
  records.forEach((record, index) => {
    out.push(record);
    for (const copy of extra.get(index) ?? []) out.push(copy);
  });
  return out;
}

/** Every record of a round, in the order the round serves them. */
export function planRecords(directory: EmulatedTenantDirectory, input: PlanInput): Record<string, unknown>[] {
  const properties = input.sel ?? defaultProperties[input.resource];
  const ids =
    input.since === null
      ? input.resource === 'users'
        ? directory.userIds.ids
        : directory.groupIds.ids
      : changedIds(input.resource === 'users' ? directory.userChanges : directory.groupChanges, input.since, input.upTo);
  const perObject = ids.map((id) => objectRecords(directory, id, input, properties)).filter((records) => records.length > 0);
  const ordered = input.resource === 'groups' && input.realism.spreadGroupRecords ? spread(perObject, input) : perObject.flat();
  return duplicate(ordered, input);
}
