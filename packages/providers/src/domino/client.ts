import { ConfigError, ProviderError } from '../errors.ts';
import { serverText } from '../text.ts';
import type { DestinationPolicy } from '../net/destination.ts';
import { connectForCheck, describeError, hungReport } from '../ldap/check.ts';
import { LdapConnection } from '../ldap/connection.ts';
import { ldapResultCode } from '../ldap/errors.ts';
import { resultError } from '../ldap/errors.ts';
import { andFilters, objectClassFilter, parseFilter } from '../ldap/filter.ts';
import { type LdapEntry, ResultCode } from '../ldap/protocol.ts';
import { type SearchOptions, clientDeadlineMs, defaultTimeLimitSeconds, pagedResultsOid, pagedSearch, readRootDse } from '../ldap/search.ts';
import { connectOptionsOf } from '../ldap/settings.ts';
import type { ConnectionCheck, ConnectionReport } from '../types.ts';
import { type DominoSettings, dominoScopeOf } from './config.ts';
import { withMappedSources } from '../mapping/engine.ts';
import { dominoGroupAttributes, dominoPersonAttributes, dominoUnidOf } from './map.ts';
import { type SplitReport, describeSplit, emptySplitReport, nextCharacters, prefixFilter, remainderFilter, splitAttributes } from './split.ts';

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

/**
 * Search options for people (`type: 'user'`) or groups under `base`, in the section's scope
 * (paged, split and Test Connection reads all start here), optionally narrowed.
 */
export function dominoSearch(settings: DominoSettings, type: 'user' | 'group', base: string, extra?: string): SearchOptions {
  const section = type === 'user' ? settings.users : settings.groups;
  return {
    base,
    scope: dominoScopeOf(section),
    filter: andFilters(objectClassFilter(section.objectClasses), section.filter, extra),
    attributes: withMappedSources(
      type === 'user' ? dominoPersonAttributes : [...dominoGroupAttributes, ...settings.groups.memberAttributes],
      settings.attributeMapping,
      type,
    ),
    pageSize: settings.pageSize,
    timeLimitSeconds: settings.timeouts.searchTimeLimitSeconds,
  };
}

// Result codes of a server refusing or cutting short a paged search.
const pagingRefusals: ReadonlySet<number> = new Set([ResultCode.sizeLimitExceeded, 11, 12]);

/**
 * Reads searches from a server that may cap answers (Domino's LDAPMaxEntriesReturned) and may
 * not page. Pages when the root DSE lists the paged results control; when it does not, or the
 * server refuses paging or cuts it short, splits the search by the characters of
 * `splitAttribute` the directory uses (see split.ts) until every part fits under the cap, with
 * no fixed alphabet or depth; entries sharing one value are split by dominoUNID. An entry can
 * match several parts (a multi-valued name) or come again after a fallback: each UNID is
 * yielded once per reader.
 */
