import { ConfigError, ProviderError } from '../errors.ts';
import { serverText } from '../text.ts';
import type { DestinationPolicy } from '../net/destination.ts';
import { connectForCheck, describeError, hungReport } from '../ldap/check.ts';
import { LdapConnection } from '../ldap/connection.ts';
import { ldapResultCode } from '../ldap/errors.ts';
import { andFilters, escapeFilterValue, objectClassFilter } from '../ldap/filter.ts';
import { type LdapEntry, ResultCode } from '../ldap/protocol.ts';
import { type SearchOptions, pagedResultsOid, pagedSearch, readRootDse, searchAll } from '../ldap/search.ts';
import { connectOptionsOf } from '../ldap/settings.ts';
import type { ConnectionCheck, ConnectionReport } from '../types.ts';
import type { DominoSettings } from './config.ts';
import { dominoGroupAttributes, dominoPersonAttributes, dominoUnidOf } from './map.ts';

/** Opens a connection secured and bound as the settings say, where `destinations` allows. */
export async function openDominoConnection(
  settings: DominoSettings,
  password: string | undefined,
  signal?: AbortSignal,
  destinations?: DestinationPolicy,
): Promise<LdapConnection> {
  if (password === undefined || password === '') {
    throw new ConfigError(`no bind password is stored for ${settings.bindDn}; set the integration's password`);
  }
  return LdapConnection.open(connectOptionsOf(settings, password, signal, destinations));
}

/** Search options for people (`type: 'user'`) or groups under `base`, optionally narrowed. */
export function dominoSearch(settings: DominoSettings, type: 'user' | 'group', base: string, extra?: string): SearchOptions {
  const section = type === 'user' ? settings.users : settings.groups;
  return {
    base,
    filter: andFilters(objectClassFilter(section.objectClasses), section.filter, extra),
    attributes: type === 'user' ? dominoPersonAttributes : [...dominoGroupAttributes, ...settings.groups.memberAttributes],
    pageSize: settings.pageSize,
    timeLimitSeconds: settings.timeouts.searchTimeLimitSeconds,
  };
}

// First characters a split tries, in the server's case-insensitive matching (Latin letters
// with diacritics included: Åsa, Émile, Øystein); names starting with anything else are read by
// the remainder search of their part. Spaces are left out: substring matching ignores them.
const alphabet = [...'abcdefghijklmnopqrstuvwxyz0123456789àáâãäåæçèéêëìíîïðñòóôõöøœùúûüýþÿßš'];
/** Longest prefix a split goes to before giving up. */
const maxSplitDepth = 6;

// Result codes of a server refusing or cutting short a paged search.
const pagingRefusals: ReadonlySet<number> = new Set([ResultCode.sizeLimitExceeded, 11, 12]);

/**
 * Reads searches from a server that may cap answers (Domino's LDAPMaxEntriesReturned) and may
 * not page. Pages when the root DSE lists the paged results control; when it does not, or the
 * server refuses paging or cuts it short, splits the search by the first characters of
 * `splitAttribute` until every part fits under the cap. An entry can match several parts (a
 * multi-valued name) or come again after a fallback: each UNID is yielded once per reader.
 */
export class DominoReader {
  readonly #connection: LdapConnection;
  readonly #settings: DominoSettings;
  readonly #signal: AbortSignal | undefined;
  readonly #seen = new Set<string>();
  #paging: boolean | undefined;
  /** Searches answered through splits (how many parts), for reports. */
  splitParts = 0;
  /** Why paging was given up, when it was. */
  pagingNote: string | undefined;

  constructor(connection: LdapConnection, settings: DominoSettings, signal?: AbortSignal) {
    this.#connection = connection;
    this.#settings = settings;
    this.#signal = signal;
  }

