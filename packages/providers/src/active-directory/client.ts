import { AndFilter, Control, type Filter } from 'ldapts';
import { ConfigError, ProviderError } from '../errors.ts';
import { serverText } from '../text.ts';
import type { DestinationPolicy } from '../net/destination.ts';
import { StepHung, connectForCheck, describeError, hungCheck } from '../ldap/check.ts';
import { LdapConnection } from '../ldap/connection.ts';
import { DirSyncFlags, dirSyncControl, dirSyncOid, extendedDnControl } from '../ldap/controls.ts';
import { isDnWithin, normalizeDn } from '../ldap/dn.ts';
import { andFilters, escapeFilterValue, parseFilter } from '../ldap/filter.ts';
import { type SearchOptions, pagedSearch, pagedSearchPages, readEntry, readRootDse, showDeletedOid } from '../ldap/search.ts';
import { connectOptionsOf } from '../ldap/settings.ts';
import { parseGeneralizedTime } from '../ldap/time.ts';
import type { ConnectionCheck, ConnectionReport } from '../types.ts';
import type { ActiveDirectorySettings, AdObjectType } from './config.ts';
import { withMappedSources } from '../mapping/engine.ts';
import { adBinaryAttributes, adContactAttributes, adGroupAttributes, adUserAttributes, formatGuid } from './map.ts';

/** Opens a connection secured and bound as the settings say, where `destinations` allows. */
export async function openAdConnection(
  settings: ActiveDirectorySettings,
  password: string | undefined,
  signal?: AbortSignal,
  destinations?: DestinationPolicy,
): Promise<LdapConnection> {
  if (password === undefined || password === '') {
    throw new ConfigError(`no bind password is stored for ${settings.bindDn}; set the integration's password`);
  }
  return LdapConnection.open(connectOptionsOf(settings, password, signal, destinations));
}

/** What a delta needs to know about the DC answering, read before every fetch. */
export interface DcState {
  /** `dc1.example.com`: USNs are per DC, so a cursor is only good on the DC that issued it. */
  readonly dnsHostName: string;
  /** The DC's database identity: it changes when the DC is restored from backup. */
  readonly invocationId: string;
  /** Every change the DC has committed has a USN at most this. */
  readonly highestCommittedUsn: number;
  /** The DC's clock (ms since the epoch). */
  readonly currentTimeMs: number;
  readonly defaultNamingContext: string;
  /** Canonical (lower-cased) naming contexts the DC holds. */
  readonly namingContexts: readonly string[];
  readonly configurationNamingContext: string;
  readonly supportedControls: ReadonlySet<string>;
  /** How long tombstones are kept (days); a cursor older than this may have missed deletions. */
  readonly tombstoneLifetimeDays: number;
  readonly vendor: string;
}

/** AD's default tombstone lifetime when the forest does not set one (Windows Server 2003 SP1+). */
const defaultTombstoneLifetimeDays = 180;

/** Reads the DC's identity, USN and clock from the root DSE and its NTDS Settings object. */
export async function readDcState(connection: LdapConnection, signal?: AbortSignal): Promise<DcState> {
  const root = await readRootDse(
    connection,
    [
      'dnsHostName', 'dsServiceName', 'highestCommittedUSN', 'currentTime', 'defaultNamingContext', 'namingContexts',
      'configurationNamingContext', 'supportedControl', 'vendorName',
    ],
    signal,
  );
  const a = root?.attributes ?? {};
  const one = (name: string) => a[name]?.[0];
  const dsServiceName = one('dsservicename');
  const dnsHostName = one('dnshostname');
  const usn = Number(one('highestcommittedusn'));
  const defaultNamingContext = one('defaultnamingcontext');
  const configurationNamingContext = one('configurationnamingcontext');
  if (!dsServiceName || !dnsHostName || !Number.isSafeInteger(usn) || !defaultNamingContext || !configurationNamingContext) {
    throw new ConfigError(`${connection.url} is not an Active Directory domain controller (its root DSE lacks dsServiceName, dnsHostName or highestCommittedUSN)`);
  }
  const ntds = await readEntry(connection, dsServiceName, ['invocationId'], { binaryAttributes: ['invocationId'], ...(signal ? { signal } : {}) });
  const invocationBytes = ntds?.buffers['invocationid']?.[0];
  const invocationId = invocationBytes ? formatGuid(invocationBytes) : undefined;
  if (invocationId === undefined) {
    throw new ConfigError(`cannot read the invocationId of ${serverText(dsServiceName)} on ${connection.url}; may the service account read the Configuration partition?`);
  }
  let tombstoneLifetimeDays = defaultTombstoneLifetimeDays;
  try {
    const service = await readEntry(connection, `CN=Directory Service,CN=Windows NT,CN=Services,${configurationNamingContext}`, ['tombstoneLifetime'], signal ? { signal } : {});
    const days = Number(service?.attributes['tombstonelifetime']?.[0]);
    if (Number.isSafeInteger(days) && days > 0) tombstoneLifetimeDays = days;
  } catch (error) {
    if (signal?.aborted) throw error;
    // Unreadable: the forest default applies.
  }
  return {
    // Shown in checks and messages; a real host name is short and plain, so nothing is lost.
    dnsHostName: serverText(dnsHostName).toLowerCase(),
    invocationId,
    highestCommittedUsn: usn,
    currentTimeMs: parseGeneralizedTime(one('currenttime') ?? '') ?? Date.now(),
    defaultNamingContext,
    namingContexts: (a['namingcontexts'] ?? []).map((nc) => normalizeDn(nc)),
    configurationNamingContext,
    supportedControls: new Set(a['supportedcontrol'] ?? []),
    tombstoneLifetimeDays,
    vendor: serverText(one('vendorname') ?? 'Microsoft Active Directory'),
  };
}

