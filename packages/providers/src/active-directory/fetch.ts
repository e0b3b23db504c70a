import { createHash } from 'node:crypto';
import type { Filter } from 'ldapts';
import { CursorRejectedError } from '../errors.ts';
import type { LdapConnection } from '../ldap/connection.ts';
import { parseExtendedDn } from '../ldap/controls.ts';
import { normalizeDn } from '../ldap/dn.ts';
import type { LdapEntry } from '../ldap/protocol.ts';
import { completeRangedAttributes, pagedSearch } from '../ldap/search.ts';
import type { Cursor, FetchPage } from '../types.ts';
import {
  type DcState,
  anyTypeFilter,
  backlinksOf,
  namingContextOf,
  objectSearch,
  readDcState,
  tombstoneSearch,
} from './client.ts';
import type { ActiveDirectorySettings, AdObjectType } from './config.ts';
import { type AdEntry, formatGuid } from './map.ts';

/** The delta position of an Active Directory integration. */
export interface AdCursor {
  readonly kind: 'active_directory';
  readonly method: 'usn' | 'dirsync';
  /** dnsHostName of the DC the position belongs to (USNs are per DC). */
  readonly dc: string;
  /** That DC's invocationId when the position was taken (a restore changes it). */
  readonly invocationId: string;
  /** Highest committed USN read before the fetch started: the next delta reads above it. */
  readonly usn: number;
  /** The DC's clock when the position was taken (ISO); older than the tombstone lifetime → full. */
  readonly takenAt: string;
  /** Fingerprint of bases, filters and object types: another scope needs a full sync. */
  readonly scope: string;
  /** DirSync cookie (base64), for `method: 'dirsync'`. */
  readonly cookie?: string;
}

/** Fingerprint of what the settings select; part of the cursor. */
export function adScopeFingerprint(settings: ActiveDirectorySettings): string {
  const scope = {
    bases: settings.baseDns.map((b) => normalizeDn(b)).sort(),
    filter: settings.filter ?? '',
    exclude: settings.excludeFilter ?? '',
    types: [...settings.objectTypes].sort(),
  };
  return createHash('sha256').update(JSON.stringify(scope)).digest('hex').slice(0, 16);
}

/**
 * Checks a stored cursor's shape against the settings, before connecting; throws
 * {@link CursorRejectedError} saying why it cannot be used.
 */
export function parseAdCursor(cursor: Cursor, settings: ActiveDirectorySettings): AdCursor {
  if (typeof cursor !== 'object' || cursor === null || Array.isArray(cursor)) throw new CursorRejectedError('the cursor is not an object');
  const { kind, method, dc, invocationId, usn, takenAt, scope, cookie } = cursor;
  if (kind !== 'active_directory') throw new CursorRejectedError(`the cursor belongs to provider kind "${String(kind)}", not "active_directory"`);
  if (method !== 'usn' && method !== 'dirsync') throw new CursorRejectedError(`the cursor has an unknown delta method "${String(method)}"`);
  if (typeof dc !== 'string' || typeof invocationId !== 'string' || typeof takenAt !== 'string' || typeof usn !== 'number' || !Number.isSafeInteger(usn)) {
    throw new CursorRejectedError('the cursor lacks its DC, invocationId, USN or time');
  }
  if (Number.isNaN(Date.parse(takenAt))) throw new CursorRejectedError(`the cursor's time "${takenAt}" is not a date`);
  if (method !== settings.deltaMethod) {
    throw new CursorRejectedError(`the delta method changed from "${method}" to "${settings.deltaMethod}" since the cursor was taken`);
  }
  if (method === 'dirsync' && typeof cookie !== 'string') throw new CursorRejectedError('the DirSync cursor has no cookie');
  if (scope !== adScopeFingerprint(settings)) {
    throw new CursorRejectedError('the base DNs, filters or object types changed since the cursor was taken');
  }
  return { kind, method, dc, invocationId, usn, takenAt, scope, ...(typeof cookie === 'string' ? { cookie } : {}) };
}

