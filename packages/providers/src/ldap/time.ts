/**
 * LDAP GeneralizedTime (RFC 4517 §3.3.13) as used by `modifyTimestamp` (OpenLDAP:
 * `20240131120000Z`, Active Directory: `20240131120000.0Z`).
 */

const pattern = /^(\d{4})(\d{2})(\d{2})(\d{2})(?:(\d{2})(\d{2})?)?(?:[.,](\d+))?(Z|[+-]\d{2}(?:\d{2})?)$/;

/** Milliseconds since the epoch, or undefined when `value` is not a GeneralizedTime. */
export function parseGeneralizedTime(value: string): number | undefined {
  const m = pattern.exec(value.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi = '00', s = '00', frac, zone = 'Z'] = m;
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return undefined;
  let ms = Date.UTC(Number(y), month - 1, day, hour, minute, Math.min(second, 59));
  if (frac) ms += Math.floor(Number(`0.${frac}`) * (m[6] ? 1000 : m[5] ? 60_000 : 3_600_000));
  if (zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const offset = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5) || '0');
    ms -= sign * offset * 60_000;
  }
  return ms;
}

/** `YYYYMMDDHHMMSSZ` (whole seconds, UTC): the form both OpenLDAP and AD accept in filters. */
export function formatGeneralizedTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
}
