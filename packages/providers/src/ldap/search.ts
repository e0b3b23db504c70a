import { type Control, type Filter, PagedResultsControl } from 'ldapts';
import { createHash } from 'node:crypto';
import { ConfigError, type ProviderError } from '../errors.ts';
import type { LdapConnection, SearchRequestOptions } from './connection.ts';
import { type LdapErrorContext, LdapProtocolError, resultError, toProviderError } from './errors.ts';
import { parseFilter } from './filter.ts';
import { type LdapEntry, type LdapResponse, ResultCode, decodeEntry, defaultMaxMessageBytes, entryLength, pagedResultsCookie } from './protocol.ts';

/** OID of the simple paged results control (RFC 2696). */
export const pagedResultsOid = '1.2.840.113556.1.4.319';
/** OID of Active Directory's Show Deleted control (tombstones). */
export const showDeletedOid = '1.2.840.113556.1.4.417';

/** Default page size of paged searches. */
export const defaultPageSize = 1000;
/** Default server-side time limit per search request, in seconds (never left implicit). */
export const defaultTimeLimitSeconds = 600;

/** A search, paged or not. */
export interface SearchOptions {
  readonly base: string;
  /** Default `sub`. */
  readonly scope?: 'base' | 'one' | 'sub';
  /** RFC 4515 string or an ldapts filter. Default `(objectClass=*)`. */
  readonly filter?: string | Filter;
  /** Attributes to return; request only what is used, it is the main cost of a read. */
  readonly attributes: readonly string[];
  /** Attributes returned as Buffers (e.g. objectGUID, objectSid); case-insensitive. */
  readonly binaryAttributes?: readonly string[];
  /** Entries per page; 0 turns paging off. Default {@link defaultPageSize}. */
  readonly pageSize?: number;
  /** Server-side time limit per request in seconds; 0 means none. Default {@link defaultTimeLimitSeconds}. */
  readonly timeLimitSeconds?: number;
  /** Client-requested size limit (0: none). */
  readonly sizeLimit?: number;
  /**
   * Extra request controls (e.g. `new Control(showDeletedOid, { critical: true })`). The paged
   * results control is added by {@link pagedSearch} itself.
   */
  readonly controls?: readonly Control[];
  /** Mark the paged results control critical (fail rather than get an unpaged answer). */
  readonly pagingCritical?: boolean;
  readonly signal?: AbortSignal;
}

/**
 * The client's deadline for one search request sent with a server time limit of `seconds`: the
 * limit plus a tenth and five seconds, for the answer the server still sends once it stops
 * (over a slow link, a full page takes a while). Undefined for no limit (0).
 */
export function clientDeadlineMs(seconds: number): number | undefined {
  return seconds > 0 ? Math.ceil(seconds * 1100) + 5_000 : undefined;
}

/** A page of entries and the response controls of its SearchResultDone. */
export interface SearchPage {
  readonly entries: LdapEntry[];
  readonly response: LdapResponse;
}

function toFilter(filter: string | Filter | undefined): Filter {
  if (filter === undefined) return parseFilter('(objectClass=*)');
  if (typeof filter !== 'string') return filter;
  try {
    return parseFilter(filter);
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error), { cause: error });
  }
}

/**
 * The entries of one page as the server sent them, decoded one at a time on demand: a page waits
 * as its bytes (a fraction of its decoded size, and outside the JavaScript heap) instead of as
 * thousands of strings decoded at once, which matters for large groups and for the garbage
 * collector (decoded pages outlived the young generation and were promoted wholesale).
 */
export class RawEntries {
  readonly #buffers: Buffer[] = [];
  readonly #starts: number[] = [];
  readonly #ends: number[] = [];
  readonly #binary: ReadonlySet<string> | undefined;
  readonly #context: LdapErrorContext;
  readonly #onViolation: (() => void) | undefined;

