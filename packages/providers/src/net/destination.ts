import dns from 'node:dns';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import type { Duplex } from 'node:stream';
import type { ClientRequestArgs } from 'node:http';
import type { buildConnector } from 'undici';
import { ConfigError } from '../errors.ts';

/**
 * Why an address is refused. `platform` is one of the installation's own services (Redis,
 * PostgreSQL); every other category is a kind of network customers' servers do not live on
 * unless the platform says so.
 */
export type AddressCategory =
  | 'loopback'
  | 'unspecified'
  | 'link-local'
  | 'metadata'
  | 'multicast'
  | 'broadcast'
  | 'private'
  | 'shared'
  | 'reserved'
  | 'platform';

/** A parsed IP address: 4 bytes for IPv4, 16 for IPv6. */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
}

/** A network in CIDR notation, parsed. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly prefix: number;
  /** The canonical text (`10.0.0.0/8`). */
  readonly text: string;
}

/** One of the platform's own services, as configured (host name or address, and port). */
export interface PlatformEndpoint {
  readonly host: string;
  readonly port: number;
  /** Shown in refusals: `Redis`, `PostgreSQL`. */
  readonly name: string;
}

/** Answers of a name lookup: what `dns.lookup(host, { all: true })` returns. */
export type ResolvedAddress = { readonly address: string; readonly family: 4 | 6 };

/** Resolves a host name to every address it has. */
export type Resolver = (host: string) => Promise<readonly ResolvedAddress[]>;

/** Settings of a {@link DestinationPolicy}. */
export interface DestinationPolicyOptions {
  /**
   * Networks customers' servers may be reached in although they are private, loopback or
   * link-local (`DIRSYNC_ALLOWED_NETWORKS`): CIDR strings or parsed networks.
   */
  readonly allowedNetworks?: readonly (string | Cidr)[] | undefined;
  /** The platform's own services: refused on every address they resolve to, allowed network or not. */
  readonly platformEndpoints?: readonly PlatformEndpoint[] | undefined;
  /** Name resolution (default: the system resolver through `dns.lookup`). */
  readonly resolve?: Resolver | undefined;
  /**
   * This machine's own addresses (default: its network interfaces). A platform service on
   * loopback may listen on every interface, so its port is refused on all of them.
   */
  readonly localAddresses?: readonly string[] | undefined;
}

/** Where a connection is about to go: the host and port of a URL, and the URL for messages. */
export interface DestinationTarget {
  readonly host: string;
  readonly port: number;
  /** The URL (or `host:port`) named in a refusal; never holds credentials. */
  readonly label: string;
}

/** A destination whose every address passed the policy: connect only to these. */
export interface CheckedDestination {
  readonly host: string;
  readonly port: number;
  readonly addresses: readonly ResolvedAddress[];
  /**
   * A `lookup` for `net.connect` / `tls.connect` answering with the checked addresses only, so
   * the connection cannot go to an address resolved later (DNS rebinding).
   */
  readonly lookup: net.LookupFunction;
}

/**
 * A connection was refused by the destination policy before anything was sent: the URL
 * resolves to an address of a kind this installation does not let integrations reach.
 * Never retried (the settings or the platform's configuration must change).
 */
export class DestinationRefusedError extends ConfigError {
  readonly target: string;
  readonly address: string;
  readonly category: AddressCategory;
  constructor(target: string, address: string, category: AddressCategory, message: string) {
    super(message);
    this.target = target;
    this.address = address;
    this.category = category;
  }
}

/**
 * The peer accepted the connection but did not answer as the expected protocol's server (an
 * LDAP URL pointing at Redis or a web server): no credential was sent to it.
 */
export class UnexpectedPeerError extends ConfigError {
  readonly target: string;
  constructor(target: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.target = target;
  }
}

/** The first {@link DestinationRefusedError} in an error's cause chain (libraries wrap it). */
export function findDestinationRefusal(error: unknown): DestinationRefusedError | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    if (current instanceof DestinationRefusedError) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

// ---- addresses and networks ----

function parseIpv4(text: string): Uint8Array | undefined {
  if (!net.isIPv4(text)) return undefined;
  return Uint8Array.from(text.split('.').map(Number));
}

