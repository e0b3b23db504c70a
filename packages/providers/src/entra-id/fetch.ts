import type { AttributeMapping } from '@dirsync/contracts';
import { createHash } from 'node:crypto';
import { CursorRejectedError, UnavailableError } from '../errors.ts';
import type { Cursor, FetchPage, MemberDelta, MemberRef } from '../types.ts';
import { DeltaTokenExpiredError, type GraphClient } from './client.ts';
import type { EntraIdSettings } from './config.ts';
import { GroupAccumulator, hasProperties, MemberChangeAccumulator, SeenIds } from './accumulate.ts';
import { withMappedSources } from '../mapping/engine.ts';
import { type EntraEntry, type GraphRecord, groupProperties, recordId, userProperties } from './map.ts';

/** The delta cursor of an Entra ID integration: one Graph delta link per resource. */
export interface EntraCursor {
  readonly kind: 'entra_id';
  readonly tenantId: string;
  /** Fingerprint of what was selected: a different selection needs a new initial round. */
  readonly selection: string;
  readonly users: string;
  readonly groups: string;
}

/** One page of a delta round as Graph sent it. */
interface RoundPage {
  readonly value: readonly GraphRecord[];
  /** Set on the round's last page. */
  readonly deltaLink?: string;
}

/** Member types synced as edges; devices, service principals and contacts are left out. */
const memberTypes = new Set(['#microsoft.graph.user', '#microsoft.graph.group']);

/** The `$select` lists: the default properties and those the attribute mapping reads. */
function selects(mapping: AttributeMapping | undefined): { users: string; groups: string } {
  return {
    users: withMappedSources(['id', ...userProperties], mapping, 'user').join(','),
    groups: withMappedSources(['id', ...groupProperties, 'members'], mapping, 'group').join(','),
  };
}

function fingerprint(select: { users: string; groups: string }): string {
  return createHash('sha1').update(`${select.users}|${select.groups}`).digest('hex').slice(0, 12);
}

/** Fingerprint of the default `$select` lists (no attribute mapping), stored in the cursor. */
export const selectionFingerprint = fingerprint(selects(undefined));

/**
 * Fingerprint of the `$select` lists of these settings: a mapping that reads other properties
 * changes it, so the next delta is refused and a full sync reads every object with them.
 */
export function selectionFingerprintOf(settings: Pick<EntraIdSettings, 'attributeMapping'>): string {
  return fingerprint(selects(settings.attributeMapping));
}

/** A full fetch restarts a round whose skip token expired at most this often. */
const maxRoundRestarts = 2;

function initialUrl(settings: Pick<EntraIdSettings, 'graphBaseUrl' | 'attributeMapping'>, resource: 'users' | 'groups'): string {
  const select = selects(settings.attributeMapping)[resource];
  return `${settings.graphBaseUrl}/v1.0/${resource}/delta?$select=${select}`;
}

function isRecord(value: unknown): value is GraphRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Follows a delta round page by page from `url`: `@odata.nextLink` until `@odata.deltaLink`.
 * Each page is handed on as it arrives; nothing is kept.
 */
async function* readRound(client: GraphClient, url: string, pageSize: number, signal: AbortSignal): AsyncGenerator<RoundPage> {
  let next: string | undefined = url;
  while (next !== undefined) {
    const body = await client.getJson(next, signal, { prefer: `odata.maxpagesize=${pageSize}` });
    if (!isRecord(body) || !Array.isArray(body['value'])) {
      throw new UnavailableError('Graph answered a delta request without a value array');
    }
    const nextLink = body['@odata.nextLink'];
    const deltaLink = body['@odata.deltaLink'];
    const value = (body['value'] as unknown[]).filter(isRecord);
    if (typeof nextLink === 'string') {
      next = nextLink;
      yield { value };
    } else if (typeof deltaLink === 'string') {
      next = undefined;
      yield { value, deltaLink };
    } else {
      throw new UnavailableError('Graph answered a delta page with neither @odata.nextLink nor @odata.deltaLink');
    }
  }
}

