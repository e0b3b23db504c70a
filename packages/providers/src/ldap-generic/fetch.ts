import { createHash } from 'node:crypto';
import { CursorRejectedError } from '../errors.ts';
import { type LdapConnection, parseLdapUrl } from '../ldap/connection.ts';
import { normalizeDn } from '../ldap/dn.ts';
import { escapeFilterValue } from '../ldap/filter.ts';
import type { LdapEntry } from '../ldap/protocol.ts';
import { type SearchOptions, completeRangedAttributes, pagedSearchRawPages } from '../ldap/search.ts';
import { formatGeneralizedTime, parseGeneralizedTime } from '../ldap/time.ts';
import type { Cursor, FetchPage } from '../types.ts';
import { groupSearch, userSearch } from './client.ts';
import type { GenericLdapSettings } from './config.ts';
import type { GenericLdapEntry } from './map.ts';

/** The delta position of a generic LDAP integration, stored as the integration's cursor. */
export interface GenericLdapCursor {
  readonly kind: 'ldap';
  /** Latest `modifyTimestamp` seen (GeneralizedTime, UTC, whole seconds). */
  readonly highWater: string;
  /** Normalised server URL the mark was read from. */
  readonly server: string;
  /** Fingerprint of bases, filters and member attributes: a changed scope needs a full sync. */
  readonly scope: string;
}

/** Fingerprint of what the settings select; part of the cursor. */
export function scopeFingerprint(settings: GenericLdapSettings): string {
  const scope = {
    users: {
      bases: settings.users.baseDns.map((b) => normalizeDn(b)),
      filter: settings.users.filter ?? '',
      objectClasses: settings.users.objectClasses.map((c) => c.toLowerCase()),
    },
    groups: {
      bases: settings.groups.baseDns.map((b) => normalizeDn(b)),
      filter: settings.groups.filter ?? '',
      objectClasses: settings.groups.objectClasses.map((c) => c.toLowerCase()),
      members: settings.groups.memberAttributes.map((a) => a.toLowerCase()),
    },
  };
  return createHash('sha256').update(JSON.stringify(scope)).digest('hex').slice(0, 16);
}

/**
 * Checks a stored cursor against the settings; throws {@link CursorRejectedError} saying why it
 * cannot be used (the pipeline then runs a full sync and reports the reason).
 */
export function parseCursor(cursor: Cursor, settings: GenericLdapSettings): { highWaterMs: number; cursor: GenericLdapCursor } {
  if (typeof cursor !== 'object' || cursor === null || Array.isArray(cursor)) throw new CursorRejectedError('the cursor is not an object');
  if (cursor['kind'] !== 'ldap') throw new CursorRejectedError(`the cursor belongs to provider kind "${String(cursor['kind'])}", not "ldap"`);
  const { highWater, server, scope } = cursor;
  if (typeof highWater !== 'string') throw new CursorRejectedError('the cursor has no highWater timestamp');
  const highWaterMs = parseGeneralizedTime(highWater);
  if (highWaterMs === undefined) throw new CursorRejectedError(`the cursor's highWater "${highWater}" is not a GeneralizedTime`);
  const here = parseLdapUrl(settings.url).normalized;
  if (server !== here) {
    throw new CursorRejectedError(`the cursor was taken on ${String(server)}, but the integration now reads ${here}; modifyTimestamp marks of another server do not apply`);
  }
  if (scope !== scopeFingerprint(settings)) {
    throw new CursorRejectedError('the base DNs, filters or member attributes changed since the cursor was taken');
  }
  return { highWaterMs, cursor: { kind: 'ldap', highWater, server, scope } };
}

/**
 * Tracks the high-water mark of a fetch: the latest `modifyTimestamp` seen. No server clock is
 * needed (OpenLDAP has none to read). Changes written while a fetch runs and older than the
 * latest stamp seen are caught by the next delta as long as the fetch lasts less than the
 * overlap. A stamp in the future (a replica with a fast clock) is clamped to the client's clock
 * plus the overlap, so it cannot push the mark past changes still to come.
 */