  /** `onViolation` runs when an entry turns out malformed (the connection that sent it is closed). */
  constructor(binary: ReadonlySet<string> | undefined, context: LdapErrorContext, onViolation?: () => void) {
    this.#binary = binary;
    this.#context = context;
    this.#onViolation = onViolation;
  }

  /** Keeps one entry, its message ending at `end` (see `LdapConnection.searchRaw`). */
  add(buf: Buffer, opStart: number, end: number): void {
    this.#buffers.push(buf);
    this.#starts.push(opStart);
    this.#ends.push(end);
  }

  get length(): number {
    return this.#starts.length;
  }

  /** Size in bytes of entry `i` as sent: a measure of what decoding it will cost. */
  size(i: number): number {
    const buf = this.#at(i);
    try {
      return entryLength(buf, this.#starts[i] as number, this.#ends[i] as number);
    } catch (error) {
      throw this.#violation(error);
    }
  }

  /** Decodes entry `i` (each call decodes again). A malformed entry is a ProviderError. */
  entry(i: number): LdapEntry {
    const buf = this.#at(i);
    try {
      return decodeEntry(buf, this.#starts[i] as number, this.#ends[i] as number, this.#binary);
    } catch (error) {
      throw this.#violation(error);
    }
  }

  #violation(error: unknown): ProviderError {
    this.#onViolation?.();
    return toProviderError(error, this.#context);
  }

  #at(i: number): Buffer {
    const buf = this.#buffers[i];
    if (buf === undefined) throw new RangeError(`no entry ${i} in a page of ${this.length}`);
    return buf;
  }
}

/** A page of undecoded entries and the response controls of its SearchResultDone. */
export interface RawSearchPage {
  readonly entries: RawEntries;
  readonly response: LdapResponse;
}

/**
 * Consecutive empty pages carrying a cookie accepted before the paged read is refused. A server
 * may hand back an empty page now and then (a slice of its scan matched nothing), never for ever:
 * one did so half a million times in 16 s.
 */
export const maxEmptyPagesInARow = 10;

/**
 * The paging loop: sends the request page after page with the cookie of the previous answer,
 * `run` collecting each page's entries as it likes. Any failure is a typed ProviderError.
 *
 * Paging the server never ends is refused (ProtocolError, the connection closed): a cookie that
 * returns after others (the same cookie page after page is allowed: Samba keeps one per search),
 * more than {@link maxEmptyPagesInARow} empty pages in a row that still carry a cookie,
 * and more time waiting for the server's pages, all together, than one request may take under
 * the search time limit ({@link clientDeadlineMs}); the consumer's own time between pages does
 * not count.
 */
async function* pagedRequests<P extends { readonly length: number }>(
  connection: LdapConnection,
  options: SearchOptions,
  run: (request: SearchRequestOptions, context: LdapErrorContext) => Promise<[P, LdapResponse]>,
): AsyncGenerator<[P, LdapResponse]> {
  const filter = toFilter(options.filter);
  const pageSize = options.pageSize ?? defaultPageSize;
  const binary = options.binaryAttributes?.length ? new Set(options.binaryAttributes.map((a) => a.toLowerCase())) : undefined;
  const context: LdapErrorContext = { url: connection.url, operation: 'search', base: options.base };
  const timeLimit = options.timeLimitSeconds ?? defaultTimeLimitSeconds;
  const budgetMs = clientDeadlineMs(timeLimit);
  // A page holds at most the page size (RFC 2696), an unpaged answer at most the size limit.
  const bounds = [pageSize, options.sizeLimit ?? 0].filter((n) => n > 0);
  const maxEntries = bounds.length > 0 ? Math.min(...bounds) : undefined;
  let cookie: Buffer | undefined;
  // Digests, not the cookies: a server picks their size.
  const cookiesSeen = new Set<string>();
  let lastCookie: string | undefined;
  let emptyInARow = 0;
  let pages = 0;
  let entries = 0;
  let waitedMs = 0;
  const refuse = (why: string): never => {
    connection.destroy();
    throw toProviderError(new LdapProtocolError(why, 'limit'), context);
  };
  for (;;) {
    const controls = [...(options.controls ?? [])];
    if (pageSize > 0) {
      controls.push(
        new PagedResultsControl({
          critical: options.pagingCritical === true,
          value: { size: pageSize, ...(cookie ? { cookie } : {}) },
        }),
      );
    }
    const started = performance.now();
    const [page, response] = await run(
      {
        base: options.base,
        scope: options.scope ?? 'sub',
        filter,
        attributes: options.attributes,
        binary,
        sizeLimit: options.sizeLimit,
        timeLimitSeconds: timeLimit,
        controls,
        maxEntries,
        deadlineMs: clientDeadlineMs(timeLimit),
        signal: options.signal,
      },
      context,
    );
    waitedMs += performance.now() - started;
    pages += 1;
    entries += page.length;
    const result = response.result;
    const sizeLimited = result?.resultCode === ResultCode.sizeLimitExceeded && (options.sizeLimit ?? 0) > 0;
    if (result && result.resultCode !== ResultCode.success && !sizeLimited) throw resultError(result, context);
    cookie = pageSize > 0 ? pagedResultsCookie(response.controls.find((c) => c.oid === pagedResultsOid)?.value) : undefined;
    if (cookie) {
      const digest = createHash('sha256').update(cookie).digest('base64');
      if (digest !== lastCookie && cookiesSeen.has(digest)) {
        refuse(`the server sent again, on page ${pages}, a paged results cookie of an earlier page: its paging would go round for ever`);
      }
      cookiesSeen.add(digest);
      lastCookie = digest;
      emptyInARow = page.length === 0 ? emptyInARow + 1 : 0;
      if (emptyInARow > maxEmptyPagesInARow) {
        refuse(`the server sent ${emptyInARow} empty pages in a row, each with a paged results cookie asking for more: its paging would never end`);
      }
      if (budgetMs !== undefined && waitedMs > budgetMs) {
        refuse(
          `the paged search took more than ${budgetMs} ms of the server's time over ${pages} pages (${entries} entries), past the search time limit of ${timeLimit} s; raise timeouts.searchTimeLimitSeconds if the directory really needs longer`,
        );
      }
    }
    yield [page, response];
    if (!cookie) return;
  }
}

/**
 * Runs a search with the simple paged results control and yields one page of entries at a time:
 * memory is bounded by the page size, whatever the directory size. Continuation references are
 * ignored. A server that ignores paging yields everything as one page. Any failure is a typed
 * ProviderError (a broken connection mid-way is UnavailableError, so the run is retried, and
 * the caller has not completed, so nothing is deleted).
 */
export async function* pagedSearchPages(connection: LdapConnection, options: SearchOptions): AsyncGenerator<SearchPage> {
  const pages = pagedRequests(connection, options, async (request): Promise<[LdapEntry[], LdapResponse]> => {
    const entries: LdapEntry[] = [];
    const response = await connection.search(request, (entry) => entries.push(entry));
    return [entries, response];
  });
  for await (const [entries, response] of pages) yield { entries, response };
}

/** {@link pagedSearchPages} with each page's entries left undecoded ({@link RawEntries}). */
export async function* pagedSearchRawPages(connection: LdapConnection, options: SearchOptions): AsyncGenerator<RawSearchPage> {
  const pages = pagedRequests(connection, options, async (request, context): Promise<[RawEntries, LdapResponse]> => {
    // Entries are decoded after the page arrived: one found malformed then still closes the
    // connection that sent it, as a violation found on arrival does.
    const entries = new RawEntries(request.binary, context, () => connection.destroy());
    const response = await connection.searchRaw(request, (buf, opStart, end) => entries.add(buf, opStart, end));
    return [entries, response];
  });
  for await (const [entries, response] of pages) yield { entries, response };
}

/** {@link pagedSearchPages} without the response controls: pages of entries. */
export async function* pagedSearch(connection: LdapConnection, options: SearchOptions): AsyncGenerator<LdapEntry[]> {
  for await (const page of pagedSearchPages(connection, options)) yield page.entries;
}

/** All entries of a (small) search in one array. */
export async function searchAll(connection: LdapConnection, options: SearchOptions): Promise<LdapEntry[]> {
  const all: LdapEntry[] = [];
  for await (const page of pagedSearch(connection, options)) for (const entry of page) all.push(entry);
  return all;
}

/** Reads one entry by DN (base search); undefined when the filter does not match it. */
export async function readEntry(
  connection: LdapConnection,
  dn: string,
  attributes: readonly string[],
  options: Omit<SearchOptions, 'base' | 'scope' | 'attributes' | 'pageSize'> = {},
): Promise<LdapEntry | undefined> {
  const entries = await searchAll(connection, { ...options, base: dn, scope: 'base', attributes, pageSize: 0 });
  return entries[0];
}

/** Reads the root DSE (naming contexts, supported controls, AD's currentTime, ...). */
export async function readRootDse(
  connection: LdapConnection,
  attributes: readonly string[] = ['namingContexts', 'supportedControl', 'supportedExtension', 'supportedLDAPVersion', 'vendorName', 'vendorVersion', 'currentTime'],
  signal?: AbortSignal,
): Promise<LdapEntry | undefined> {
  return readEntry(connection, '', attributes, { filter: '(objectClass=*)', ...(signal ? { signal } : {}) });
}

const rangePattern = /^(.+);range=(\d+)-(\d+|\*)$/;

/** A ranged attribute key such as `member;range=0-1499`, parsed. */
export interface RangeKey {
  readonly attribute: string;
  readonly low: number;
  /** Undefined for `*` (the last range). */
  readonly high: number | undefined;
}

/** Parses `attr;range=low-high` (lower-cased key); undefined for anything else. */
export function parseRangeKey(key: string): RangeKey | undefined {
  const m = rangePattern.exec(key);
  if (!m) return undefined;
  return { attribute: m[1] as string, low: Number(m[2]), high: m[3] === '*' ? undefined : Number(m[3]) };
}

function findRange(entry: LdapEntry, attribute: string): { key: string; range: RangeKey } | undefined {
  for (const key of Object.keys(entry.attributes)) {
    // Only `attribute;…` keys can be its range; the others skip the pattern (every group entry
    // of a sync comes through here).
    if (key.length <= attribute.length || key.charCodeAt(attribute.length) !== 59 || !key.startsWith(attribute)) continue;
    const range = parseRangeKey(key);
    if (range && range.attribute === attribute) return { key, range };
  }
  return undefined;
}

/** Options of range retrieval. */
export interface RangeOptions {
  /** Values per request; absent: ask for `low-*` and let the server cap it (AD: MaxValRange). */
  readonly rangeSize?: number;
  readonly timeLimitSeconds?: number;
  readonly signal?: AbortSignal;
}

/** Reads one entry with the given attribute descriptions (a base search in practice). */
export type EntryReader = (attributes: readonly string[]) => Promise<LdapEntry | undefined>;

/**
 * Most values gathered for one attribute of one entry across its range reads: far above the
 * largest groups seen in practice, and with the byte bound it keeps a group's value array within
 * a few hundred MB of heap even for values of a few bytes.
 */
export const maxRangedValues = 5_000_000;

/**
 * Fewest range reads allowed for one attribute, whatever the range size: at AD's default of 1500
 * values a range, enough for three times {@link maxRangedValues}.
 */
export const minRangeRequests = 10_000;

/** Bounds of the values gathered for one attribute across its range reads. */
export interface RangeLimits {
  /** Values, first range included. Default {@link maxRangedValues}. */
  readonly maxValues?: number;
  /**
   * UTF-8 bytes of the values. Default: the largest message (`limits.maxMessageMiB`, 64 MiB by
   * default), since that is all the same attribute could have held had the server sent it whole.
   */
  readonly maxBytes?: number;
  /** Range reads. Default: {@link minRangeRequests}, or more when a small range size needs them. */
  readonly maxRequests?: number;
}

/**
 * Counts what range retrieval has gathered for one attribute and refuses a server that sends
 * more than the bounds allow: each range read is a request of its own, so the per-request byte
 * bound of the connection never sees the total.
 */
class RangeBudget {
  #values = 0;
  #bytes = 0;
  #requests = 0;
  readonly #attribute: string;
  readonly #maxValues: number;
  readonly #maxBytes: number;
  readonly #maxRequests: number;