function parseIpv6(text: string): Uint8Array | undefined {
  if (!net.isIPv6(text)) return undefined;
  const bytes = new Uint8Array(16);
  let head = text;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseIpv4(tail);
    if (!v4) return undefined;
    bytes.set(v4, 12);
    // The dotted quad stands for the last two groups.
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split('::');
  const groupsOf = (part: string | undefined) => (part ? part.split(':') : []);
  const left = groupsOf(halves[0]);
  const right = halves.length > 1 ? groupsOf(halves[1]) : [];
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  groups.forEach((group, i) => {
    if (i >= 6 && tail.includes('.')) return;
    const value = Number.parseInt(group, 16);
    bytes[i * 2] = value >> 8;
    bytes[i * 2 + 1] = value & 0xff;
  });
  return bytes;
}

/** Parses an IPv4 or IPv6 address (brackets and an IPv6 zone allowed); undefined when it is not one. */
export function parseIp(text: string): IpAddress | undefined {
  let value = text.trim();
  if (value.startsWith('[') && value.endsWith(']')) value = value.slice(1, -1);
  const zone = value.indexOf('%');
  if (zone >= 0) value = value.slice(0, zone);
  const v4 = parseIpv4(value);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseIpv6(value);
  return v6 ? { family: 6, bytes: v6 } : undefined;
}

/** The usual text of an address (`127.0.0.1`, `::1`). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) return [...ip.bytes].join('.');
  // IPv4-mapped addresses read best with their IPv4 part dotted (`::ffff:127.0.0.1`).
  if (ip.bytes.subarray(0, 10).every((b) => b === 0) && ip.bytes[10] === 0xff && ip.bytes[11] === 0xff) {
    return `::ffff:${[...ip.bytes.subarray(12)].join('.')}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((ip.bytes[i] ?? 0) << 8) | (ip.bytes[i + 1] ?? 0));
  // The longest run of two or more zero groups becomes "::".
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j += 1;
    if (j - i > bestLength && j - i >= 2) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

function inNetwork(bytes: Uint8Array, network: Uint8Array, prefix: number): boolean {
  if (bytes.length !== network.length) return false;
  const whole = Math.floor(prefix / 8);
  for (let i = 0; i < whole; i++) if (bytes[i] !== network[i]) return false;
  const bits = prefix % 8;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return ((bytes[whole] ?? 0) & mask) === ((network[whole] ?? 0) & mask);
}

/** True when `ip` lies in `cidr` (same family only: embedded IPv4 is unwrapped by the policy). */
export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  return cidr.family === ip.family && inNetwork(ip.bytes, cidr.bytes, cidr.prefix);
}

/**
 * Parses `a.b.c.d/n`, `x:y::/n`, or a bare address (a network of one). Throws a one-line Error
 * naming what is wrong: not an address, prefix out of range, host bits set, or `/0`.
 */
export function parseCidr(text: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addressText = slash < 0 ? trimmed : trimmed.slice(0, slash);
  const ip = parseIp(addressText);
  if (!ip || addressText.includes('%')) throw new Error(`"${trimmed}" is not a network in CIDR notation (like 10.20.0.0/16 or fd12:3456::/48)`);
  const max = ip.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const prefixText = trimmed.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
      throw new Error(`"${trimmed}" has a prefix length outside 0–${max}`);
    }
    prefix = Number(prefixText);
  }
  if (prefix === 0) {
    throw new Error(`"${trimmed}" would allow every address, metadata services included; list the networks the directories are in`);
  }
  const network = Uint8Array.from(ip.bytes);
  const whole = Math.floor(prefix / 8);
  const bits = prefix % 8;
  for (let i = whole; i < network.length; i++) {
    const keep = i === whole && bits > 0 ? (0xff << (8 - bits)) & 0xff : 0;
    network[i] = (network[i] ?? 0) & keep;
  }
  const canonical = formatIp({ family: ip.family, bytes: network });
  if (!network.every((b, i) => b === ip.bytes[i])) {
    throw new Error(`"${trimmed}" has host bits set; did you mean ${canonical}/${prefix}?`);
  }
  return { family: ip.family, bytes: network, prefix, text: `${canonical}/${prefix}` };
}

/** Outcome of {@link parseCidrList}: the networks, or every problem found. */
export type CidrListParse = { readonly ok: true; readonly networks: readonly Cidr[] } | { readonly ok: false; readonly problems: readonly string[] };

