import { createHash } from 'node:crypto';
import { CursorRejectedError } from '../errors.ts';
import { type LdapConnection, parseLdapUrl } from '../ldap/connection.ts';
import { normalizeDn } from '../ldap/dn.ts';
import { escapeFilterValue } from '../ldap/filter.ts';
import { formatGeneralizedTime, parseGeneralizedTime } from '../ldap/time.ts';
import type { Cursor, FetchPage } from '../types.ts';
import { DominoReader, dominoSearch } from './client.ts';
import { type DominoSettings, dominoScopeOf } from './config.ts';
import type { DominoEntry } from './map.ts';

/** The delta position of a Domino integration. */
export interface DominoCursor {
  readonly kind: 'domino';
  /** `modifyTimestamp`: read entries stamped since `highWater`; `hash`: read everything. */
  readonly method: 'modifyTimestamp' | 'hash';
  /** Latest modifyTimestamp seen (GeneralizedTime), for the modifyTimestamp method. */
  readonly highWater?: string;
  /** Normalised server URL (stamps of another server do not apply). */
  readonly server: string;
  /** Fingerprint of bases, scopes, filters, object classes and member attributes. */
  readonly scope: string;
}

/** Fingerprint of what the settings select; part of the cursor. */
export function dominoScopeFingerprint(settings: DominoSettings): string {
  const section = (s: { baseDns: readonly string[]; scope?: 'one' | 'sub' | undefined; filter?: string | undefined; objectClasses: readonly string[] }) => ({
    bases: s.baseDns.map((b) => normalizeDn(b)).sort(),
    // Only a one-level scope is written, so cursors taken before scopes existed (all subtree)
    // stay valid; a changed scope changes the fingerprint either way.
    ...(dominoScopeOf(s) === 'one' ? { scope: 'one' } : {}),
    filter: s.filter ?? '',
    classes: s.objectClasses.map((c) => c.toLowerCase()).sort(),
  });
  const scope = { users: section(settings.users), groups: { ...section(settings.groups), members: settings.groups.memberAttributes.map((a) => a.toLowerCase()) } };
  return createHash('sha256').update(JSON.stringify(scope)).digest('hex').slice(0, 16);
}

/** Checks a stored cursor against the settings; throws {@link CursorRejectedError} saying why it cannot be used. */
export function parseDominoCursor(cursor: Cursor, settings: DominoSettings): DominoCursor {
  if (typeof cursor !== 'object' || cursor === null || Array.isArray(cursor)) throw new CursorRejectedError('the cursor is not an object');
  const { kind, method, highWater, server, scope } = cursor;
  if (kind !== 'domino') throw new CursorRejectedError(`the cursor belongs to provider kind "${String(kind)}", not "domino"`);
  if (method !== 'modifyTimestamp' && method !== 'hash') throw new CursorRejectedError(`the cursor has an unknown delta method "${String(method)}"`);
  if (method === 'modifyTimestamp' && (typeof highWater !== 'string' || parseGeneralizedTime(highWater) === undefined)) {
    throw new CursorRejectedError('the cursor has no valid modifyTimestamp high-water mark');
  }
  const here = parseLdapUrl(settings.url).normalized;
  if (server !== here) throw new CursorRejectedError(`the cursor was taken on ${String(server)}, but the integration now reads ${here}`);
  if (scope !== dominoScopeFingerprint(settings)) throw new CursorRejectedError('the base DNs, scopes, filters, object classes or member attributes changed since the cursor was taken');
  if (method === 'modifyTimestamp' && settings.deltaMethod === 'hash') throw new CursorRejectedError('the delta method changed to "hash" since the cursor was taken');
  return { kind, method, ...(typeof highWater === 'string' ? { highWater } : {}), server: here, scope };
}

/**
 * The latest modifyTimestamp seen. A stamp in the future (a server with a fast clock) is clamped
 * to the client's clock plus the overlap, so it cannot push the mark past changes still to come.
 */
