import { escapeFilterValue } from '../ldap/filter.ts';
import type { LdapEntry } from '../ldap/protocol.ts';

/**
 * Pure planning of the split searches a Domino reader issues when the server caps answers and
 * does not page. A part is "entries whose `attribute` has a value starting with `prefix`"; a part
 * the cap cuts short is split into one part per next character the directory actually uses
 * (learnt from the entries the capped answer did return) and a remainder: the part without
 * those children. The remainder is searched; when it is cut short too, the characters of its
 * entries are added and it shrinks again. The children and the remainder together select
 * exactly the part, whatever the server's matching rules, so nothing can be missed.
 */

/**
 * How a value is compared with a prefix: NFKC, lower case, runs of white space as one space,
 * the way directory servers prepare strings for case-insensitive substring matching.
 */
export function foldValue(value: string): string {
  return value.normalize('NFKC').toLowerCase().replace(/\s+/gu, ' ');
}

/**
 * The characters (folded code points, in first-seen order) that follow `prefix` in the values of
 * `attribute` of `entries`. Values that do not start with the prefix (other values of a
 * multi-valued name) or end with it add nothing.
 */
export function nextCharacters(entries: readonly LdapEntry[], attribute: string, prefix: string): string[] {
  const key = attribute.toLowerCase();
  const out = new Set<string>();
  for (const entry of entries) {
    for (const raw of entry.attributes[key] ?? []) {
      if (typeof raw !== 'string') continue;
      const value = foldValue(raw);
      if (!value.startsWith(prefix)) continue;
      const next = value.codePointAt(prefix.length);
      if (next !== undefined) out.add(String.fromCodePoint(next));
    }
  }
  return [...out];
}

/** Filter value escaping of RFC 4515, plus non-printable ASCII; other characters go as UTF-8. */
export function escapeAssertion(value: string): string {
  return escapeFilterValue(value).replace(/[\x01-\x1f\x7f]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** `(attribute=prefix*)`, or undefined for the empty prefix (every entry). */
export function prefixFilter(attribute: string, prefix: string): string | undefined {
  return prefix === '' ? undefined : `(${attribute}=${escapeAssertion(prefix)}*)`;
}

/** The entries of a part that none of its children (prefix + each character) selects. */
export function remainderFilter(attribute: string, prefix: string, characters: readonly string[]): string | undefined {
  if (characters.length === 0) return undefined;
  const children = characters.map((c) => `(${attribute}=${escapeAssertion(prefix + c)}*)`);
  return `(!${children.length === 1 ? children[0] : `(|${children.join('')})`})`;
}

/**
 * Attributes a split goes through in order: the configured one, then `dominoUNID` (unique per
 * entry, so a part of entries sharing one name can always be split further by it).
 */
export function splitAttributes(configured: string): string[] {
  return configured.toLowerCase() === 'dominounid' ? [configured] : [configured, 'dominoUNID'];
}

/** What a reader did to read one search, for Test Connection and logs. */
export interface SplitReport {
  /** Largest number of entries a capped answer returned: the server's cap. */
  cap: number | undefined;
  /** Searches sent (including the ones cut short). */
  searches: number;
  /** Searches cut short by the cap. */
  capped: number;
  /** Parts read whole. */
  parts: number;
  /** Deepest prefix length reached. */
  depth: number;
  /** Parts that could not be narrowed by their attribute and were split by the next one. */
  fallbacks: number;
  /** First characters of the first split, in the order learnt. */
  first: string[];
  /** Attribute of the first split. */
  firstAttribute: string | undefined;
}

export function emptySplitReport(): SplitReport {
  return { cap: undefined, searches: 0, capped: 0, parts: 0, depth: 0, fallbacks: 0, first: [], firstAttribute: undefined };
}

/** One line describing a split: the cap found and how the first split proceeded. */
export function describeSplit(report: SplitReport): string {
  if (report.capped === 0) return `one answer, ${report.searches} search${report.searches === 1 ? '' : 'es'}`;
  const shown = report.first.slice(0, 8).map((c) => JSON.stringify(c)).join(', ');
  const more = report.first.length > 8 ? `, … (${report.first.length})` : '';
  const fallback = report.fallbacks > 0 ? `; ${report.fallbacks} part${report.fallbacks === 1 ? '' : 's'} of identical ${report.firstAttribute ?? 'names'} split by dominoUNID` : '';
  return (
    `answers capped at ${report.cap ?? '?'} entries; split by the first characters of ${report.firstAttribute ?? '?'} (${shown}${more}) and the rest, ` +
    `${report.parts} parts, prefixes up to ${report.depth} characters, ${report.searches} searches (${report.capped} cut short)${fallback}`
  );
}
