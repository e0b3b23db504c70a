import { DnSyntaxError, normalizeDn } from '../ldap/dn.ts';
import type { LdapEntry } from '../ldap/protocol.ts';
import { dominoDefaultMapping, firstValueFields } from '../mapping/defaults.ts';
import { applyOverrides, type CompiledMapping, isDefault, ldapSourceValues } from '../mapping/engine.ts';
import type { JsonValue, MapResult, MemberRef } from '../types.ts';

/** A source entry of the Domino provider: the entry and the search (type) that found it. */
export interface DominoEntry {
  readonly type: 'user' | 'group';
  readonly entry: LdapEntry;
}

/** Attributes read for people (modifyTimestamp only feeds the delta high-water mark). */
export const dominoPersonAttributes = [
  'dominoUNID', 'modifyTimestamp', 'cn', 'mail', 'uid', 'givenName', 'sn', 'title', 'telephoneNumber',
  'mailDomain', 'mailServer', 'mailFile',
] as const;

/** Attributes read for groups, besides the member attributes of the settings. */
export const dominoGroupAttributes = ['dominoUNID', 'modifyTimestamp', 'cn', 'mail', 'description'] as const;

const unidPattern = /^[0-9A-F]{32}$/;

// Canonical name ← source attribute (lower-cased), single-valued: the default mapping's plain
// person fields (names, mail and short names are read below).
const personSingles = firstValueFields(dominoDefaultMapping.user).filter(([canonical]) => !['displayName', 'mail', 'uid'].includes(canonical));

/** The document UNID of an entry, upper case, or undefined. */
export function dominoUnidOf(entry: LdapEntry): string | undefined {
  const raw = entry.attributes['dominounid']?.[0];
  return raw === undefined ? undefined : raw.trim().toUpperCase();
}

/**
 * Maps a Domino entry to the canonical shape. Pure. External id: `dominoUNID` (upper case);
 * `dn`: canonical lower-cased DN. `cn` keeps every value (Domino lists the name's variants),
 * the first being the display name; `uid` holds the short names, the first as `uid`; `mail` is
 * the internet address. Groups always carry `members` (DN references). `mapping` overrides
 * fields and adds extras over the default mapping.
 */
export function mapDominoEntry(source: DominoEntry, memberAttributes: readonly string[], mapping?: CompiledMapping): MapResult {
  const { entry, type } = source;
  let dn: string;
  try {
    dn = normalizeDn(entry.dn);
  } catch (error) {
    const why = error instanceof DnSyntaxError ? error.message : String(error);
    return { ok: false, dn: entry.dn, reason: `the entry's DN cannot be parsed: ${why}` };
  }
  const externalId = dominoUnidOf(entry);
  if (externalId === undefined) return { ok: false, dn, reason: 'the entry has no dominoUNID (may the service account read it?)' };
  if (!unidPattern.test(externalId)) return { ok: false, dn, externalId, reason: `dominoUNID "${externalId}" is not 32 hexadecimal digits` };

  const attributes: Record<string, JsonValue> = {};
  const names = entry.attributes['cn'];
  if (names && names.length > 0) {
    attributes['displayName'] = names[0] as string;
    attributes['cn'] = [...names];
  }
  const mails = entry.attributes['mail'];
  if (mails && mails.length > 0) {
    attributes['mail'] = mails[0] as string;
    if (mails.length > 1) attributes['otherMails'] = mails.slice(1);
  }
  if (type === 'user') {
    const shortNames = entry.attributes['uid'];
    if (shortNames && shortNames.length > 0) {
      attributes['uid'] = shortNames[0] as string;
      attributes['shortNames'] = [...shortNames];
    }
    for (const [canonical, name] of personSingles) {
      const value = entry.attributes[name]?.[0];
      if (value !== undefined) attributes[canonical] = value;
    }
    const problem = mapping === undefined || isDefault(mapping, type) ? undefined : applyOverrides(mapping[type], ldapSourceValues(entry), attributes).problem;
    if (problem !== undefined) return { ok: false, externalId, dn, reason: problem };
    return { ok: true, object: { externalId, type, dn, attributes } };
  }
  const description = entry.attributes['description']?.[0];
  if (description !== undefined) attributes['description'] = description;
  const problem = mapping === undefined || isDefault(mapping, type) ? undefined : applyOverrides(mapping[type], ldapSourceValues(entry), attributes).problem;
  if (problem !== undefined) return { ok: false, externalId, dn, reason: problem };
  return { ok: true, object: { externalId, type, dn, attributes, members: memberRefs(entry, memberAttributes) } };
}

function memberRefs(entry: LdapEntry, memberAttributes: readonly string[]): MemberRef[] {
  const members: MemberRef[] = [];
  const seen = new Set<string>();
  for (const attribute of memberAttributes) {
    for (const raw of entry.attributes[attribute.toLowerCase()] ?? []) {
      if (raw.trim() === '') continue;
      let member: string;
      try {
        member = normalizeDn(raw);
      } catch {
        continue;
      }
      if (seen.has(member)) continue;
      seen.add(member);
      members.push({ by: 'dn', value: member });
    }
  }
  return members;
}
