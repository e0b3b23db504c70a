import { checkDatabaseReady, type Db } from '@dirsync/db';
import type { RedisConnection } from '@dirsync/jobs';
import { openRedis } from './redis.ts';

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
 * answers, and the process is not shutting down. Never throws.
 */
export function createReadinessProbe(deps: { db: Db; connection: RedisConnection; stopping?: () => boolean }): ReadinessProbe {
  const options = { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true } as const;
  const redis = openRedis(deps.connection, options);
  let connecting: Promise<void> | undefined;
  return {
    async check() {
      const ping = async (): Promise<ReadinessCheck> => {
        if (redis.status === 'wait' || redis.status === 'end') {
          connecting ??= redis.connect().finally(() => (connecting = undefined));
          await connecting;
        }
        await redis.ping();
        return { ok: true };
      };
      const [database, redisCheck] = await Promise.all([
        checkDatabaseReady(deps.db).then((r): ReadinessCheck => (r.ok ? { ok: true } : { ok: false, detail: r.reason })),
        Promise.race([
          ping(),
          new Promise<ReadinessCheck>((resolve) => setTimeout(() => resolve({ ok: false, detail: 'redis did not answer PING within 2 s' }), pingTimeoutMs).unref()),
        ]).catch((): ReadinessCheck => ({ ok: false, detail: 'redis unreachable' })),
      ]);
      const checks: Record<string, ReadinessCheck> = { database, redis: redisCheck };
      if (deps.stopping?.()) checks['process'] = { ok: false, detail: 'shutting down' };
      return { ready: Object.values(checks).every((c) => c.ok), checks };
    },
    async close() {
      if (redis.status !== 'end' && redis.status !== 'wait') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    },
  };
}