/** The naming context (partition root) holding `base`, or undefined when the DC holds none. */
export function namingContextOf(dc: DcState, base: string): string | undefined {
  const dn = normalizeDn(base);
  let best: string | undefined;
  for (const nc of dc.namingContexts) if (isDnWithin(dn, nc) && (best === undefined || nc.length > best.length)) best = nc;
  return best;
}

const typeFilters: Readonly<Record<AdObjectType, string>> = {
  // objectClass=user alone also matches computer accounts.
  user: '(&(objectCategory=person)(objectClass=user))',
  contact: '(objectClass=contact)',
  group: '(objectClass=group)',
};

/** Any object of the configured types (no include/exclude filters). */
export function anyTypeFilter(settings: ActiveDirectorySettings): string {
  const parts = settings.objectTypes.map((t) => typeFilters[t]);
  return parts.length === 1 ? (parts[0] as string) : `(|${parts.join('')})`;
}

/** The filter selecting in-scope objects of one type, optionally narrowed further. */
export function scopeFilter(settings: ActiveDirectorySettings, type: AdObjectType, extra?: string): string {
  return andFilters(typeFilters[type], settings.filter, settings.excludeFilter ? `(!${settings.excludeFilter})` : undefined, extra);
}

const attributesByType: Readonly<Record<AdObjectType, readonly string[]>> = {
  user: adUserAttributes,
  contact: adContactAttributes,
  group: adGroupAttributes,
};

/** Attributes read for objects of a type (groups: without `member`). */
export function attributesOf(type: AdObjectType): readonly string[] {
  return attributesByType[type];
}

/** The member attribute description to request: the first range when a range size is set. */
export function memberAttribute(settings: ActiveDirectorySettings): string {
  return settings.rangeSize ? `member;range=0-${settings.rangeSize - 1}` : 'member';
}

/** A backlink attribute description to request: the first range when a range size is set. */
function rangedAttribute(settings: ActiveDirectorySettings, name: string): string {
  return settings.rangeSize ? `${name};range=0-${settings.rangeSize - 1}` : name;
}

/** The backlinks read with objects of a type: the groups they belong to, and whom they manage. */
export function backlinksOf(type: AdObjectType): readonly string[] {
  return type === 'group' ? ['memberOf'] : ['memberOf', 'directReports'];
}

/**
 * Search options for objects of one type under `base`, optionally narrowed by `extra` (a filter
 * object when it holds binary values: ldapts re-encodes escaped bytes of a filter string as UTF-8).
 * `withBacklinks` also reads the groups each object belongs to and the objects it manages (what
 * deltas need for objects that come into scope).
 */
export function objectSearch(
  settings: ActiveDirectorySettings,
  type: AdObjectType,
  base: string,
  extra?: string | Filter,
  signal?: AbortSignal,
  withBacklinks = false,
): SearchOptions {
  const attributes = withMappedSources(type === 'group' ? [...attributesByType.group, memberAttribute(settings)] : attributesByType[type], settings.attributeMapping, type);
  if (withBacklinks) for (const name of backlinksOf(type)) attributes.push(rangedAttribute(settings, name));
  return {
    base,
    filter: typeof extra === 'object' ? new AndFilter({ filters: [parseFilter(scopeFilter(settings, type)), extra] }) : scopeFilter(settings, type, extra),
    attributes,
    binaryAttributes: adBinaryAttributes,
    pageSize: settings.pageSize,
    timeLimitSeconds: settings.timeouts.searchTimeLimitSeconds,
    // Users name their manager by objectGUID this way, without a lookup per manager.
    ...(type === 'user' ? { controls: [extendedDnControl()] } : {}),
    ...(signal ? { signal } : {}),
  };
}