function isRemoved(record: GraphRecord): boolean {
  return isRecord(record['@removed']);
}

/** The `members@delta` entries of a group record, split into added and removed member ids. */
function changesOf(record: GraphRecord): { added: string[]; removed: string[] } {
  const added: string[] = [];
  const removed: string[] = [];
  const list = record['members@delta'];
  if (!Array.isArray(list)) return { added, removed };
  for (const item of list) {
    if (!isRecord(item)) continue;
    const id = recordId(item);
    if (id === undefined) continue;
    const type = item['@odata.type'];
    if (typeof type === 'string' && !memberTypes.has(type)) continue;
    (isRemoved(item) ? removed : added).push(id);
  }
  return { added, removed };
}

const toRefs = (ids: readonly string[]): MemberRef[] => ids.map((value) => ({ by: 'externalId', value }));

/**
 * Whether Graph dropped the round's state token: {@link DeltaTokenExpiredError}, or a 410 Gone
 * however a client surfaces it. Graph's synchronization reset answers 410 with a `Location` "same
 * as the initial query" (concepts/delta-query-overview.md, "Synchronization reset"), which the
 * error may carry as `location`: a full round starts over from its own initial URL instead, the
 * same query, built from the settings rather than from what the server named.
 */
export function isRoundExpired(error: unknown): boolean {
  if (error instanceof DeltaTokenExpiredError) return true;
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { code?: unknown; status?: unknown; statusCode?: unknown };
  if (e.code === 'delta_token_expired') return true;
  return e.status === 410 || e.statusCode === 410;
}

/**
 * Reads a round from the start for a full sync, restarting it when Graph drops its skip token
 * midway (what was already handed on stays true; the restart sees every object again).
 */
async function* fullRound(
  client: GraphClient,
  settings: EntraIdSettings,
  resource: 'users' | 'groups',
  signal: AbortSignal,
  onRestart: () => void,
  state: { deltaLink?: string },
): AsyncGenerator<RoundPage> {
  for (let restarts = 0; ; restarts++) {
    try {
      for await (const page of readRound(client, initialUrl(settings, resource), settings.pageSize, signal)) {
        if (page.deltaLink !== undefined) state.deltaLink = page.deltaLink;
        yield page;
      }
      return;
    } catch (error) {
      if (!isRoundExpired(error) || restarts >= maxRoundRestarts) throw error;
      onRestart();
    }
  }
}

/**
 * Full sync: the initial rounds of `users/delta` and `groups/delta`; the final page carries the
 * cursor (both delta links). `@removed` entries are ignored: a full sync's sweep finds deletions.
 *
 * Users are handed on page by page; one the round lists again is flagged `repeat` (counted once).
 * Groups are handed on only when their round is complete, each once with its complete member
 * list: Graph may give a group's `members@delta` in parts anywhere in the round, and a group
 * handed on with part of its members would have its stored edges removed and added back within
 * the run. Member lists must be held until the round ends whatever is done with the properties,
 * and the properties are small beside them (see {@link GroupAccumulator} for the figures), so
 * holding both keeps the pipeline's contract (a group's `members` is its complete list, which an
 * unchanged group matches by its members hash, writing nothing). A round restarted after an
 * expired skip token starts the groups over.
 *
 * The groups round is read alongside the users round: once a users page is handed on, the next
 * groups page is requested together with the next users page, so the groups round, which writes
 * nothing until it is complete, waits neither for the users' writes nor for their requests. The
 * two rounds are independent (each its own links, restarts and accumulator); at most one request
 * of each is in flight, groups page k is asked for only after users page k was handed on, and
 * pages are handed on in one fixed order. Only one page of each is held beyond the accumulator.
 */