/** Parses a comma-separated list of networks (`DIRSYNC_ALLOWED_NETWORKS`); empty entries are ignored. */
export function parseCidrList(text: string): CidrListParse {
  const networks: Cidr[] = [];
  const problems: string[] = [];
  for (const part of text.split(',')) {
    if (part.trim() === '') continue;
    try {
      networks.push(parseCidr(part));
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, networks };
}

function cidr(text: string): Cidr {
  return parseCidr(text);
}

interface Range {
  readonly network: Cidr;
  readonly category: AddressCategory;
  /** Said after the category in refusals (`the cloud metadata service`). */
  readonly note?: string;
}

// First match wins: the narrow entries come before the ranges holding them.
const ipv4Ranges: readonly Range[] = [
  { network: cidr('0.0.0.0/8'), category: 'unspecified' },
  { network: cidr('127.0.0.0/8'), category: 'loopback' },
  { network: cidr('169.254.169.254'), category: 'metadata', note: 'the cloud metadata service' },
  { network: cidr('169.254.170.2'), category: 'metadata', note: 'the container credentials service' },
  { network: cidr('169.254.0.0/16'), category: 'link-local' },
  { network: cidr('10.0.0.0/8'), category: 'private' },
  { network: cidr('172.16.0.0/12'), category: 'private' },
  { network: cidr('192.168.0.0/16'), category: 'private' },
  { network: cidr('100.100.100.200'), category: 'metadata', note: 'a cloud metadata service' },
  { network: cidr('100.64.0.0/10'), category: 'shared', note: 'carrier-grade NAT, RFC 6598' },
  { network: cidr('192.0.0.0/24'), category: 'reserved' },
  { network: cidr('192.0.2.0/24'), category: 'reserved' },
  { network: cidr('198.18.0.0/15'), category: 'reserved' },
  { network: cidr('198.51.100.0/24'), category: 'reserved' },
  { network: cidr('203.0.113.0/24'), category: 'reserved' },
  { network: cidr('224.0.0.0/4'), category: 'multicast' },
  { network: cidr('255.255.255.255'), category: 'broadcast' },
  { network: cidr('240.0.0.0/4'), category: 'reserved' },
];

const ipv6Ranges: readonly Range[] = [
  { network: cidr('::'), category: 'unspecified' },
  { network: cidr('::1'), category: 'loopback' },
  { network: cidr('fd00:ec2::254'), category: 'metadata', note: 'the cloud metadata service' },
  { network: cidr('fe80::/10'), category: 'link-local' },
  { network: cidr('fec0::/10'), category: 'private', note: 'site-local' },
  { network: cidr('fc00::/7'), category: 'private', note: 'unique local' },
  { network: cidr('ff00::/8'), category: 'multicast' },
  { network: cidr('100::/64'), category: 'reserved' },
  // Translation prefixes whose IPv4 address is not at a fixed place (RFC 8215 local-use NAT64,
  // Teredo's obfuscated server and client): never a directory's address, refused unless allowed.
  { network: cidr('64:ff9b:1::/48'), category: 'reserved', note: 'local-use NAT64' },
  { network: cidr('2001::/32'), category: 'reserved', note: 'Teredo' },
  { network: cidr('2001:db8::/32'), category: 'reserved' },
];

/** Addresses that are never a destination, whatever the allowed networks say. */
const neverAllowed: ReadonlySet<AddressCategory> = new Set(['unspecified', 'metadata', 'multicast', 'broadcast']);

const mappedPrefix = cidr('::ffff:0:0/96');
// RFC 2765 (SIIT) IPv4-translated addresses: a translator delivers them to the IPv4 address.
const translatedPrefix = cidr('::ffff:0:0:0/96');
const compatiblePrefix = cidr('::/96');
const nat64Prefix = cidr('64:ff9b::/96');
const sixToFourPrefix = cidr('2002::/16');

/**
 * The IPv4 address an IPv6 address carries, when it carries one that decides where the packets
 * go: IPv4-mapped (`::ffff:127.0.0.1` is 127.0.0.1 to the kernel), IPv4-translated (SIIT),
 * IPv4-compatible, NAT64 and 6to4.
 */
export function embeddedIpv4(ip: IpAddress): IpAddress | undefined {
  if (ip.family !== 6) return undefined;
  if (inNetwork(ip.bytes, mappedPrefix.bytes, 96) || inNetwork(ip.bytes, translatedPrefix.bytes, 96) || inNetwork(ip.bytes, nat64Prefix.bytes, 96)) {
    return { family: 4, bytes: ip.bytes.slice(12, 16) };
  }
  if (inNetwork(ip.bytes, compatiblePrefix.bytes, 96)) {
    const v4 = ip.bytes.slice(12, 16);
    // `::` and `::1` are themselves, not IPv4-compatible forms.
    if (v4[0] === 0 && v4[1] === 0 && v4[2] === 0 && (v4[3] ?? 0) <= 1) return undefined;
    return { family: 4, bytes: v4 };
  }
  if (inNetwork(ip.bytes, sixToFourPrefix.bytes, 16)) return { family: 4, bytes: ip.bytes.slice(2, 6) };
  return undefined;
}

function rangeOf(ip: IpAddress): Range | undefined {
  const ranges = ip.family === 4 ? ipv4Ranges : ipv6Ranges;
  return ranges.find((range) => cidrContains(range.network, ip));
}

/** The special range an address falls in (after unwrapping embedded IPv4), or undefined for a public address. */
export function addressCategory(address: string): AddressCategory | undefined {
  const ip = parseIp(address);
  if (!ip) throw new Error(`"${address}" is not an IP address`);
  return rangeOf(embeddedIpv4(ip) ?? ip)?.category;
}

const categoryWords: Record<AddressCategory, string> = {
  loopback: 'a loopback address',
  unspecified: 'an unspecified address',
  'link-local': 'a link-local address',
  metadata: 'a link-local metadata address',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  private: 'a private address',
  shared: 'a shared address',
  reserved: 'a reserved address',
  platform: "one of the platform's own services",
};

function ipKey(ip: IpAddress): string {
  return formatIp(ip);
}

async function systemResolve(host: string): Promise<readonly ResolvedAddress[]> {
  const answers = await dns.promises.lookup(host, { all: true, order: 'verbatim' });
  return answers.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
}

function interfaceAddresses(): string[] {
  return Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}

interface PlatformAddresses {
  /** `address|port` of every address a platform endpoint resolves to. */
  readonly exact: ReadonlyMap<string, string>;
  /** Ports of platform services on this machine: refused on loopback and every local address. */
  readonly localPorts: ReadonlyMap<number, string>;
}

let nextPolicyId = 1;

/**
 * The outbound destination policy: where a worker may open connections to customers' systems.
 * A destination is resolved once, every address it resolves to is checked, and the connection
 * goes only to those addresses (see {@link CheckedDestination.lookup}). Refused: loopback,
 * unspecified, link-local (metadata services included), multicast, broadcast, reserved, private
 * (RFC 1918, unique local) and shared (CGNAT) addresses, IPv6 forms carrying any of them, unless
 * an allowed network holds the address; and the platform's own endpoints always.
 */
export class DestinationPolicy {
  /** Distinguishes policies in caches keyed by settings (token credentials hold a policy's agent). */
  readonly id: number;
  readonly allowedNetworks: readonly Cidr[];
  readonly platformEndpoints: readonly PlatformEndpoint[];
  readonly #resolve: Resolver;
  readonly #localAddresses: readonly string[] | undefined;
  #platform: Promise<PlatformAddresses> | undefined;

  constructor(options: DestinationPolicyOptions = {}) {
    this.id = nextPolicyId++;
    this.allowedNetworks = (options.allowedNetworks ?? []).map((n) => (typeof n === 'string' ? parseCidr(n) : n));
    this.platformEndpoints = [...(options.platformEndpoints ?? [])];
    this.#resolve = options.resolve ?? systemResolve;
    this.#localAddresses = options.localAddresses;
  }

  /** Nothing private, no loopback, no platform endpoint known: what a provider gets by default. */
  static strict(): DestinationPolicy {
    return strictPolicy;
  }

  /**
   * Resolves the target once and checks every address. Throws {@link DestinationRefusedError}
   * when any address is refused (a name that also resolves to a refused address is not trusted
   * with the others); DNS failures are thrown as the resolver raised them.
   */
  async check(target: DestinationTarget): Promise<CheckedDestination> {
    const literal = parseIp(target.host);
    const addresses: readonly ResolvedAddress[] = literal
      ? [{ address: formatIp(literal), family: literal.family }]
      : await this.#resolve(target.host);
    if (addresses.length === 0) throw Object.assign(new Error(`${target.host} has no address`), { code: 'ENOTFOUND' });
    const platform = await this.#platformAddresses();
    for (const { address } of addresses) this.#verdict(target, address, platform);
    const checked = addresses.map((a) => ({ address: a.address, family: a.family }));
    const lookup: net.LookupFunction = (_hostname, options, callback) => {
      const wanted = options.family === 4 || options.family === 'IPv4' ? 4 : options.family === 6 || options.family === 'IPv6' ? 6 : 0;
      const usable = wanted === 0 ? checked : checked.filter((a) => a.family === wanted);
      const first = usable[0];
      if (!first) {
        const error = Object.assign(new Error(`${target.host} has no IPv${wanted} address`), { code: 'ENOTFOUND' });
        callback(error as NodeJS.ErrnoException, '', 0);
        return;
      }
      if (options.all) (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, usable);
      else callback(null, first.address, first.family);
    };
    return { host: target.host, port: target.port, addresses: checked, lookup };
  }

  /**
   * The refusal for one address and port, or undefined when allowed. Platform endpoints given
   * by name are resolved on first use.
   */
  async refusal(target: DestinationTarget, address: string): Promise<DestinationRefusedError | undefined> {
    try {
      this.#verdict(target, address, await this.#platformAddresses());
      return undefined;
    } catch (error) {
      if (error instanceof DestinationRefusedError) return error;
      throw error;
    }
  }

  /**
   * An `https.Agent` whose every connection passes this policy (host names resolved and
   * checked at connect time, address literals checked too); `options` as for `https.Agent`.
   */
  httpsAgent(options: https.AgentOptions = {}): https.Agent {
    return new CheckedHttpsAgent(this, options);
  }

  #allowed(ip: IpAddress, effective: IpAddress): boolean {
    return this.allowedNetworks.some((n) => cidrContains(n, ip) || cidrContains(n, effective));
  }

  #verdict(target: DestinationTarget, address: string, platform: PlatformAddresses): void {
    const ip = parseIp(address);
    if (!ip) throw new DestinationRefusedError(target.label, address, 'reserved', `${target.label} resolves to "${address}", which is not an IP address`);
    const effective = embeddedIpv4(ip) ?? ip;
    const shown = formatIp(ip);
    const service = platform.exact.get(`${ipKey(effective)}|${target.port}`) ?? this.#localService(effective, target.port, platform);
    if (service !== undefined) {
      throw new DestinationRefusedError(
        target.label,
        shown,
        'platform',
        `${target.label} resolves to ${shown} port ${target.port}, the platform's own ${service}, which no integration may reach (not even inside DIRSYNC_ALLOWED_NETWORKS)`,
      );
    }
    const range = rangeOf(effective);
    if (!range) return;
    const words = `${categoryWords[range.category]}${range.note ? ` (${range.note})` : ''}`;
    const via = effective === ip ? '' : ` (it carries the IPv4 address ${formatIp(effective)})`;
    if (neverAllowed.has(range.category)) {
      throw new DestinationRefusedError(target.label, shown, range.category, `${target.label} resolves to ${shown}${via}, ${words}, which is never a valid destination`);
    }
    if (this.#allowed(ip, effective)) return;
    throw new DestinationRefusedError(
      target.label,
      shown,
      range.category,
      `${target.label} resolves to ${shown}${via}, ${words}, which this installation does not allow; the platform can allow a network for directories reached over a VPN or private link with DIRSYNC_ALLOWED_NETWORKS (comma-separated CIDRs)`,
    );
  }

  #localService(effective: IpAddress, port: number, platform: PlatformAddresses): string | undefined {
    const service = platform.localPorts.get(port);
    if (service === undefined) return undefined;
    const category = rangeOf(effective)?.category;
    if (category === 'loopback' || category === 'unspecified') return service;
    const local = this.#localAddresses ?? interfaceAddresses();
    const key = ipKey(effective);
    return local.some((a) => {
      const ip = parseIp(a);
      return ip !== undefined && ipKey(embeddedIpv4(ip) ?? ip) === key;
    })
      ? service
      : undefined;
  }

  #platformAddresses(): Promise<PlatformAddresses> {
    this.#platform ??= this.#resolvePlatform().catch((error: unknown) => {
      // A platform name that does not resolve now may later: try again next time.
      this.#platform = undefined;
      throw error;
    });
    return this.#platform;
  }

  async #resolvePlatform(): Promise<PlatformAddresses> {
    const exact = new Map<string, string>();
    const localPorts = new Map<number, string>();
    const local = new Set((this.#localAddresses ?? interfaceAddresses()).flatMap((a) => {
      const ip = parseIp(a);
      return ip ? [ipKey(embeddedIpv4(ip) ?? ip)] : [];
    }));
    for (const endpoint of this.platformEndpoints) {
      const literal = parseIp(endpoint.host);
      const addresses = literal ? [formatIp(literal)] : (await this.#resolve(endpoint.host)).map((a) => a.address);
      for (const address of addresses) {
        const ip = parseIp(address);
        if (!ip) continue;
        const effective = embeddedIpv4(ip) ?? ip;
        exact.set(`${ipKey(effective)}|${endpoint.port}`, endpoint.name);
        const category = rangeOf(effective)?.category;
        if (category === 'loopback' || category === 'unspecified' || local.has(ipKey(effective))) localPorts.set(endpoint.port, endpoint.name);
      }
    }
    return { exact, localPorts };
  }
}

