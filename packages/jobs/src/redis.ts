import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { failFastRedisOptions } from './unavailable.ts';

/** A connection of either kind: BullMQ, the scripts and the commands here take both. */
export type RedisClient = Redis | Cluster;

/** How the installation reaches Redis. */
export type RedisMode = 'standalone' | 'cluster';

/**
 * The Redis settings of an installation, as the apps' config modules read them
 * (`REDIS_URL`, `DIRSYNC_REDIS_MODE`, `DIRSYNC_SYNC_SHARDS`).
 */
export interface RedisSettings {
  /**
   * `redis://` or `rediss://` (TLS) URL, with user name and password when the service needs
   * them; in cluster mode one or more seed nodes, comma-separated (any node of the cluster will
   * do: the client learns the others from it).
   */
  readonly url: string;
  /** Default `standalone`. */
  readonly mode?: RedisMode | undefined;
  /** Queues the sync queue is split into (default 1: the one queue of earlier versions). */
  readonly syncShards?: number | undefined;
}

/**
 * What every client of this package accepts: a Redis URL (standalone), the installation's
 * {@link RedisSettings}, or ioredis options (standalone). (`replyMapping` is left out: the
 * clients rely on ioredis' default reply shapes.)
 */
export type RedisConnection = string | RedisSettings | Omit<RedisOptions, 'replyMapping'>;

/**
 * What a connection is for; the options differ by purpose:
 * - `client`: producers and tooling (ioredis defaults: commands wait for a reconnect);
 * - `request`: serving HTTP requests: fail at once while Redis is away (see `failFastRedisOptions`);
 * - `blocking`: BullMQ workers and queue events, which need `maxRetriesPerRequest: null`;
 * - `inspector`: periodic passes that simply try again next time (one retry per command).
 */
export type RedisPurpose = 'client' | 'request' | 'blocking' | 'inspector';

/** True when `connection` is a {@link RedisSettings}. */
export function isRedisSettings(connection: RedisConnection): connection is RedisSettings {
  return typeof connection === 'object' && typeof (connection as { url?: unknown }).url === 'string';
}

/** The mode `connection` stands for. */
export function redisModeOf(connection: RedisConnection): RedisMode {
  return isRedisSettings(connection) && connection.mode === 'cluster' ? 'cluster' : 'standalone';
}

/** The sync shard count `connection` stands for (1 unless its settings say otherwise). */
export function syncShardsOf(connection: RedisConnection): number {
  return isRedisSettings(connection) && connection.syncShards !== undefined ? connection.syncShards : 1;
}

/** A cluster seed node and the credentials and TLS of the URL that named it. */
interface SeedNode {
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly tls: boolean;
}

/**
 * Splits a comma-separated list of `redis://`/`rediss://` URLs into nodes. Throws a message that
 * names the position of a bad entry, never its text (it may carry a password).
 */
export function parseRedisSeeds(urls: string): { host: string; port: number; tls: boolean }[] {
  return seedNodes(urls).map(({ host, port, tls }) => ({ host, port, tls }));
}

function seedNodes(urls: string): SeedNode[] {
  const entries = urls
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) throw new Error('REDIS_URL names no Redis node');
  return entries.map((entry, index) => {
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      throw new Error(`REDIS_URL entry ${index + 1} is not a URL`);
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new Error(`REDIS_URL entry ${index + 1} must be a redis:// or rediss:// URL`);
    return {
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port === '' ? 6379 : Number(url.port),
      username: url.username === '' ? undefined : decodeURIComponent(url.username),
      password: url.password === '' ? undefined : decodeURIComponent(url.password),
      tls: url.protocol === 'rediss:',
    };
  });
}

function purposeOptions(purpose: RedisPurpose): Omit<RedisOptions, 'replyMapping'> {
  switch (purpose) {
    case 'request':
      return { ...failFastRedisOptions };
    case 'blocking':
      return { maxRetriesPerRequest: null };
    case 'inspector':
      return { maxRetriesPerRequest: 1 };
    case 'client':
      return {};
  }
}

/** Options of {@link openRedis}. */
export interface OpenRedisOptions {
  /** Handed every connection error (an EventEmitter without a listener would print or throw them). */
  readonly onError?: ((error: Error) => void) | undefined;
  /** ioredis options that win over the purpose's (standalone; `lazyConnect`, timeouts). */
  readonly extra?: Omit<RedisOptions, 'replyMapping'> | undefined;
}

/**
 * The one way the code base opens Redis. Standalone: one connection to the URL. Cluster: an
 * ioredis `Cluster` seeded with every URL of the list, which learns the slot map from them and
 * follows `MOVED`/`ASK` redirections, so any node (including one that owns none of the keys) is
 * a valid seed; user name, password and TLS (`rediss://`) of the first URL apply to every node,
 * as managed services hand out one set of credentials. `purpose` sets what differs between
 * users (see {@link RedisPurpose}).
 */
export function openRedis(connection: RedisConnection, purpose: RedisPurpose = 'client', options: OpenRedisOptions = {}): RedisClient {
  const perPurpose = { ...purposeOptions(purpose), ...options.extra };
  let client: RedisClient;
  if (typeof connection === 'string') client = new Redis(connection, perPurpose);
  else if (!isRedisSettings(connection)) client = new Redis({ ...connection, ...perPurpose });
  else if (connection.mode !== 'cluster') client = new Redis(connection.url.split(',')[0]?.trim() ?? '', perPurpose);
  else {
    const seeds = seedNodes(connection.url);
    const first = seeds[0] as SeedNode;
    const { enableOfflineQueue, lazyConnect, retryStrategy: _standaloneOnly, ...nodeOptions } = perPurpose;
    const clusterOptions = {
      redisOptions: {
        ...nodeOptions,
        ...(first.username === undefined ? {} : { username: first.username }),
        ...(first.password === undefined ? {} : { password: first.password }),
        ...(first.tls ? { tls: {} } : {}),
      },
      ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
      ...(lazyConnect === undefined ? {} : { lazyConnect }),
      // A fail-fast client must not sit on a redirection either.
      ...(purpose === 'request' ? { retryDelayOnClusterDown: 100, retryDelayOnTryAgain: 100 } : {}),
    } satisfies ClusterOptions;
    client = new Cluster(
      seeds.map(({ host, port }) => ({ host, port })),
      clusterOptions,
    );
  }
  if (options.onError) client.on('error', options.onError);
  return client;
}

/** Ends a connection: QUIT when it is up, a plain disconnect otherwise. Never throws. */
export async function closeRedis(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'wait') {
    client.disconnect();
    return;
  }
  await client.quit().then(
    () => undefined,
    () => client.disconnect(),
  );
}