export class DominoReader {
  readonly #connection: LdapConnection;
  readonly #settings: DominoSettings;
  readonly #signal: AbortSignal | undefined;
  readonly #seen = new Set<string>();
  #paging: boolean | undefined;
  /** Searches answered through splits (how many parts), for reports. */
  splitParts = 0;
  /** How the last read was split, when it was. */
  lastSplit: SplitReport | undefined;
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
    this.lastSplit = emptySplitReport();
    yield* this.#split(withSignal, 0, '', this.lastSplit);
  }

  async *#split(options: SearchOptions, level: number, prefix: string, report: SplitReport): AsyncGenerator<LdapEntry[], number> {
    const attributes = splitAttributes(this.#settings.splitAttribute);
    const attribute = attributes[level] as string;
    const part = { ...options, filter: andFilters(filterText(options), prefixFilter(attribute, prefix)) };
    let answer = await this.#capped(part, report);
    if (answer.complete) {
      report.parts += 1;
      this.splitParts += 1;
      yield this.#fresh(answer.entries);
      return answer.entries.length;
    }
    let found = 0;
    report.depth = Math.max(report.depth, [...prefix].length);
    report.firstAttribute ??= attribute;
    const first = report.first.length === 0 && prefix === '' && level === 0;
    const known = new Set<string>();
    let rest = part;
    for (;;) {
      const fresh = nextCharacters(answer.entries, attribute, prefix).filter((c) => !known.has(c));
      if (fresh.length === 0) {
        // The entries cut short have no character after the prefix the part does not already
        // exclude: they share one value. Split them by the next attribute.
        const next = attributes[level + 1];
        if (next === undefined) {
          throw new ConfigError(
            `more entries of ${options.base} have the ${attribute} "${prefix}" than the server returns in one answer; raise the server's limit (LDAPMaxEntriesReturned) or enable paged results`,
          );
        }
        report.fallbacks += 1;
        return found + (yield* this.#split(rest, level + 1, '', report));
      }
      for (const c of fresh) known.add(c);
      if (first) report.first.push(...fresh);
      for (const c of fresh) {
        const child = yield* this.#split(options, level, prefix + c, report);
        found += child;
        // A child learnt from an entry the server returned must find that entry again; when it
        // does not, the server matches this attribute differently (or not by substrings), and
        // the remainder of this part could silently miss entries.
        if (child === 0) {
          throw new ConfigError(
            `the server returned no entry for (${attribute}=${prefix + c}*) although one of its answers has such a ${attribute}; it does not match substrings of ${attribute} as expected: set splitAttribute to another attribute, raise the server's limit (LDAPMaxEntriesReturned) or enable paged results`,
          );
        }
      }
      rest = { ...part, filter: andFilters(filterText(part), remainderFilter(attribute, prefix, [...known])) };
      answer = await this.#capped(rest, report);
      if (answer.complete) {
        report.parts += 1;
        this.splitParts += 1;
        yield this.#fresh(answer.entries);
        return found + answer.entries.length;
      }
    }
  }

  /**
   * One unpaged search: every entry and `complete`, or, when the server's size limit cut it
   * short, the entries it did return (which teach the split the characters in use).
   */
  async #capped(options: SearchOptions, report: SplitReport): Promise<{ entries: LdapEntry[]; complete: boolean }> {
    const entries: LdapEntry[] = [];
    const timeLimit = options.timeLimitSeconds ?? defaultTimeLimitSeconds;
    const context = { url: this.#connection.url, operation: 'search' as const, base: options.base };
    report.searches += 1;
    const response = await this.#connection.search(
      {
        base: options.base,
        scope: options.scope ?? 'sub',
        filter: parseFilter(filterText(options)),
        attributes: options.attributes ?? [],
        timeLimitSeconds: timeLimit,
        deadlineMs: clientDeadlineMs(timeLimit),
        signal: options.signal,
      },
      (entry) => entries.push(entry),
    );
    const code = response.result?.resultCode;
    if (code === ResultCode.sizeLimitExceeded) {
      report.capped += 1;
      report.cap = Math.max(report.cap ?? 0, entries.length);
      return { entries, complete: false };
    }
    if (response.result && code !== ResultCode.success) throw resultError(response.result, context);
    return { entries, complete: true };
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
        // The root is the empty DN: named, so a report line never starts with a bare colon.
        const label = base === '' ? '"" (the directory root)' : base;
        try {
          const before = reader.splitParts;
          reader.lastSplit = undefined;
          let count = 0;
          for await (const page of reader.read(dominoSearch(settings, type, base))) {
            count += page.length;
            if (page.some((entry) => entry.attributes['modifytimestamp']?.length)) stamps = true;
          }
          const parts = reader.splitParts - before;
          const how = parts > 1 ? ` (read in ${parts} parts: ${reader.pagingNote ?? 'the server caps answers'})` : '';
          const where = `${label}${dominoScopeOf(settings[name]) === 'one' ? ', one level' : ''}`;
          checks.push({ name: `${name} base`, ok: true, detail: `${where}: ${count} ${name} visible${how}`, ...(count === 0 ? { warning: true } : {}) });
          // The split plan: the cap found and how the first split proceeded.
          if (reader.lastSplit) checks.push({ name: `${name} split`, ok: true, detail: `${label}: ${describeSplit(reader.lastSplit)}` });
        } catch (error) {
          if (signal?.aborted) return hungReport(checks, `${name} base`, `the search of ${base}`, signal);
          checks.push({ name: `${name} base`, ok: false, detail: `${label}: ${describeError(error)}` });
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