export async function* fetchAllEntries(client: GraphClient, settings: EntraIdSettings, signal: AbortSignal): AsyncGenerator<FetchPage<EntraEntry>> {
  // Kept over a restart of the users round: what the first pass handed on is in the run already.
  const seenUsers = new SeenIds();
  const users: { deltaLink?: string } = {};
  let accumulated = new GroupAccumulator();
  const groups: { deltaLink?: string } = {};
  const restart = () => {
    accumulated = new GroupAccumulator();
  };
  const groupPages = fullRound(client, settings, 'groups', signal, restart, groups);
  let groupsDone = false;
  /** Reads the next groups page into the accumulator; its records without a valid id go on at once (they become issues). */
  const nextGroups = async (): Promise<EntraEntry[]> => {
    const next = await groupPages.next();
    if (next.done === true) {
      groupsDone = true;
      return [];
    }
    const entries: EntraEntry[] = [];
    for (const record of next.value.value) {
      if (isRemoved(record)) continue;
      const id = recordId(record);
      if (id === undefined) entries.push({ type: 'group', record });
      else accumulated.add(id, record, changesOf(record));
    }
    return entries;
  };
  /** The groups page in flight while the next users page is read. */
  let groupsPending: Promise<EntraEntry[]> | undefined;
  try {
    for await (const page of fullRound(client, settings, 'users', signal, () => undefined, users)) {
      if (groupsPending !== undefined) {
        const invalid = await groupsPending;
        groupsPending = undefined;
        if (invalid.length > 0) yield { entries: invalid };
      }
      const entries: EntraEntry[] = [];
      for (const record of page.value) {
        if (isRemoved(record)) continue;
        const id = recordId(record);
        entries.push(id !== undefined && seenUsers.add(id) ? { type: 'user', record, repeat: true } : { type: 'user', record });
      }
      yield { entries };
      if (!groupsDone) {
        groupsPending = nextGroups();
        // Observed when the next users page arrives; this only keeps a failure meanwhile from
        // counting as unhandled.
        groupsPending.catch(() => undefined);
      }
    }
    if (groupsPending !== undefined) {
      const invalid = await groupsPending;
      groupsPending = undefined;
      if (invalid.length > 0) yield { entries: invalid };
    }
    while (!groupsDone) {
      // Each page is handed on, empty or not, so the pipeline sees the fetch moving and can stop it.
      const invalid = await nextGroups();
      if (!groupsDone || invalid.length > 0) yield { entries: invalid };
    }
  } finally {
    // Stopped early (abort, error, or the caller's break). A groups request may still be in
    // flight, and an async generator handles `return()` only once it settles: waiting here could
    // hang on a stalled server, so the round is closed without waiting (the caller aborts the
    // signal, which ends that request).
    if (!groupsDone) void groupPages.return(undefined).catch(() => undefined);
  }
  if (users.deltaLink === undefined || groups.deltaLink === undefined) {
    throw new UnavailableError('a delta round ended without a delta link');
  }
  for (const part of accumulated.pages(settings.pageSize)) {
    yield { entries: part.map(({ record, members }): EntraEntry => ({ type: 'group', record, members })) };
  }
  const cursor: EntraCursor = {
    kind: 'entra_id',
    tenantId: settings.tenantId.toLowerCase(),
    selection: selectionFingerprintOf(settings),
    users: users.deltaLink,
    groups: groups.deltaLink,
  };
  yield { entries: [], cursor: { ...cursor } };
}

/**
 * Checks that a stored cursor belongs to these settings. Throws {@link CursorRejectedError} with
 * the reason otherwise.
 */
