import { isGuid } from '../guid.ts';
import { applyOverrides, type CompiledMapping, graphSourceValues, isDefault } from '../mapping/engine.ts';
import type { JsonValue, MapResult, MemberRef } from '../types.ts';

/** A user or group record of a Graph delta page (the properties selected, plus `id`). */
export type GraphRecord = { readonly id?: unknown } & { readonly [property: string]: unknown };

/**
 * How a record stands in its round. `partial`: read from a delta link, so it carries at least the
 * changed properties and an absent one keeps its stored value (an explicit `null` clears it).
 * `repeat`: the round listed the object before (see `CanonicalObject.repeat`).
 */
interface RecordFlags {
  readonly partial?: true;
  readonly repeat?: true;
}

/**
 * A source entry of the Entra ID provider. A group's `members` is its complete member list (ids),
 * set only when the fetch saw the group whole; absent when membership arrives as changes.
 */
export type EntraEntry =
  | ({ readonly type: 'user'; readonly record: GraphRecord } & RecordFlags)
  | ({ readonly type: 'group'; readonly record: GraphRecord; readonly members?: readonly string[] } & RecordFlags);

/** User properties requested with `$select` (besides `id`). */
export const userProperties = [
  'userPrincipalName', 'mail', 'displayName', 'givenName', 'surname', 'accountEnabled', 'department', 'jobTitle',
  'proxyAddresses', 'onPremisesImmutableId', 'employeeId',
] as const;

/** Group properties requested with `$select` (besides `id`; `members` brings `members@delta`). */
export const groupProperties = [
  'displayName', 'description', 'mail', 'mailEnabled', 'mailNickname', 'securityEnabled', 'groupTypes',
] as const;

type Kind = 'string' | 'boolean' | 'strings';

const userKinds: Record<(typeof userProperties)[number], Kind> = {
  userPrincipalName: 'string',
  mail: 'string',
  displayName: 'string',
  givenName: 'string',
  surname: 'string',
  accountEnabled: 'boolean',
  department: 'string',
  jobTitle: 'string',
  proxyAddresses: 'strings',
  onPremisesImmutableId: 'string',
  employeeId: 'string',
};

const groupKinds: Record<(typeof groupProperties)[number], Kind> = {
  displayName: 'string',
  description: 'string',
  mail: 'string',
  mailEnabled: 'boolean',
  mailNickname: 'string',
  securityEnabled: 'boolean',
  groupTypes: 'strings',
};

/** The record's id as an external id (lower-cased GUID), or undefined when it is not one. */
export function recordId(record: GraphRecord): string | undefined {
  const id = typeof record.id === 'string' ? record.id.trim().toLowerCase() : undefined;
  return id !== undefined && isGuid(id) ? id : undefined;
}

type Copied = { attributes: Record<string, JsonValue>; cleared: string[] } | { problem: string };

/**
 * The kinds in sorted order of their names, so that mapped attributes come out with sorted keys
 * and the pipeline's canonical JSON needs no sorted copy of each object (as the LDAP mappers do).
 */
const sortedKinds = (kinds: Record<string, Kind>) => Object.entries(kinds).sort(([a], [b]) => (a < b ? -1 : 1));
const userKindList = sortedKinds(userKinds);
const groupKindList = sortedKinds(groupKinds);

/**
 * The record's properties as canonical attributes. A property the record gives as null, `''` or
 * `[]` is not set: left out, like an absent LDAP attribute, and listed in `cleared` (which only
 * a partial record's merge reads). A property absent from the record is in neither.
 */
function copy(record: GraphRecord, kinds: readonly (readonly [name: string, kind: Kind])[]): Copied {
  const attributes: Record<string, JsonValue> = {};
  const cleared: string[] = [];
  for (const [name, kind] of kinds) {
    if (!Object.hasOwn(record, name)) continue;
    const value = record[name];
    if (value === null || value === undefined) {
      cleared.push(name);
      continue;
    }
    if (kind === 'string') {
      if (typeof value !== 'string') return { problem: `${name} is not a string` };
      if (value !== '') attributes[name] = value;
      else cleared.push(name);
    } else if (kind === 'boolean') {
      if (typeof value !== 'boolean') return { problem: `${name} is not a boolean` };
      attributes[name] = value;
    } else {
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) return { problem: `${name} is not a list of strings` };
      // Graph does not promise an order; a stable one keeps the content hash stable.
      if (value.length > 0) attributes[name] = [...(value as string[])].sort();
      else cleared.push(name);
    }
  }
  return { attributes, cleared };
}

/**
 * Maps a Graph user or group to the canonical shape. Pure. The external id is the object `id`
 * (immutable GUID, lower-cased); there is no DN. Unset (null) properties are left out; lists
 * are sorted. A group carries `members` (by external id) only when the fetch saw its complete
 * member list. A partial entry (from a delta link) maps to a partial object naming the
 * properties the record cleared; the others it does not carry keep their stored values.
 * `mapping` overrides fields and adds extras over the default mapping (see `applyOverrides` for
 * partial records).
 */
export function mapEntraEntry(entry: EntraEntry, mapping?: CompiledMapping): MapResult {
  const externalId = recordId(entry.record);
  if (externalId === undefined) {
    const raw = entry.record.id;
    return {
      ok: false,
      ...(typeof raw === 'string' ? { externalId: raw } : {}),
      reason: `the ${entry.type} has no valid object id (got ${JSON.stringify(raw ?? null)})`,
    };
  }
  const copied = copy(entry.record, entry.type === 'user' ? userKindList : groupKindList);
  if ('problem' in copied) return { ok: false, externalId, reason: `${entry.type} property ${copied.problem}` };
  let cleared = copied.cleared;
  if (mapping !== undefined && !isDefault(mapping, entry.type)) {
    const section = mapping[entry.type];
    const partial = entry.partial === true;
    const overridden = applyOverrides(section, graphSourceValues(entry.record), copied.attributes, partial);
    if (overridden.problem !== undefined) return { ok: false, externalId, reason: overridden.problem };
    // A field the mapping fills from another property is not cleared by its default property.
    cleared = [...cleared.filter((name) => !section.fields.has(name)), ...overridden.cleared];
  }
  const flags = {
    ...(entry.partial === true ? { partial: { cleared } } : {}),
    ...(entry.repeat === true ? { repeat: true } : {}),
  };
  if (entry.type === 'user') return { ok: true, object: { externalId, type: 'user', attributes: copied.attributes, ...flags } };
  if (entry.members === undefined) return { ok: true, object: { externalId, type: 'group', attributes: copied.attributes, ...flags } };
  const members: MemberRef[] = [];
  const seen = new Set<string>();
  for (const id of entry.members) {
    const value = id.toLowerCase();
    if (seen.has(value)) continue;
    seen.add(value);
    members.push({ by: 'externalId', value });
  }
  return { ok: true, object: { externalId, type: 'group', attributes: copied.attributes, members, ...flags } };
}