class HighWater {
  private max: number;
  private readonly ceiling: number;
  constructor(start: number, overlapMs: number) {
    this.max = start;
    this.ceiling = Date.now() + overlapMs;
  }
  private maxRaw = '';
  see(entry: LdapEntry): void {
    const stamp = entry.attributes['modifytimestamp']?.[0];
    if (stamp === undefined) return;
    // Stamps of one server share a fixed-width format, where string order is time order: most
    // entries are settled by a comparison instead of a parse.
    if (stamp.length === this.maxRaw.length && stamp <= this.maxRaw) return;
    const ms = parseGeneralizedTime(stamp);
    if (ms === undefined) return;
    if (ms > this.max) this.max = Math.min(ms, this.ceiling);
    if (ms >= this.max) this.maxRaw = stamp;
  }
  get value(): number {
    return this.max;
  }
}

type Search = (settings: GenericLdapSettings, base: string, extra?: string, signal?: AbortSignal) => SearchOptions;

async function* readAll(
  connection: LdapConnection,
  settings: GenericLdapSettings,
  extra: string | undefined,
  mark: HighWater,
  signal: AbortSignal,
): AsyncGenerator<FetchPage<GenericLdapEntry>> {
  // Users first, then groups: the pipeline resolves member DNs against users already stored.
  const passes: (readonly ['user' | 'group', readonly string[], Search])[] = [
    ['user', settings.users.baseDns, userSearch],
    ['group', settings.groups.baseDns, groupSearch],
  ];
  for (const [type, bases, search] of passes) {
    for (const base of bases) {
      for await (const page of pagedSearchRawPages(connection, search(settings, base, extra, signal))) {
        // Each server page is handed on in slices of about `sliceBytes`, decoded only when the
        // consumer asks for the slice: a page of large groups never exists decoded all at once.
        const raw = page.entries;
        let next = 0;
        while (next < raw.length) {
          const entries: GenericLdapEntry[] = [];
          let bytes = 0;
          while (next < raw.length && (entries.length === 0 || bytes < sliceBytes)) {
            bytes += raw.size(next);
            let entry = raw.entry(next);
            next += 1;
            mark.see(entry);
            // Servers with a value cap (AD behind a generic integration) send member;range=…
            if (type === 'group') entry = await completeRangedAttributes(connection, entry, settings.groups.memberAttributes, { signal, timeLimitSeconds: settings.timeouts.searchTimeLimitSeconds });
            entries.push({ type, entry });
          }
          yield { entries };
        }
      }
    }
  }
}

/**
 * Bytes of server data decoded per page handed to the pipeline: about 200 users or 15 groups of
 * 100 members, small enough to be processed and dropped before the garbage collector's young
 * generation fills up.
 */
const sliceBytes = 64 * 1024;

/** Every user, then every group; the last page carries the cursor. Never reports deletions. */
export async function* fetchAllEntries(
  connection: LdapConnection,
  settings: GenericLdapSettings,
  signal: AbortSignal,
): AsyncGenerator<FetchPage<GenericLdapEntry>> {
  const mark = new HighWater(0, settings.deltaOverlapSeconds * 1000);
  yield* readAll(connection, settings, undefined, mark, signal);
  yield { entries: [], cursor: makeCursor(settings, mark.value) };
}

/**
 * Users and groups with `modifyTimestamp >= highWater - overlap`. Deletions are never
 * reported: absence proves nothing here, full syncs find them.
 */
export async function* fetchChangedEntries(
  connection: LdapConnection,
  settings: GenericLdapSettings,
  highWaterMs: number,
  signal: AbortSignal,
): AsyncGenerator<FetchPage<GenericLdapEntry>> {
  const since = formatGeneralizedTime(Math.max(0, highWaterMs - settings.deltaOverlapSeconds * 1000));
  const mark = new HighWater(highWaterMs, settings.deltaOverlapSeconds * 1000);
  yield* readAll(connection, settings, `(modifyTimestamp>=${escapeFilterValue(since)})`, mark, signal);
  yield { entries: [], cursor: makeCursor(settings, mark.value) };
}

function makeCursor(settings: GenericLdapSettings, highWaterMs: number): Cursor {
  const cursor: GenericLdapCursor = {
    kind: 'ldap',
    highWater: formatGeneralizedTime(highWaterMs),
    server: parseLdapUrl(settings.url).normalized,
    scope: scopeFingerprint(settings),
  };
  return { ...cursor };
}
