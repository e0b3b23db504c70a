import { parseExtendedDn } from '../ldap/controls.ts';
import { DnSyntaxError, normalizeDn } from '../ldap/dn.ts';
import type { LdapEntry } from '../ldap/protocol.ts';
import { parseGeneralizedTime } from '../ldap/time.ts';
import { activeDirectoryDefaultMapping, firstValueFields } from '../mapping/defaults.ts';
import { applyOverrides, type CompiledMapping, isDefault, ldapSourceValues, type SourceValues } from '../mapping/engine.ts';
import type { JsonValue, MapResult, MemberRef } from '../types.ts';
import type { AdObjectType } from './config.ts';

/** A source entry of the Active Directory provider: the entry and the search (type) that found it. */
export interface AdEntry {
  readonly type: AdObjectType;
  readonly entry: LdapEntry;
  /**
   * `memberOf` and, for users and contacts, `directReports` were read (completed over their
   * ranges): the object's groups and reports are reported, an absent attribute meaning none.
   * Deltas read them; full syncs read every group's members and every object's manager instead.
   */
  readonly withBacklinks?: boolean;
}

/** Attributes returned as Buffers. */
export const adBinaryAttributes = ['objectGUID', 'objectSid'] as const;

const common = ['objectGUID', 'objectClass', 'whenCreated', 'whenChanged', 'displayName', 'description', 'mail', 'proxyAddresses'] as const;
const person = ['givenName', 'sn', 'department', 'title', 'company', 'telephoneNumber', 'mobile', 'physicalDeliveryOfficeName'] as const;

/** Attributes read for users (manager arrives in extended form, with the manager's objectGUID). */
export const adUserAttributes = [
  ...common, ...person, 'objectSid', 'sAMAccountName', 'userPrincipalName', 'employeeID', 'manager',
  'userAccountControl', 'msDS-User-Account-Control-Computed', 'lockoutTime',
] as const;

/** Attributes read for contacts. */
export const adContactAttributes = [...common, ...person] as const;

/** Attributes read for groups, besides `member` (plain or ranged). */
export const adGroupAttributes = [...common, 'objectSid', 'sAMAccountName', 'groupType'] as const;

const hex = (b: number) => b.toString(16).padStart(2, '0');

/**
 * objectGUID bytes → the canonical GUID string as AD tools show it: the first three fields are
 * little-endian (`S8wcnMbyoECBVzsoPQe9YA==` → `9c1ccc4b-f2c6-40a0-8157-3b283d07bd60`).
 */
export function formatGuid(bytes: Buffer): string | undefined {
  if (bytes.length !== 16) return undefined;
  const b = (i: number) => hex(bytes[i] as number);
  return `${b(3)}${b(2)}${b(1)}${b(0)}-${b(5)}${b(4)}-${b(7)}${b(6)}-${b(8)}${b(9)}-${b(10)}${b(11)}${b(12)}${b(13)}${b(14)}${b(15)}`;
}

/** The canonical GUID string → objectGUID bytes (inverse of {@link formatGuid}). */
export function guidBytes(guid: string): Buffer {
  const h = guid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(h)) throw new Error(`"${guid}" is not a GUID`);
  const raw = Buffer.from(h, 'hex');
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  return Buffer.from(order.map((i) => raw[i] as number));
}

/** objectSid bytes → `S-1-5-21-…`. */
export function formatSid(bytes: Buffer): string | undefined {
  if (bytes.length < 8) return undefined;
  const revision = bytes[0] as number;
  const count = bytes[1] as number;
  if (bytes.length !== 8 + count * 4) return undefined;
  const authority = bytes.readUIntBE(2, 6);
  const parts = [`S-${revision}-${authority}`];
  for (let i = 0; i < count; i++) parts.push(String(bytes.readUInt32LE(8 + i * 4)));
  return parts.join('-');
}

// userAccountControl bits (MS-ADTS 2.2.16).
const accountDisable = 0x2;
const lockout = 0x10;