const strictPolicy = new DestinationPolicy();

/** The endpoints of the platform's Redis and PostgreSQL, from their URLs (for {@link DestinationPolicyOptions.platformEndpoints}). */
export function platformEndpointsOf(urls: { readonly redisUrl?: string | undefined; readonly databaseUrl?: string | undefined }): PlatformEndpoint[] {
  const endpoints: PlatformEndpoint[] = [];
  const add = (text: string | undefined, name: string, defaultPort: number) => {
    // A libpq URL may name several hosts (`host1:5432,host2:5433`), which URL parsing refuses.
    const authority = text ? /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/]*@)?([^/?#]*)/i.exec(text)?.[1] : undefined;
    if (!authority) return;
    for (const part of authority.split(',')) {
      const match = /^(\[[^\]]+\]|[^:]*)(?::(\d+))?$/.exec(part);
      const host = match?.[1]?.replace(/^\[|\]$/g, '');
      if (!host) continue;
      endpoints.push({ host, port: match?.[2] ? Number(match[2]) : defaultPort, name });
    }
  };
  // A Redis Cluster's REDIS_URL lists several seed URLs, comma-separated: each is the platform's.
  for (const seed of urls.redisUrl?.split(',') ?? []) add(seed.trim(), 'Redis', 6379);
  add(urls.databaseUrl, 'PostgreSQL', 5432);
  return endpoints;
}

