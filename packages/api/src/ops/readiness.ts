import { checkDatabaseReady, type Db } from '@dirsync/db';
import { DEFAULT_QUEUE_PREFIX, openRedis, queueLayoutOf, type RedisConnection } from '@dirsync/jobs';

/** One dependency's state in a readiness answer. */
export interface ReadinessCheck {
  readonly ok: boolean;
  readonly detail?: string;
}

/** What `/readyz` answers. */
export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, ReadinessCheck>>;
}

/** A readiness probe and the connection it holds. */
export interface ReadinessProbe {
  check(): Promise<ReadinessReport>;
  close(): Promise<void>;
}

const pingTimeoutMs = 2_000;

/**
 * Readiness of the scheduler / API: Postgres answers with the current migrations applied, Redis
 * answers a queue command (a key read of the sync queue: a node that answers PING but redirects
 * or refuses key commands is not ready), every `extra` check passes (a scheduler's enqueues),
 * and the process is not shutting down. Never throws.
 */
export function createReadinessProbe(deps: {
  db: Db;
  connection: RedisConnection;
  prefix?: string | undefined;
  extra?: Readonly<Record<string, () => ReadinessCheck>> | undefined;
  stopping?: () => boolean;
}): ReadinessProbe {
  const metaKey = `${deps.prefix ?? DEFAULT_QUEUE_PREFIX}:${queueLayoutOf(deps.connection).sync[0] ?? ''}:meta`;
  const options = { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true } as const;
  const redis = openRedis(deps.connection, 'client', { extra: options });
  let connecting: Promise<void> | undefined;
  return {
    async check() {
      const ping = async (): Promise<ReadinessCheck> => {
        if (redis.status === 'wait' || redis.status === 'end') {
          connecting ??= redis.connect().finally(() => (connecting = undefined));
          await connecting;
        }
        await redis.exists(metaKey);
        return { ok: true };
      };
      const [database, redisCheck] = await Promise.all([
        checkDatabaseReady(deps.db).then((r): ReadinessCheck => (r.ok ? { ok: true } : { ok: false, detail: r.reason })),
        Promise.race([
          ping(),
          new Promise<ReadinessCheck>((resolve) => setTimeout(() => resolve({ ok: false, detail: 'redis did not answer a queue command within 2 s' }), pingTimeoutMs).unref()),
        ]).catch((error: unknown): ReadinessCheck => ({ ok: false, detail: `redis unusable: ${redisErrorSummary(error)}` })),
      ]);
      const checks: Record<string, ReadinessCheck> = { database, redis: redisCheck };
      for (const [name, check] of Object.entries(deps.extra ?? {})) checks[name] = check();
      if (deps.stopping?.()) checks['process'] = { ok: false, detail: 'shutting down' };
      return { ready: Object.values(checks).every((c) => c.ok), checks };
    },
    async close() {
      if (redis.status !== 'end' && redis.status !== 'wait') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    },
  };
}

/** The kind of a Redis failure, without addresses: the reply's first word or the error's name. */
export function redisErrorSummary(error: unknown): string {
  if (!(error instanceof Error)) return 'error';
  const word = /^[A-Z]{3,}\b/.exec(error.message)?.[0];
  return word ?? (error.message.includes('enableOfflineQueue') || error.message.includes('Connection is closed') ? 'not connected' : error.name);
}