class HighWater {
  #max: number;
  #seen = false;
  readonly #ceiling: number;
  constructor(start: number, overlapMs: number) {
    this.#max = start;
    this.#ceiling = Date.now() + overlapMs;
  }
  see(stamp: string | undefined): void {
    if (stamp === undefined) return;
    const ms = parseGeneralizedTime(stamp);
    if (ms === undefined) return;
    this.#seen = true;
    if (ms > this.#max) this.#max = Math.min(ms, this.#ceiling);
  }
  /** True once an entry showed a modifyTimestamp. */
  get seen(): boolean {
    return this.#seen;
  }
  get value(): number {
    return this.#max;
  }
}

async function* readAll(
  reader: DominoReader,
  settings: DominoSettings,
  extra: string | undefined,
  mark: HighWater,
): AsyncGenerator<FetchPage<DominoEntry>> {
  // People first: the pipeline resolves member DNs against entries already stored.
  for (const [type, bases] of [['user', settings.users.baseDns], ['group', settings.groups.baseDns]] as const) {
    for (const base of bases) {
      for await (const page of reader.read(dominoSearch(settings, type, base, extra))) {
        const entries = new Array<DominoEntry>(page.length);
        for (let i = 0; i < page.length; i++) {
          const entry = page[i] as DominoEntry['entry'];
          mark.see(entry.attributes['modifytimestamp']?.[0]);
          entries[i] = { type, entry };
        }
        if (entries.length > 0) yield { entries };
      }
    }
  }
}

function makeCursor(settings: DominoSettings, mark: HighWater, previous?: DominoCursor): Cursor {
  const stamps = settings.deltaMethod === 'auto' && (mark.seen || previous?.method === 'modifyTimestamp');
  const cursor: DominoCursor = {
    kind: 'domino',
    method: stamps ? 'modifyTimestamp' : 'hash',
    ...(stamps ? { highWater: formatGeneralizedTime(mark.value) } : {}),
    server: parseLdapUrl(settings.url).normalized,
    scope: dominoScopeFingerprint(settings),
  };
  return { ...cursor };
}

/** Every person, then every group; the last page carries the cursor. Never reports deletions. */
export async function* fetchAllDominoEntries(connection: LdapConnection, settings: DominoSettings, signal: AbortSignal): AsyncGenerator<FetchPage<DominoEntry>> {
  const mark = new HighWater(0, settings.deltaOverlapSeconds * 1000);
  yield* readAll(new DominoReader(connection, settings, signal), settings, undefined, mark);
  yield { entries: [], cursor: makeCursor(settings, mark) };
}

/**
 * Changes since the cursor: entries with `modifyTimestamp >= highWater - overlap`, or, for a
 * server without stamps, every entry (the pipeline writes only what changed). Deletions are
 * never reported: absence proves nothing here, full syncs find them.
 */
export async function* fetchDominoChanges(
  connection: LdapConnection,
  settings: DominoSettings,
  cursor: DominoCursor,
  signal: AbortSignal,
): AsyncGenerator<FetchPage<DominoEntry>> {
  const reader = new DominoReader(connection, settings, signal);
  if (cursor.method === 'hash') {
    const mark = new HighWater(0, settings.deltaOverlapSeconds * 1000);
    yield* readAll(reader, settings, undefined, mark);
    yield { entries: [], cursor: makeCursor(settings, mark) };
    return;
  }
  const highWaterMs = parseGeneralizedTime(cursor.highWater as string) as number;
  const since = formatGeneralizedTime(Math.max(0, highWaterMs - settings.deltaOverlapSeconds * 1000));
  const mark = new HighWater(highWaterMs, settings.deltaOverlapSeconds * 1000);
  yield* readAll(reader, settings, `(modifyTimestamp>=${escapeFilterValue(since)})`, mark);
  yield { entries: [], cursor: makeCursor(settings, mark, cursor) };
}