  constructor(attribute: string, limits: RangeLimits, rangeSize: number | undefined) {
    this.#attribute = attribute;
    this.#maxValues = limits.maxValues ?? maxRangedValues;
    this.#maxBytes = limits.maxBytes ?? defaultMaxMessageBytes;
    this.#maxRequests = limits.maxRequests ?? Math.max(minRangeRequests, rangeSize ? Math.ceil(this.#maxValues / rangeSize) + 1 : 0);
  }

  request(): void {
    this.#requests += 1;
    if (this.#requests > this.#maxRequests) {
      throw new LdapProtocolError(`the server sent ${this.#attribute} in more than ${this.#maxRequests} ranges; its range retrieval would never end`, 'limit');
    }
  }

  add(values: readonly string[]): void {
    this.#values += values.length;
    for (const value of values) this.#bytes += Buffer.byteLength(value);
    if (this.#values > this.#maxValues) {
      throw new LdapProtocolError(`the server sent more than ${this.#maxValues} values of ${this.#attribute} for one entry`, 'limit');
    }
    if (this.#bytes > this.#maxBytes) {
      throw new LdapProtocolError(
        `the server sent more than ${this.#maxBytes} bytes of ${this.#attribute} values for one entry (the bound is limits.maxMessageMiB)`,
        'limit',
      );
    }
  }
}

/** Refuses a range that cannot be the answer to a request starting at `low`. */
function checkRange(key: string, range: RangeKey, low: number, count: number): void {
  if (range.low !== low) {
    throw new LdapProtocolError(`the server answered range ${key} to a request starting at ${low}`, 'limit');
  }
  if (range.high === undefined) return;
  if (range.high < range.low) {
    throw new LdapProtocolError(`the server answered range ${key}, which ends before it starts: its range retrieval would never advance`, 'limit');
  }
  if (count > range.high - range.low + 1) {
    throw new LdapProtocolError(`the server sent ${count} values in range ${key}, more than the range holds`, 'limit');
  }
}

/**
 * The range retrieval loop over any reader: asks for `attr;range=low-high` until the server
 * answers a range ending in `*`. A server that ignores the range option and answers with the
 * plain attribute, or answers nothing to a ranged request (OpenLDAP), gets one plain read.
 *
 * Each answer must start where asked and end no earlier than it starts (so ranges strictly
 * rise), and the values, bytes and requests of the whole loop are bounded ({@link RangeLimits});
 * a violation is an {@link LdapProtocolError} of kind `limit`.
 */
export async function collectRangedValues(
  read: EntryReader,
  attribute: string,
  options: { readonly rangeSize?: number; readonly start?: number; readonly limits?: RangeLimits } = {},
): Promise<string[]> {
  return collect(read, attribute, options.start ?? 0, options.rangeSize, new RangeBudget(attribute, options.limits ?? {}, options.rangeSize));
}

async function collect(read: EntryReader, attribute: string, start: number, rangeSize: number | undefined, budget: RangeBudget): Promise<string[]> {
  const name = attribute.toLowerCase();
  const values: string[] = [];
  let low = start;
  for (;;) {
    budget.request();
    const entry = await read([`${attribute};range=${low}-${rangeSize ? low + rangeSize - 1 : '*'}`]);
    const found = entry && findRange(entry, name);
    if (!found) {
      if (low > 0) return values;
      let plain = entry?.attributes[name];
      if (plain === undefined) {
        budget.request();
        plain = (await read([attribute]))?.attributes[name] ?? [];
      }
      budget.add(plain);
      return [...plain];
    }
    const got = entry.attributes[found.key] ?? [];
    checkRange(found.key, found.range, low, got.length);
    budget.add(got);
    for (const value of got) values.push(value);
    if (found.range.high === undefined) return values;
    low = found.range.high + 1;
  }
}

/**
 * Completes ranged attributes of an entry: when it holds only a first range
 * (`member;range=0-1499`), reads the rest and returns an entry whose plain key (`member`) holds
 * every value. Entries without ranged keys are returned unchanged. The first range counts
 * toward the bounds of {@link collectRangedValues} like the others.
 */
export async function completeRanges(
  read: EntryReader,
  entry: LdapEntry,
  attributes: readonly string[],
  rangeSize?: number,
  limits: RangeLimits = {},
): Promise<LdapEntry> {
  let updated: Record<string, readonly string[]> | undefined;
  for (const attribute of attributes) {
    const name = attribute.toLowerCase();
    const found = findRange(entry, name);
    if (!found) continue;
    updated ??= { ...entry.attributes };
    const first = entry.attributes[found.key] ?? [];
    checkRange(found.key, found.range, 0, first.length);
    const budget = new RangeBudget(attribute, limits, rangeSize);
    budget.add(first);
    delete updated[found.key];
    const rest = found.range.high === undefined ? [] : await collect(read, attribute, found.range.high + 1, rangeSize, budget);
    updated[name] = first.concat(rest);
  }
  return updated ? { dn: entry.dn, attributes: updated, buffers: entry.buffers } : entry;
}

function entryReader(connection: LdapConnection, dn: string, options: RangeOptions): EntryReader {
  return (attributes) =>
    readEntry(connection, dn, attributes, {
      ...(options.timeLimitSeconds !== undefined ? { timeLimitSeconds: options.timeLimitSeconds } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
}

/** The range bounds of a connection: bytes from its integration's largest message. */
function rangeLimitsOf(connection: LdapConnection): RangeLimits {
  return { maxBytes: connection.limits.maxMessageBytes };
}

/**
 * Range retrieval on `connection`: a server breaking its rules or bounds gets its connection
 * closed (it may still be sending) and the run a non-retryable ProtocolError.
 */
async function onConnection<T>(connection: LdapConnection, dn: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof LdapProtocolError)) throw error;
    connection.destroy();
    throw toProviderError(error, { url: connection.url, operation: 'read', base: dn });
  }
}

/**
 * Reads every value of a multi-valued attribute of one entry with range retrieval
 * (`member;range=0-1499`, then the following ranges); see {@link collectRangedValues}.
 */
export function readRangedValues(connection: LdapConnection, dn: string, attribute: string, options: RangeOptions = {}): Promise<string[]> {
  return onConnection(connection, dn, () =>
    collectRangedValues(entryReader(connection, dn, options), attribute, {
      ...(options.rangeSize ? { rangeSize: options.rangeSize } : {}),
      limits: rangeLimitsOf(connection),
    }),
  );
}

/** {@link completeRanges} for an entry returned by a search on `connection`. */
export function completeRangedAttributes(
  connection: LdapConnection,
  entry: LdapEntry,
  attributes: readonly string[],
  options: RangeOptions = {},
): Promise<LdapEntry> {
  return onConnection(connection, entry.dn, () =>
    completeRanges(entryReader(connection, entry.dn, options), entry, attributes, options.rangeSize, rangeLimitsOf(connection)),
  );
}
