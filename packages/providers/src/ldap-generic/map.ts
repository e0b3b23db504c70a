import { isGuid } from '../guid.ts';
import { DnSyntaxError, normalizeDn } from '../ldap/dn.ts';
import type { LdapEntry } from '../ldap/protocol.ts';
import { genericLdapDefaultMapping, type DefaultField } from '../mapping/defaults.ts';
import { applyOverrides, type CompiledMapping, isDefault, ldapSourceValues } from '../mapping/engine.ts';
import type { JsonValue, MapResult, MemberRef } from '../types.ts';

/** A source entry of the generic LDAP provider: the entry and which search found it. */
export interface GenericLdapEntry {
  readonly type: 'user' | 'group';
  readonly entry: LdapEntry;
}

/** What mapping needs from the settings. */
export interface GenericLdapMapOptions {
  /** Group attributes holding member DNs (lower-cased or not). */
  readonly memberAttributes: readonly string[];
  /** The integration's attribute mapping (absent: the default mapping). */
  readonly mapping?: CompiledMapping;
}

/** Attributes read for users: only what mapping and the delta high-water mark use. */
export const userAttributes = [
  'entryUUID', 'modifyTimestamp', 'uid', 'cn', 'sn', 'givenName', 'displayName', 'mail', 'title',
  'departmentNumber', 'telephoneNumber', 'employeeNumber',
] as const;

/** Attributes read for groups, besides the member attributes of the settings. */
export const groupAttributes = ['entryUUID', 'modifyTimestamp', 'cn', 'description', 'mail'] as const;

/**
 * Canonical name ← source attribute (lower-cased), from the default mapping's table:
 * single-valued in the canonical shape, except `otherMails` (the addresses after the first).
 * The table lists the canonical names in sorted order, so mapped attributes come out with
 * sorted keys: the pipeline's canonical JSON then needs no sorted copy.
 */
type Field = readonly [canonical: string, source: string, kind: 'single' | 'otherMails'];
const fieldsOf = (table: readonly DefaultField[]): readonly Field[] =>
  table.map((f) => ('rule' in f ? [f.field, f.rule.from.toLowerCase(), 'single'] : [f.field, (f.from[0] as string).toLowerCase(), 'otherMails']));
const userFields = fieldsOf(genericLdapDefaultMapping.user);
const groupFields = fieldsOf(genericLdapDefaultMapping.group);

function first(entry: LdapEntry, name: string): string | undefined {
  const values = entry.attributes[name];
  return values && values.length > 0 ? values[0] : undefined;
}

// uniqueMember is NameAndOptionalUID: "dn#'0101'B"; the optional UID is not part of the DN.
const optionalUid = /#'[01]*'B$/;

/**
 * Maps a generic LDAP entry to the canonical shape. Pure. The external id is `entryUUID`
 * (lower-cased); the DN goes to `dn` (canonical lower-cased form), never into the attributes,
 * so a rename or move changes nothing but `dn`. `modifyTimestamp` is read for the delta
 * high-water mark only: it changes on writes dirsync does not track (a password change), which
 * must not count as a change. Absent attributes are left out rather than set to null.
 */
export function mapGenericLdapEntry(source: GenericLdapEntry, options: GenericLdapMapOptions): MapResult {
  const { entry, type } = source;
  let dn: string;
  try {
    dn = normalizeDn(entry.dn);
  } catch (error) {
    const why = error instanceof DnSyntaxError ? error.message : String(error);
    return { ok: false, dn: entry.dn, reason: `the entry's DN cannot be parsed: ${why}` };
  }
  const rawId = first(entry, 'entryuuid');
  if (rawId === undefined) {
    return { ok: false, dn, reason: 'the entry has no entryUUID (is the service account allowed to read operational attributes?)' };
  }
  const externalId = rawId.trim().toLowerCase();
  if (!isGuid(externalId)) return { ok: false, dn, externalId: rawId, reason: `entryUUID "${rawId}" is not a UUID` };

  const attributes: Record<string, JsonValue> = {};
  for (const [canonical, source, kind] of type === 'user' ? userFields : groupFields) {
    if (kind === 'otherMails') {
      const values = entry.attributes[source];
      if (values && values.length > 1) attributes[canonical] = values.slice(1);
      continue;
    }
    const value = first(entry, source);
    if (value !== undefined) attributes[canonical] = value;
  }
  if (options.mapping !== undefined && !isDefault(options.mapping, type)) {
    const { problem } = applyOverrides(options.mapping[type], ldapSourceValues(entry), attributes);
    if (problem !== undefined) return { ok: false, dn, externalId, reason: problem };
  }
  if (type === 'user') return { ok: true, object: { externalId, type, dn, attributes } };

  const members: MemberRef[] = [];
  const seen = new Set<string>();
  for (const attribute of options.memberAttributes) {
    const values = entry.attributes[attribute.toLowerCase()];
    if (!values) continue;
    for (const raw of values) {
      const value = raw.endsWith("'B") ? raw.replace(optionalUid, '') : raw;
      // groupOfNames needs a member: empty DNs are placeholders, not members.
      if (value.length === 0 || (value.charCodeAt(0) === 32 && value.trim() === '')) continue;
      let member: string;
      try {
        member = normalizeDn(value);
      } catch {
        continue;
      }
      if (seen.has(member)) continue;
      seen.add(member);
      members.push({ by: 'dn', value: member });
    }
  }
  return { ok: true, object: { externalId, type, dn, attributes, members } };
}
