import { type Filter, FilterParser } from 'ldapts';

/** Thrown for a string that is not an LDAP filter (RFC 4515). */
export class FilterSyntaxError extends Error {
  override readonly name = 'FilterSyntaxError';
}

/**
 * Parses an RFC 4515 filter with ldapts' parser (the one that encodes it on the wire), so a
 * filter accepted here is one the connection can send. Throws {@link FilterSyntaxError}.
 */
export function parseFilter(text: string): Filter {
  const trimmed = text.trim();
  if (trimmed === '') throw new FilterSyntaxError('the filter is empty');
  if (!trimmed.startsWith('(') || !trimmed.endsWith(')')) {
    throw new FilterSyntaxError(`"${text}" must be enclosed in parentheses, e.g. (objectClass=person)`);
  }
  let depth = 0;
  for (let i = 0; i < trimmed.length; i++) {
    const c = trimmed[i];
    if (c === '\\') i++;
    else if (c === '(') depth++;
    else if (c === ')' && --depth < 0) break;
  }
  if (depth !== 0) throw new FilterSyntaxError(`"${text}" has unbalanced parentheses`);
  try {
    return FilterParser.parseString(trimmed);
  } catch (error) {
    throw new FilterSyntaxError(`"${text}" is not a valid LDAP filter: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** True when `text` parses as a filter. */
export function isValidFilter(text: string): boolean {
  try {
    parseFilter(text);
    return true;
  } catch {
    return false;
  }
}

/** `(&a b …)` of the non-empty parts; a single part is returned as is. */
export function andFilters(...parts: readonly (string | undefined)[]): string {
  const present = parts.map((p) => p?.trim()).filter((p): p is string => !!p);
  if (present.length === 0) return '(objectClass=*)';
  if (present.length === 1) return present[0] as string;
  return `(&${present.join('')})`;
}

/** `(|(objectClass=a)(objectClass=b))` for a list of object classes. */
export function objectClassFilter(objectClasses: readonly string[]): string | undefined {
  if (objectClasses.length === 0) return undefined;
  const parts = objectClasses.map((oc) => `(objectClass=${escapeFilterValue(oc)})`);
  return parts.length === 1 ? parts[0] : `(|${parts.join('')})`;
}

/** Escapes a value for use inside a filter assertion (RFC 4515 §3). */
export function escapeFilterValue(value: string): string {
  return value.replace(/[\\*()\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
