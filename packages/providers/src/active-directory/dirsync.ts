import { EqualityFilter, type Filter, OrFilter } from 'ldapts';
import { CursorRejectedError, UnavailableError } from '../errors.ts';
import type { LdapConnection } from '../ldap/connection.ts';
import { DirSyncFlags, dirSyncControl, dirSyncOid, parseDirSyncResponse } from '../ldap/controls.ts';
import { pagedSearchPages } from '../ldap/search.ts';
import type { FetchPage } from '../types.ts';
import { type DcState, attributesOf, namingContextOf, readDcState } from './client.ts';
import { mappedSources } from '../mapping/engine.ts';
import type { ActiveDirectorySettings } from './config.ts';
import { type AdCursor, cursorRejection, makeAdCursor, readScope } from './fetch.ts';
import { type AdEntry, formatGuid, guidBytes } from './map.ts';

/**
 * The DirSync delta method: one stream of the objects changed since a cookie, tombstones
 * included. DirSync answers with changed attributes only, so changed objects are read again in
 * full through the scoped searches (which also tells whether they are still in scope).
 */

// Tombstones lose objectCategory: the type filter of a DirSync stream uses objectClass only.
const anyObjectFilter = '(|(objectClass=user)(objectClass=group)(objectClass=contact))';
/**
 * DirSync answers only objects whose requested attributes changed: the mapped attributes, plus
 * `name` (a rename or a move changes it) and `isDeleted` (deletions).
 */
function watchedAttributes(settings: ActiveDirectorySettings): string[] {
  const names = new Set<string>(['objectGUID', 'isDeleted', 'name']);
  for (const type of settings.objectTypes) {
    for (const attribute of attributesOf(type)) names.add(attribute);
    for (const attribute of mappedSources(settings.attributeMapping, type)) names.add(attribute);
  }
  if (settings.objectTypes.includes('group')) names.add('member');
  return [...names];
}

/** Changed objects re-read per scoped search. */
const guidsPerSearch = 100;

function cookieMap(settings: ActiveDirectorySettings, dc: DcState, cookie: string | undefined): Map<string, Buffer> {
  const map = new Map<string, Buffer>();
  if (cookie) {
    const parsed = JSON.parse(Buffer.from(cookie, 'base64').toString('utf8')) as Record<string, string>;
    for (const [nc, value] of Object.entries(parsed)) map.set(nc, Buffer.from(value, 'base64'));
  }
  for (const base of settings.baseDns) {
    const nc = namingContextOf(dc, base);
    if (nc !== undefined && !map.has(nc)) map.set(nc, Buffer.alloc(0));
  }
  return map;
}

function encodeCookies(map: ReadonlyMap<string, Buffer>): string {
  const out: Record<string, string> = {};
  for (const [nc, value] of map) out[nc] = value.toString('base64');
  return Buffer.from(JSON.stringify(out)).toString('base64');
}

interface DirSyncChange {
  readonly id: string;
  readonly deleted: boolean;
}

/** Streams the DirSync answers of one naming context from `cookie`; returns the final cookie. */
async function* dirSyncStream(
  connection: LdapConnection,
  settings: ActiveDirectorySettings,
  namingContext: string,
  cookie: Buffer,
  attributes: readonly string[],
  signal: AbortSignal,
): AsyncGenerator<DirSyncChange[], Buffer> {
  let current = cookie;
  for (;;) {
    const batches = pagedSearchPages(connection, {
      base: namingContext,
      filter: anyObjectFilter,
      attributes,
      binaryAttributes: ['objectGUID'],
      pageSize: 0,
      timeLimitSeconds: settings.timeouts.searchTimeLimitSeconds,
      controls: [dirSyncControl({ flags: DirSyncFlags.objectSecurity, cookie: current })],
      signal,
    });
    let more = false;
    for await (const batch of batches) {
      const response = parseDirSyncResponse(batch.response.controls.find((c) => c.oid === dirSyncOid)?.value);
      if (!response) throw new UnavailableError(`${connection.url} answered a DirSync search without a DirSync cookie`);
      current = response.cookie;
      more = response.more;
      const changes: DirSyncChange[] = [];
      for (const entry of batch.entries) {
        const guid = entry.buffers['objectguid']?.[0];
        const id = guid && formatGuid(guid);
        if (!id) continue;
        changes.push({ id, deleted: (entry.attributes['isdeleted']?.[0] ?? '').toUpperCase() === 'TRUE' });
      }
      if (changes.length > 0) yield changes;
    }
    if (!more) return current;
  }
}