export function parseCursor(cursor: Cursor, settings: Pick<EntraIdSettings, 'tenantId' | 'graphBaseUrl' | 'attributeMapping'>): EntraCursor {
  const { kind, tenantId, selection, users, groups } = cursor as Partial<Record<keyof EntraCursor, unknown>>;
  if (kind !== 'entra_id' || typeof users !== 'string' || typeof groups !== 'string') {
    throw new CursorRejectedError('the stored cursor is not an Entra ID delta cursor');
  }
  if (tenantId !== settings.tenantId.toLowerCase()) {
    throw new CursorRejectedError(`the cursor was made for tenant ${String(tenantId)}, not ${settings.tenantId}`);
  }
  if (selection !== selectionFingerprintOf(settings)) {
    throw new CursorRejectedError('the selected attributes changed since the cursor was made');
  }
  for (const link of [users, groups]) {
    if (!link.startsWith(`${settings.graphBaseUrl}/`)) {
      throw new CursorRejectedError(`the cursor's delta links do not point to ${settings.graphBaseUrl}`);
    }
  }
  return { kind, tenantId, selection, users, groups };
}

/** An entry of a round read from a delta link: partial, and flagged when the round listed it before. */
function changedEntry(type: 'user' | 'group', record: GraphRecord, repeat: boolean): EntraEntry {
  return repeat ? { type, record, partial: true, repeat: true } : { type, record, partial: true };
}

/**
 * Delta sync from the cursor's delta links: changed users and groups as partial entries (a
 * changed object carries "at least the properties that have been updated",
 * concepts/delta-query-overview.md, so an absent property keeps its stored value; a group whose
 * record holds only membership changes is not an entry), `@removed` users and groups as
 * deletions (`changed`: soft-deleted, `deleted`: gone for good; both soft-delete here), and
 * `members@delta` as member additions and removals, merged over the round and handed on after
 * its last page. An expired delta token becomes
 * {@link CursorRejectedError}, which makes the pipeline run a full sync and say why.
 */
export async function* fetchChangedEntries(
  client: GraphClient,
  settings: EntraIdSettings,
  cursor: EntraCursor,
  signal: AbortSignal,
): AsyncGenerator<FetchPage<EntraEntry>> {
  let usersLink: string | undefined;
  let groupsLink: string | undefined;
  // Users and groups have distinct ids: one set serves both rounds.
  const seen = new SeenIds();
  try {
    for await (const page of readRound(client, cursor.users, settings.pageSize, signal)) {
      const entries: EntraEntry[] = [];
      const deletions: string[] = [];
      for (const record of page.value) {
        const id = recordId(record);
        if (isRemoved(record)) {
          if (id !== undefined) deletions.push(id);
        } else entries.push(changedEntry('user', record, id !== undefined && seen.add(id)));
      }
      if (page.deltaLink !== undefined) usersLink = page.deltaLink;
      yield deletions.length > 0 ? { entries, deletions } : { entries };
    }
    // Membership changes are applied once the round is complete: a group's parts may come
    // anywhere in it, or twice, and the last change of each member is what stands.
    const memberChanges = new MemberChangeAccumulator();
    for await (const page of readRound(client, cursor.groups, settings.pageSize, signal)) {
      const entries: EntraEntry[] = [];
      const deletions: string[] = [];
      for (const record of page.value) {
        const id = recordId(record);
        if (isRemoved(record)) {
          if (id !== undefined) deletions.push(id);
          continue;
        }
        if (hasProperties(record) || id === undefined) entries.push(changedEntry('group', record, id !== undefined && seen.add(id)));
        if (id !== undefined) memberChanges.add(id, changesOf(record));
      }
      if (page.deltaLink !== undefined) groupsLink = page.deltaLink;
      yield deletions.length > 0 ? { entries, deletions } : { entries };
    }
    for (const part of memberChanges.pages()) {
      const memberDeltas: MemberDelta[] = part.map(({ groupExternalId, added, removed }) => ({ groupExternalId, added: toRefs(added), removed: toRefs(removed) }));
      yield { entries: [], memberDeltas };
    }
  } catch (error) {
    if (isRoundExpired(error)) throw new CursorRejectedError(`Graph expired the delta token: ${(error as Error).message}`);
    throw error;
  }
  if (usersLink === undefined || groupsLink === undefined) throw new UnavailableError('a delta round ended without a delta link');
  const next: EntraCursor = { ...cursor, users: usersLink, groups: groupsLink };
  yield { entries: [], cursor: { ...next } };
}