/**
 * Any object of the configured types by objectClass only: tombstones lose objectCategory (and
 * deleted computers match too, which costs a few ids that match no synced object).
 */
export function tombstoneTypeFilter(settings: ActiveDirectorySettings): string {
  const parts = settings.objectTypes.map((t) => `(objectClass=${t})`);
  return parts.length === 1 ? (parts[0] as string) : `(|${parts.join('')})`;
}

/** Tombstones (deleted objects of the configured types) changed after `usn`, under a naming context. */
export function tombstoneSearch(settings: ActiveDirectorySettings, namingContext: string, usn: number, signal?: AbortSignal): SearchOptions {
  return {
    base: namingContext,
    filter: `(&(isDeleted=TRUE)(uSNChanged>=${usn + 1})${tombstoneTypeFilter(settings)})`,
    attributes: ['objectGUID'],
    binaryAttributes: ['objectGUID'],
    pageSize: settings.pageSize,
    timeLimitSeconds: settings.timeouts.searchTimeLimitSeconds,
    controls: [new Control(showDeletedOid, { critical: true })],
    ...(signal ? { signal } : {}),
  };
}

async function count(connection: LdapConnection, options: SearchOptions): Promise<number> {
  let n = 0;
  for await (const page of pagedSearch(connection, { ...options, attributes: ['1.1'], controls: [] })) n += page.length;
  return n;
}

const counted = (n: number, type: AdObjectType) => `${n} ${type}${n === 1 ? '' : 's'}`;

/**
 * Test Connection for Active Directory: connect, TLS, bind, the DC answering, the naming
 * context, what the account sees under each base, whether it can read tombstones (deltas find
 * deletions through them), whether it could write (only read permission is needed), and the
 * delta method. Never throws for directory problems: each becomes a line of the checklist.
 */
export async function testAdConnection(
  settings: ActiveDirectorySettings,
  password: string | undefined,
  signal?: AbortSignal,
  destinations?: DestinationPolicy,
): Promise<ConnectionReport> {
  const { connection, checks } = await connectForCheck(settings, password, signal, destinations);
  if (!connection) return { ok: false, checks };
  const guard = async (name: string, run: () => Promise<ConnectionCheck | ConnectionCheck[]>) => {
    try {
      const result = await run();
      checks.push(...(Array.isArray(result) ? result : [result]));
    } catch (error) {
      if (signal?.aborted) {
        const line = hungCheck(name, `the ${name} step`, signal);
        if (!line) throw signal.reason;
        checks.push(line);
        throw new StepHung();
      }
      checks.push({ name, ok: false, detail: describeError(error) });
    }
  };
  try {
    let dc: DcState | undefined;
    await guard('domain controller', async () => {
      dc = await readDcState(connection, signal);
      return {
        name: 'domain controller',
        ok: true,
        detail: `${dc.dnsHostName} (${dc.vendor}), invocationId ${dc.invocationId}, highest committed USN ${dc.highestCommittedUsn}`,
      };
    });
    if (!dc) return { ok: false, checks };
    const state: DcState = dc;
    const outside = settings.baseDns.filter((base) => namingContextOf(state, base) === undefined);
    checks.push(
      outside.length === 0
        ? { name: 'naming context', ok: true, detail: `${serverText(state.defaultNamingContext)} (tombstone lifetime ${state.tombstoneLifetimeDays} days)` }
        : {
            name: 'naming context',
            ok: false,
            detail: `${outside.join('; ')} lies outside the naming contexts of ${serverText(state.dnsHostName)} (${serverText(state.namingContexts.join('; '), 500)})`,
          },
    );
    for (const base of settings.baseDns) {
      await guard('base', async () => {
        const counts: string[] = [];
        let total = 0;
        for (const type of settings.objectTypes) {
          const n = await count(connection, objectSearch(settings, type, base, undefined, signal));
          total += n;
          counts.push(counted(n, type));
        }
        return { name: 'base', ok: true, detail: `${base}: ${counts.join(', ')} visible`, ...(total === 0 ? { warning: true } : {}) };
      });
    }
    await guard('tombstones', () => tombstoneCheck(connection, settings, state, signal));
    await guard('read-only', () => writeCheck(connection, settings, signal));
    await guard('delta', () => deltaCheck(connection, settings, state, signal));
  } catch (error) {
    // A step hung past the deadline: its line says so, and the checklist ends there.
    if (error instanceof StepHung) return { ok: false, checks };
    throw error;
  } finally {
    await connection.close();
  }
  return { ok: checks.every((c) => c.ok), checks };
}