/** `(|(objectGUID=…)…)` for a list of canonical GUID strings, with the bytes as bytes. */
function guidFilter(ids: readonly string[]): Filter {
  return new OrFilter({ filters: ids.map((id) => new EqualityFilter({ attribute: 'objectGUID', value: guidBytes(id) })) });
}

/**
 * A full fetch for the DirSync method: first the DirSync cookie of "now" (a pass over the
 * naming contexts reading objectGUIDs only), then every in-scope object.
 */
export async function* fetchAllWithDirSync(
  connection: LdapConnection,
  settings: ActiveDirectorySettings,
  signal: AbortSignal,
): AsyncGenerator<FetchPage<AdEntry>> {
  const dc = await readDcState(connection, signal);
  const cookies = cookieMap(settings, dc, undefined);
  for (const [nc, cookie] of cookies) {
    // objectGUID never changes after creation: the pass yields the cookie of "now" and few entries.
    const stream = dirSyncStream(connection, settings, nc, cookie, ['objectGUID'], signal);
    let step = await stream.next();
    while (!step.done) step = await stream.next();
    cookies.set(nc, step.value);
  }
  yield* readScope(connection, settings, undefined, signal);
  yield { entries: [], cursor: makeAdCursor(settings, dc, { cookie: encodeCookies(cookies) }) };
}

/** Changes since the cursor's DirSync cookie: changed in-scope objects in full, then deletions. */
export async function* fetchChangesWithDirSync(
  connection: LdapConnection,
  settings: ActiveDirectorySettings,
  cursor: AdCursor,
  signal: AbortSignal,
): AsyncGenerator<FetchPage<AdEntry>> {
  const dc = await readDcState(connection, signal);
  const rejection = cursorRejection(cursor, dc);
  if (rejection) throw new CursorRejectedError(rejection);
  let cookies: Map<string, Buffer>;
  try {
    cookies = cookieMap(settings, dc, cursor.cookie);
  } catch {
    throw new CursorRejectedError('the DirSync cookie of the cursor cannot be read');
  }
  const changed = new Set<string>();
  const deleted = new Set<string>();
  for (const [nc, cookie] of cookies) {
    const stream = dirSyncStream(connection, settings, nc, cookie, watchedAttributes(settings), signal);
    let step = await stream.next();
    while (!step.done) {
      for (const change of step.value) {
        if (change.deleted) {
          deleted.add(change.id);
          changed.delete(change.id);
        } else {
          changed.add(change.id);
        }
      }
      step = await stream.next();
    }
    cookies.set(nc, step.value);
  }
  const ids = [...changed];
  const inScope = new Set<string>();
  for (let i = 0; i < ids.length; i += guidsPerSearch) {
    yield* readScope(connection, settings, guidFilter(ids.slice(i, i + guidsPerSearch)), signal, inScope, true);
  }
  // Changed but not found by the scoped searches: moved out of the bases or filtered out.
  const gone = [...deleted];
  for (const id of ids) if (!inScope.has(guidBytes(id).toString('hex'))) gone.push(id);
  if (gone.length > 0) yield { entries: [], deletions: gone };
  yield { entries: [], cursor: makeAdCursor(settings, dc, { cookie: encodeCookies(cookies) }) };
}