type ConnectionCallback = (error: Error | null, socket: Duplex) => void;

/**
 * `https.Agent` for libraries that take one (`@azure/identity`): each new connection first
 * passes the policy, then is opened with a lookup answering the checked addresses only.
 */
class CheckedHttpsAgent extends https.Agent {
  readonly #policy: DestinationPolicy;

  constructor(policy: DestinationPolicy, options: https.AgentOptions) {
    super(options);
    this.#policy = policy;
  }

  // Node's Agent takes a socket handed to the callback later, which lets the check be async.
  override createConnection(options: ClientRequestArgs, callback?: ConnectionCallback): Duplex | null | undefined {
    const host = options.host ?? options.hostname ?? 'localhost';
    const port = Number(options.port ?? 443);
    const fail = (error: unknown) => callback?.(error instanceof Error ? error : new Error(String(error)), undefined as unknown as Duplex);
    this.#policy.check({ host, port, label: `https://${net.isIPv6(host) ? `[${host}]` : host}:${port}` }).then((checked) => {
      let socket: Duplex | null | undefined;
      try {
        socket = super.createConnection({ ...options, lookup: checked.lookup } as ClientRequestArgs);
      } catch (error) {
        fail(error);
        return;
      }
      if (socket) callback?.(null, socket);
      else fail(new Error(`no connection to ${host}:${port}`));
    }, fail);
    return undefined;
  }
}

/**
 * An undici connector (the `connect` option of an undici `Agent`) whose every connection passes
 * `policy`: resolved and checked first, then opened with a lookup answering the checked
 * addresses only. `build` is undici's `buildConnector` (undici loads on first use, see
 * `checkedHttp`); `options` as it takes them (TLS trust, timeouts).
 */
export function checkedUndiciConnector(
  build: typeof buildConnector,
  policy: DestinationPolicy,
  options: buildConnector.BuildOptions = {},
): buildConnector.connector {
  return (connectOptions, callback) => {
    const port = Number(connectOptions.port) || (connectOptions.protocol === 'https:' ? 443 : 80);
    const host = connectOptions.hostname;
    const label = `${connectOptions.protocol}//${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
    policy.check({ host, port, label }).then(
      (checked) => build({ ...options, lookup: checked.lookup } as buildConnector.BuildOptions)(connectOptions, callback),
      (error: unknown) => callback(error instanceof Error ? error : new Error(String(error)), null),
    );
  };
}