const groupScopes: readonly (readonly [number, string])[] = [
  [0x1, 'builtinLocal'],
  [0x2, 'global'],
  [0x4, 'domainLocal'],
  [0x8, 'universal'],
];

function first(entry: LdapEntry, name: string): string | undefined {
  const values = entry.attributes[name];
  return values && values.length > 0 ? values[0] : undefined;
}

function isoTime(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const ms = parseGeneralizedTime(value);
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

function integer(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

// Canonical name ← source attribute (lower-cased), single-valued: the default mapping's plain fields.
const singles: Readonly<Record<AdObjectType, readonly (readonly [string, string])[]>> = {
  user: firstValueFields(activeDirectoryDefaultMapping.user),
  contact: firstValueFields(activeDirectoryDefaultMapping.contact),
  group: firstValueFields(activeDirectoryDefaultMapping.group),
};

/** proxyAddresses → primary SMTP address (`SMTP:`), SMTP aliases (`smtp:`), and the full list, sorted. */
function proxies(values: readonly string[] | undefined, into: Record<string, JsonValue>): void {
  if (!values || values.length === 0) return;
  const aliases: string[] = [];
  for (const value of values) {
    const colon = value.indexOf(':');
    if (colon < 0) continue;
    const prefix = value.slice(0, colon);
    if (prefix === 'SMTP') into['primarySmtpAddress'] = value.slice(colon + 1);
    else if (prefix === 'smtp') aliases.push(value.slice(colon + 1));
  }
  if (aliases.length > 0) into['smtpAliases'] = aliases.sort();
  // AD keeps proxyAddresses unordered: sorting keeps the content hash stable.
  into['proxyAddresses'] = [...values].sort();
}

/**
 * Maps an AD entry to the canonical shape. Pure. External id: objectGUID as the canonical GUID
 * string; `dn`: the canonical lower-cased DN (a rename or move changes only `dn`). `manager` is
 * the manager's objectGUID (from the extended DN form). Groups always carry `members` (AD omits
 * an empty `member`), as DN references the pipeline resolves against synced objects. An entry
 * read with its backlinks carries `memberOf` (its groups) and, for users and contacts,
 * `directReports` (whom it manages) the same way, as DN references. `mapping` overrides fields
 * and adds extras over the default mapping.
 */
export function mapAdEntry(source: AdEntry, mapping?: CompiledMapping): MapResult {
  const { entry, type } = source;
  const plainDn = parseExtendedDn(entry.dn).dn;
  let dn: string;
  try {
    dn = normalizeDn(plainDn);
  } catch (error) {
    const why = error instanceof DnSyntaxError ? error.message : String(error);
    return { ok: false, dn: plainDn, reason: `the entry's DN cannot be parsed: ${why}` };
  }
  const guidValue = entry.buffers['objectguid']?.[0];
  if (guidValue === undefined) {
    return { ok: false, dn, reason: 'the entry has no objectGUID (may the service account read it?)' };
  }
  const externalId = formatGuid(guidValue);
  if (externalId === undefined) return { ok: false, dn, reason: `objectGUID has ${guidValue.length} bytes, not 16` };

  const attributes: Record<string, JsonValue> = {};
  for (const [canonical, name] of singles[type]) {
    const value = first(entry, name);
    if (value !== undefined) attributes[canonical] = value;
  }
  proxies(entry.attributes['proxyaddresses'], attributes);
  const sid = entry.buffers['objectsid']?.[0];
  if (sid && type !== 'contact') {
    const text = formatSid(sid);
    if (text !== undefined) attributes['objectSid'] = text;
  }
  const created = isoTime(first(entry, 'whencreated'));
  if (created !== undefined) attributes['whenCreated'] = created;
  const changed = isoTime(first(entry, 'whenchanged'));
  if (changed !== undefined) attributes['whenChanged'] = changed;

  if (type === 'user') {
    const manager = first(entry, 'manager');
    if (manager !== undefined) {
      const parsed = parseExtendedDn(manager);
      if (parsed.guid !== undefined) attributes['manager'] = parsed.guid;
      else attributes['managerDn'] = safeNormalize(parsed.dn);
    }
    const uac = integer(first(entry, 'useraccountcontrol'));
    if (uac !== undefined) attributes['enabled'] = (uac & accountDisable) === 0;
    // The lockout bit is only kept in the constructed attribute; lockoutTime stays set after
    // the lockout expires, so it is the fallback for servers without the constructed one.
    const computed = integer(first(entry, 'msds-user-account-control-computed'));
    const lockoutTime = integer(first(entry, 'lockouttime'));
    if (computed !== undefined) attributes['lockedOut'] = (computed & lockout) !== 0;
    else if (lockoutTime !== undefined) attributes['lockedOut'] = lockoutTime > 0;
    const problem = override(mapping, source, attributes);
    if (problem !== undefined) return { ok: false, externalId, dn, reason: problem };
    return { ok: true, object: { externalId, type, dn, attributes, ...backlinks(source) } };
  }
  if (type === 'contact') {
    const problem = override(mapping, source, attributes);
    if (problem !== undefined) return { ok: false, externalId, dn, reason: problem };
    return { ok: true, object: { externalId, type, dn, attributes, ...backlinks(source) } };
  }

  const groupType = integer(first(entry, 'grouptype'));
  if (groupType !== undefined) {
    attributes['groupCategory'] = (groupType & 0x80000000) !== 0 ? 'security' : 'distribution';
    const scope = groupScopes.find(([bit]) => (groupType & bit) !== 0);
    if (scope) attributes['groupScope'] = scope[1];
  }
  const problem = override(mapping, source, attributes);
  if (problem !== undefined) return { ok: false, externalId, dn, reason: problem };
  return { ok: true, object: { externalId, type, dn, attributes, members: memberRefs(entry.attributes['member']), ...backlinks(source) } };
}

// The extended-DN form a user search asks for (`<GUID=…>;<SID=…>;CN=…`), as AD sends DN values.
const extendedDnPrefix = /^<GUID=[0-9a-fA-F-]{36}>;/;

/**
 * The entry's values as a mapping reads them: DN values in their plain form, as groups and
 * contacts (read without the extended-DN control) have them, so a mapping sees the same text
 * whatever the object type.
 */
function adSourceValues(entry: LdapEntry): SourceValues {
  const values = ldapSourceValues(entry);
  return (name) => {
    const found = values(name);
    if (found === undefined || !found.some((v) => extendedDnPrefix.test(v))) return found;
    return found.map((v) => (extendedDnPrefix.test(v) ? parseExtendedDn(v).dn : v));
  };
}

/** Applies the mapping's overrides and extras; the problem that makes the entry an issue, if any. */
function override(mapping: CompiledMapping | undefined, source: AdEntry, attributes: Record<string, JsonValue>): string | undefined {
  if (mapping === undefined || isDefault(mapping, source.type)) return undefined;
  return applyOverrides(mapping[source.type], adSourceValues(source.entry), attributes).problem;
}

function backlinks(source: AdEntry): { memberOf?: MemberRef[]; directReports?: MemberRef[] } {
  if (source.withBacklinks !== true) return {};
  const memberOf = memberRefs(source.entry.attributes['memberof']);
  if (source.type === 'group') return { memberOf };
  return { memberOf, directReports: memberRefs(source.entry.attributes['directreports']) };
}

function safeNormalize(dn: string): string {
  try {
    return normalizeDn(dn);
  } catch {
    return dn;
  }
}

function memberRefs(values: readonly string[] | undefined): MemberRef[] {
  const members: MemberRef[] = [];
  if (!values) return members;
  const seen = new Set<string>();
  for (const raw of values) {
    const plain = raw.charCodeAt(0) === 60 ? parseExtendedDn(raw).dn : raw;
    let member: string;
    try {
      member = normalizeDn(plain);
    } catch {
      continue;
    }
    if (seen.has(member)) continue;
    seen.add(member);
    members.push({ by: 'dn', value: member });
  }
  return members;
}