/**
 * Why a cursor cannot be continued on the DC answering now, or undefined when it can. USNs
 * and tombstones are per DC: another DC, or the same one restored from backup (new
 * invocationId), may have USNs that skip changes; past the tombstone lifetime, deletions may
 * have been purged unseen.
 */
export function cursorRejection(cursor: AdCursor, dc: Pick<DcState, 'dnsHostName' | 'invocationId' | 'currentTimeMs' | 'tombstoneLifetimeDays'>): string | undefined {
  if (cursor.dc !== dc.dnsHostName) {
    return `the cursor was taken on domain controller ${cursor.dc}, but ${dc.dnsHostName} answers now; USNs are per DC`;
  }
  if (cursor.invocationId !== dc.invocationId) {
    return `the invocationId of ${dc.dnsHostName} changed (${cursor.invocationId} → ${dc.invocationId}): the DC was restored from backup, its USNs may repeat`;
  }
  const ageMs = dc.currentTimeMs - Date.parse(cursor.takenAt);
  const lifetimeMs = dc.tombstoneLifetimeDays * 86_400_000;
  if (ageMs > lifetimeMs) {
    return `the cursor is ${Math.floor(ageMs / 86_400_000)} days old, older than the tombstone lifetime (${dc.tombstoneLifetimeDays} days): deletions may have been purged unseen`;
  }
  return undefined;
}

/** Builds the cursor for a position on `dc`. */
export function makeAdCursor(settings: ActiveDirectorySettings, dc: DcState, extra: { cookie?: string } = {}): Cursor {
  const cursor: AdCursor = {
    kind: 'active_directory',
    method: settings.deltaMethod,
    dc: dc.dnsHostName,
    invocationId: dc.invocationId,
    usn: dc.highestCommittedUsn,
    takenAt: new Date(dc.currentTimeMs).toISOString(),
    scope: adScopeFingerprint(settings),
    ...extra,
  };
  return { ...cursor };
}

// Users and contacts before groups: the pipeline resolves member DNs against objects stored.
const typeOrder: readonly AdObjectType[] = ['user', 'contact', 'group'];

/**
 * Reads every in-scope object (narrowed by `extra`), type by type, base by base. Groups come with
 * every member: ranged `member` values are completed with further range reads. `seen` collects
 * the objectGUIDs read. With `withBacklinks` (deltas), every object also comes with every group it
 * belongs to (`memberOf`) and every object it manages (`directReports`), completed the same way:
 * an object moved into the scope or restored is linked to groups and reports whose uSNChanged
 * did not move, so they are not read again.
 */
export async function* readScope(
  connection: LdapConnection,
  settings: ActiveDirectorySettings,
  extra: string | Filter | undefined,
  signal: AbortSignal,
  seen?: Set<string>,
  withBacklinks = false,
): AsyncGenerator<FetchPage<AdEntry>> {
  for (const type of typeOrder) {
    if (!settings.objectTypes.includes(type)) continue;
    const ranged = type === 'group' ? ['member'] : [];
    if (withBacklinks) ranged.push(...backlinksOf(type));
    for (const base of settings.baseDns) {
      for await (const page of pagedSearch(connection, objectSearch(settings, type, base, extra, signal, withBacklinks))) {
        const entries = new Array<AdEntry>(page.length);
        for (let i = 0; i < page.length; i++) {
          let entry = page[i] as LdapEntry;
          if (ranged.length > 0) {
            // Users come in extended DN form (for their manager's GUID), which is no search base.
            const dn = entry.dn;
            const plain = parseExtendedDn(dn).dn;
            const completed = await completeRangedAttributes(connection, plain === dn ? entry : { ...entry, dn: plain }, ranged, {
              ...(settings.rangeSize ? { rangeSize: settings.rangeSize } : {}),
              timeLimitSeconds: settings.timeouts.searchTimeLimitSeconds,
              signal,
            });
            entry = completed.dn === dn ? completed : { ...completed, dn };
          }
          if (seen) {
            const guid = entry.buffers['objectguid']?.[0];
            if (guid) seen.add(guid.toString('hex'));
          }
          entries[i] = withBacklinks ? { type, entry, withBacklinks } : { type, entry };
        }
        yield { entries };
      }
    }
  }
}