  /** Whether this reader pages (asks the root DSE once). */
  async paging(): Promise<boolean> {
    if (this.#paging === undefined) {
      if (this.#settings.paging === 'never') this.#paging = false;
      else {
        const root = await readRootDse(this.#connection, ['supportedControl'], this.#signal).catch((error: unknown) => {
          if (error instanceof ProviderError && !error.retryable) return undefined;
          throw error;
        });
        this.#paging = (root?.attributes['supportedcontrol'] ?? []).includes(pagedResultsOid);
        if (!this.#paging) this.pagingNote = 'the server does not offer paged results';
      }
    }
    return this.#paging;
  }

  /** Every entry of the search, in pages, each UNID once. */
  async *read(options: SearchOptions): AsyncGenerator<LdapEntry[]> {
    const withSignal = this.#signal ? { ...options, signal: this.#signal } : options;
    if (await this.paging()) {
      try {
        for await (const page of pagedSearch(this.#connection, withSignal)) yield this.#fresh(page);
        return;
      } catch (error) {
        const code = ldapResultCode(error);
        if (code === undefined || !pagingRefusals.has(code)) throw error;
        // Entries of the pages already read are remembered: the split yields only the rest.
        this.#paging = false;
        this.pagingNote = `the server ${code === ResultCode.sizeLimitExceeded ? 'caps paged results too' : 'refused paged results'} (${describeError(error)})`;
      }
    }
    yield* this.#split(withSignal, '');
  }

  async *#split(options: SearchOptions, prefix: string): AsyncGenerator<LdapEntry[]> {
    const attribute = this.#settings.splitAttribute;
    const narrowed = prefix === '' ? options : { ...options, filter: andFilters(filterText(options), `(${attribute}=${escapeFilterValue(prefix)}*)`) };
    const whole = await this.#unpaged(narrowed);
    if (whole !== undefined) {
      this.splitParts += 1;
      yield this.#fresh(whole);
      return;
    }
    if (prefix.length >= maxSplitDepth) {
      throw new ConfigError(
        `more entries of ${options.base} have a ${attribute} starting with "${prefix}" than the server returns in one answer; raise the server's limit (LDAPMaxEntriesReturned) or enable paged results`,
      );
    }
    for (const c of alphabet) yield* this.#split(options, prefix + c);
    // The rest of this part: names going on with another character, or ending with the prefix.
    const others = `(!(|${alphabet.map((c) => `(${attribute}=${escapeFilterValue(prefix + c)}*)`).join('')}))`;
    const rest = await this.#unpaged({ ...narrowed, filter: andFilters(filterText(narrowed), others) });
    if (rest === undefined) {
      throw new ConfigError(
        `more entries of ${options.base} have a ${attribute} starting with "${prefix}" and another character than the server returns in one answer; raise the server's limit (LDAPMaxEntriesReturned) or enable paged results`,
      );
    }
    this.splitParts += 1;
    yield this.#fresh(rest);
  }

  /** One unpaged search; undefined when the server's size limit cut it short. */
  async #unpaged(options: SearchOptions): Promise<LdapEntry[] | undefined> {
    try {
      return await searchAll(this.#connection, { ...options, pageSize: 0 });
    } catch (error) {
      if (ldapResultCode(error) === ResultCode.sizeLimitExceeded) return undefined;
      throw error;
    }
  }

  #fresh(entries: readonly LdapEntry[]): LdapEntry[] {
    const out: LdapEntry[] = [];
    for (const entry of entries) {
      const unid = dominoUnidOf(entry);
      if (unid !== undefined) {
        if (this.#seen.has(unid)) continue;
        this.#seen.add(unid);
      }
      out.push(entry);
    }
    return out;
  }
}

function filterText(options: SearchOptions): string {
  if (typeof options.filter === 'string') return options.filter;
  throw new Error('Domino searches are built from filter strings');
}

/**
 * Test Connection for Domino: connect, TLS, bind, the server (and whether it pages), what the
 * account sees under each base (read the way a sync reads, splitting when the server caps
 * answers), and how deltas will find changes. Never throws for directory problems.
 */
export async function testDominoConnection(
  settings: DominoSettings,
  password: string | undefined,
  signal?: AbortSignal,
  destinations?: DestinationPolicy,
): Promise<ConnectionReport> {
  const { connection, checks } = await connectForCheck(settings, password, signal, destinations);
  if (!connection) return { ok: false, checks };
  try {
    const reader = new DominoReader(connection, settings, signal);
    try {
      const root = await readRootDse(connection, ['vendorName', 'vendorVersion'], signal);
      const vendor = serverText([root?.attributes['vendorname']?.[0], root?.attributes['vendorversion']?.[0]].filter(Boolean).join(' '));
      const pages = await reader.paging();
      checks.push({ name: 'server', ok: true, detail: `${vendor || 'LDAP server'}; paged results ${pages ? 'offered' : 'not offered: searches the size limit cuts short are split'}` });
    } catch (error) {
      if (signal?.aborted) return hungReport(checks, 'server', 'the RootDSE read', signal);
      checks.push({ name: 'server', ok: false, detail: describeError(error) });
    }
    let stamps = false;
    for (const [type, name, bases] of [['user', 'users', settings.users.baseDns], ['group', 'groups', settings.groups.baseDns]] as const) {
      for (const base of bases) {
        try {
          const before = reader.splitParts;
          let count = 0;
          for await (const page of reader.read(dominoSearch(settings, type, base))) {
            count += page.length;
            if (page.some((entry) => entry.attributes['modifytimestamp']?.length)) stamps = true;
          }
          const parts = reader.splitParts - before;
          const how = parts > 1 ? ` (read in ${parts} parts: ${reader.pagingNote ?? 'the server caps answers'})` : '';
          checks.push({ name: `${name} base`, ok: true, detail: `${base}: ${count} ${name} visible${how}`, ...(count === 0 ? { warning: true } : {}) });
        } catch (error) {
          if (signal?.aborted) return hungReport(checks, `${name} base`, `the search of ${base}`, signal);
          checks.push({ name: `${name} base`, ok: false, detail: `${base}: ${describeError(error)}` });
        }
      }
    }
    checks.push(deltaCheck(settings, stamps));
  } finally {
    await connection.close();
  }
  return { ok: checks.every((c) => c.ok), checks };
}

function deltaCheck(settings: DominoSettings, stamps: boolean): ConnectionCheck {
  if (settings.deltaMethod === 'auto' && stamps) {
    return { name: 'delta', ok: true, detail: 'entries newer than the last modifyTimestamp seen; deletions by full syncs' };
  }
  const why = settings.deltaMethod === 'hash' ? 'deltaMethod "hash"' : 'the entries show no modifyTimestamp';
  return { name: 'delta', ok: true, detail: `${why}: deltas read everything and write only what changed; deletions by full syncs` };
}
