/**
 * Distinguished names (RFC 4514): parsing for validation and a canonical lower-cased form used
 * to match member references against entries. Matching is case-insensitive, which is right for
 * the naming attributes directories use (cn, uid, ou, dc, o).
 */

/** One attribute-value assertion of an RDN, value unescaped. */
export interface Ava {
  readonly type: string;
  readonly value: string;
}

/** A parsed DN: RDNs from the entry up to the root, each with one or more AVAs. */
export type ParsedDn = readonly (readonly Ava[])[];

/** Thrown for a string that is not a DN. */
export class DnSyntaxError extends Error {
  override readonly name = 'DnSyntaxError';
}

const typePattern = /^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*)$/;

function hexValue(c: string): number {
  const n = Number.parseInt(c, 16);
  if (Number.isNaN(n)) throw new DnSyntaxError(`invalid hex digit "${c}"`);
  return n;
}

/** Parses a DN; throws {@link DnSyntaxError} with the reason. The empty string is the root DN. */
export function parseDn(dn: string): ParsedDn {
  const rdns: Ava[][] = [];
  if (dn.trim() === '') return rdns;
  let i = 0;
  const n = dn.length;
  let rdn: Ava[] = [];
  for (;;) {
    // attributeType
    while (i < n && dn[i] === ' ') i++;
    const typeStart = i;
    while (i < n && dn[i] !== '=' && dn[i] !== ',' && dn[i] !== '+') i++;
    const type = dn.slice(typeStart, i).trim();
    if (dn[i] !== '=') throw new DnSyntaxError(`"${dn}": expected "=" after "${type || dn.slice(typeStart)}"`);
    if (!typePattern.test(type)) throw new DnSyntaxError(`"${dn}": "${type}" is not an attribute type`);
    i++;
    while (i < n && dn[i] === ' ') i++;
    let value: string;
    if (dn[i] === '#') {
      // Hex-encoded BER value: kept as written (lower-cased), not decoded.
      const start = i;
      i++;
      while (i < n && /[0-9A-Fa-f]/.test(dn[i] as string)) i++;
      value = dn.slice(start, i).toLowerCase();
      if (value.length < 3 || value.length % 2 === 0) throw new DnSyntaxError(`"${dn}": bad hex value ${value}`);
      while (i < n && dn[i] === ' ') i++;
    } else if (dn[i] === '"') {
      // Quoted values (RFC 2253 compatibility).
      i++;
      let out = '';
      while (i < n && dn[i] !== '"') {
        if (dn[i] === '\\') {
          i++;
          if (i >= n) throw new DnSyntaxError(`"${dn}": dangling escape`);
        }
        out += dn[i];
        i++;
      }
      if (dn[i] !== '"') throw new DnSyntaxError(`"${dn}": unterminated quoted value`);
      i++;
      while (i < n && dn[i] === ' ') i++;
      value = out;
    } else {
      const bytes: number[] = [];
      let lastSignificant = 0;
      while (i < n) {
        const c = dn[i] as string;
        if (c === ',' || c === '+' || c === ';') break;
        if (c === '\\') {
          const next = dn[i + 1];
          if (next === undefined) throw new DnSyntaxError(`"${dn}": dangling escape`);
          if (/[0-9A-Fa-f]/.test(next)) {
            const low = dn[i + 2];
            if (low === undefined) throw new DnSyntaxError(`"${dn}": truncated hex escape`);
            bytes.push(hexValue(next) * 16 + hexValue(low));
            i += 3;
          } else {
            for (const b of Buffer.from(next, 'utf8')) bytes.push(b);
            i += 2;
          }
          lastSignificant = bytes.length;
          continue;
        }
        if (c === '"' || c === '<' || c === '>' || c === '=') throw new DnSyntaxError(`"${dn}": unescaped "${c}" in a value`);
        const encoded = Buffer.from(c, 'utf8');
        for (const b of encoded) bytes.push(b);
        if (c !== ' ') lastSignificant = bytes.length;
        i += c.length;
      }
      // Unescaped trailing spaces are not part of the value.
      value = Buffer.from(bytes.slice(0, lastSignificant)).toString('utf8');
    }
    rdn.push({ type, value });
    if (i >= n) {
      rdns.push(rdn);
      return rdns;
    }
    const sep = dn[i];
    i++;
    if (sep === ',' || sep === ';') {
      rdns.push(rdn);
      rdn = [];
      if (i >= n || dn.slice(i).trim() === '') throw new DnSyntaxError(`"${dn}": ends with a separator`);
    }
  }
}

/** True when `dn` parses as a DN. */
export function isValidDn(dn: string): boolean {
  try {
    parseDn(dn);
    return true;
  } catch {
    return false;
  }
}

function escapeValue(value: string): string {
  if (value.startsWith('#') && /^#(?:[0-9a-f]{2})+$/.test(value)) return value;
  let out = value.replace(/[\\,+"<>;=\0]/g, (c) => (c === '\0' ? '\\00' : `\\${c}`));
  if (out.startsWith(' ') || out.startsWith('#')) out = `\\${out}`;
  if (out.endsWith(' ') && out.length > 1) out = `${out.slice(0, -1)}\\ `;
  return out;
}

/** Renders a parsed DN in canonical form: lower case, no optional spaces, AVAs of an RDN sorted. */
export function formatDn(dn: ParsedDn): string {
  return dn
    .map((rdn) =>
      rdn
        .map((ava) => `${ava.type.toLowerCase()}=${escapeValue(ava.value.toLowerCase())}`)
        .sort()
        .join('+'),
    )
    .join(',');
}

const specialCharacter = /[\\"+;<>#\0]/;
const spaceAtSeparator = / [,=]|[,=] |^ | $/;

/**
 * True when lower-casing alone gives the canonical form: no escapes, quotes, multi-valued RDNs,
 * `#` values or spaces around separators. Shapes that cannot be DNs (empty RDNs, no `=`) go to
 * the parser, which rejects them. Split into cheap tests (2–3× faster than one alternation):
 * member lists hold millions of DNs.
 */
function isPlainDn(dn: string): boolean {
  if (specialCharacter.test(dn)) return false;
  if (dn.includes(' ') && spaceAtSeparator.test(dn)) return false;
  const last = dn.length - 1;
  return last >= 0 && dn.charCodeAt(0) !== 44 && dn.charCodeAt(last) !== 44 && !dn.includes(',,') && dn.includes('=');
}

/**
 * Canonical lower-cased form of a DN, used both as `CanonicalObject.dn` and for member
 * references, so that `uid=Ann, ou=People` and `uid=ann,ou=people` match. Throws
 * {@link DnSyntaxError} for a string that is not a DN.
 */
export function normalizeDn(dn: string): string {
  if (isPlainDn(dn)) return dn.toLowerCase();
  return formatDn(parseDn(dn));
}

/** True when `dn` equals `base` or lies below it (both canonical). */
export function isDnWithin(dn: string, base: string): boolean {
  return base === '' || dn === base || dn.endsWith(`,${base}`);
}