/** Every in-scope object; the last page carries the cursor (the USN read before the fetch). */
export async function* fetchAllAdEntries(
  connection: LdapConnection,
  settings: ActiveDirectorySettings,
  signal: AbortSignal,
): AsyncGenerator<FetchPage<AdEntry>> {
  const dc = await readDcState(connection, signal);
  yield* readScope(connection, settings, undefined, signal);
  yield { entries: [], cursor: makeAdCursor(settings, dc) };
}

/** Deletions per page: ids are short, but a page should stay a page. */
const deletionsPerPage = 5000;

/** Naming contexts holding the configured bases (searched for moves out of scope and tombstones). */
function namingContexts(settings: ActiveDirectorySettings, dc: DcState): string[] {
  const found = new Set<string>();
  for (const base of settings.baseDns) {
    const nc = namingContextOf(dc, base);
    if (nc !== undefined) found.add(nc);
  }
  return [...found];
}

/**
 * Changes since the cursor's USN: in-scope objects with a higher uSNChanged (a group whose
 * membership changed comes back with every member; every object with the groups it belongs to
 * and the objects it manages),
 * then deletions: objects changed but no
 * longer in scope (moved out of the bases, or no longer matching the filters), and tombstones
 * (Show Deleted). A deleted user's groups keep their uSNChanged, so the deletion itself must
 * remove its edges (the pipeline does). Throws {@link CursorRejectedError} when the cursor
 * belongs to another DC, a restored one, or is older than the tombstone lifetime.
 */
export async function* fetchAdChanges(
  connection: LdapConnection,
  settings: ActiveDirectorySettings,
  cursor: AdCursor,
  signal: AbortSignal,
): AsyncGenerator<FetchPage<AdEntry>> {
  const dc = await readDcState(connection, signal);
  const rejection = cursorRejection(cursor, dc);
  if (rejection) throw new CursorRejectedError(rejection);
  const changed = `(uSNChanged>=${cursor.usn + 1})`;
  const inScope = new Set<string>();
  yield* readScope(connection, settings, changed, signal, inScope, true);

  const deletions: string[] = [];
  const flush = function* (final: boolean): Generator<FetchPage<AdEntry>> {
    while (deletions.length >= deletionsPerPage || (final && deletions.length > 0)) {
      yield { entries: [], deletions: deletions.splice(0, deletionsPerPage) };
    }
  };
  for (const nc of namingContexts(settings, dc)) {
    const moved = {
      base: nc,
      filter: `(&${anyTypeFilter(settings)}${changed})`,
      attributes: ['objectGUID'],
      binaryAttributes: ['objectGUID'],
      pageSize: settings.pageSize,
      timeLimitSeconds: settings.timeouts.searchTimeLimitSeconds,
      signal,
    };
    for await (const page of pagedSearch(connection, moved)) {
      for (const entry of page) {
        const guid = entry.buffers['objectguid']?.[0];
        if (!guid || inScope.has(guid.toString('hex'))) continue;
        const id = formatGuid(guid);
        if (id) deletions.push(id);
      }
      yield* flush(false);
    }
    for await (const page of pagedSearch(connection, tombstoneSearch(settings, nc, cursor.usn, signal))) {
      for (const entry of page) {
        const guid = entry.buffers['objectguid']?.[0];
        const id = guid && formatGuid(guid);
        if (id) deletions.push(id);
      }
      yield* flush(false);
    }
  }
  yield* flush(true);
  yield { entries: [], cursor: makeAdCursor(settings, dc) };
}