async function tombstoneCheck(connection: LdapConnection, settings: ActiveDirectorySettings, dc: DcState, signal?: AbortSignal): Promise<ConnectionCheck> {
  // Without List Contents and Read Property on Deleted Objects the container shows up, but its
  // objectGUID does not: a search for tombstones silently returns nothing.
  const deleted = `<WKGUID=18e2ea80684f11d2b9aa00c04f79f805,${dc.defaultNamingContext}>`;
  const entry = await readEntry(connection, deleted, ['objectGUID'], {
    binaryAttributes: ['objectGUID'],
    controls: [new Control(showDeletedOid, { critical: true })],
    timeLimitSeconds: settings.timeouts.searchTimeLimitSeconds,
    ...(signal ? { signal } : {}),
  }).catch((error: unknown) => {
    if (error instanceof ProviderError && !error.retryable) return undefined;
    throw error;
  });
  if (entry?.buffers['objectguid']?.[0]) {
    return { name: 'tombstones', ok: true, detail: 'readable (Show Deleted): deltas see deletions' };
  }
  return {
    name: 'tombstones',
    ok: true,
    warning: true,
    detail: `not readable by ${settings.bindDn}: deltas cannot see deletions, only full syncs find them (grant List Contents and Read Property on CN=Deleted Objects)`,
  };
}

async function writeCheck(connection: LdapConnection, settings: ActiveDirectorySettings, signal?: AbortSignal): Promise<ConnectionCheck> {
  // allowedAttributesEffective / allowedChildClassesEffective list what the bound account may
  // write or create there: for a read-only account both are empty.
  const writable: string[] = [];
  for (const base of settings.baseDns) {
    const entry = await readEntry(connection, base, ['allowedAttributesEffective', 'allowedChildClassesEffective'], {
      timeLimitSeconds: settings.timeouts.searchTimeLimitSeconds,
      ...(signal ? { signal } : {}),
    });
    const attributes = entry?.attributes['allowedattributeseffective']?.length ?? 0;
    const classes = entry?.attributes['allowedchildclasseseffective']?.length ?? 0;
    if (attributes > 0 || classes > 0) writable.push(`${base} (${attributes} attributes writable, ${classes} object classes creatable)`);
  }
  if (writable.length === 0) return { name: 'read-only', ok: true, detail: 'the account cannot write to the configured bases' };
  return {
    name: 'read-only',
    ok: true,
    warning: true,
    detail: `the account can write: ${writable.join('; ')}; dirsync only reads, so a read-only account is enough and safer`,
  };
}

async function deltaCheck(connection: LdapConnection, settings: ActiveDirectorySettings, dc: DcState, signal?: AbortSignal): Promise<ConnectionCheck> {
  if (settings.deltaMethod === 'usn') {
    return { name: 'delta', ok: true, detail: `uSNChanged above the cursor, and tombstones (DC ${dc.dnsHostName})` };
  }
  return probeDirSync(connection, settings, dc, signal);
}

/** Test Connection line for the DirSync method: may the account use DirSync here? */
export async function probeDirSync(
  connection: LdapConnection,
  settings: ActiveDirectorySettings,
  dc: DcState,
  signal?: AbortSignal,
): Promise<ConnectionCheck> {
  if (!dc.supportedControls.has(dirSyncOid)) {
    return { name: 'delta', ok: false, detail: `${dc.dnsHostName} does not offer the DirSync control; use deltaMethod "usn"` };
  }
  const nc = namingContextOf(dc, settings.baseDns[0] as string) ?? dc.defaultNamingContext;
  // A filter nothing matches: the answer costs little, a refusal shows up as an error.
  for await (const batch of pagedSearchPages(connection, {
    base: nc,
    filter: `(objectGUID=${escapeFilterValue('\u0000')})`,
    attributes: ['objectGUID'],
    pageSize: 0,
    timeLimitSeconds: settings.timeouts.searchTimeLimitSeconds,
    controls: [dirSyncControl({ flags: DirSyncFlags.objectSecurity, maxBytes: 1024 })],
    ...(signal ? { signal } : {}),
  })) {
    void batch;
  }
  return { name: 'delta', ok: true, detail: `DirSync on ${dc.dnsHostName} (changes and deletions since a cookie)` };
}
