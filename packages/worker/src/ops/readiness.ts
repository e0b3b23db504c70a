import type { Redis } from 'ioredis';
import { checkDatabaseReady, type Db } from '@dirsync/db';

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

const pingTimeoutMs = 2_000;

/**
 * Readiness of a worker: Postgres answers with the current migrations applied, Redis answers,
 * and the process is not shutting down. Never throws.
 */
export function createReadinessProbe(deps: { db: Db; redis: Redis; stopping?: () => boolean }): () => Promise<ReadinessReport> {
  return async () => {
    const [database, redis] = await Promise.all([
      checkDatabaseReady(deps.db).then((r): ReadinessCheck => (r.ok ? { ok: true } : { ok: false, detail: r.reason })),
      Promise.race([
        deps.redis.ping().then((): ReadinessCheck => ({ ok: true })),
        new Promise<ReadinessCheck>((resolve) => setTimeout(() => resolve({ ok: false, detail: 'redis did not answer PING within 2 s' }), pingTimeoutMs).unref()),
      ]).catch((): ReadinessCheck => ({ ok: false, detail: 'redis unreachable' })),
    ]);
    const checks: Record<string, ReadinessCheck> = { database, redis };
    if (deps.stopping?.()) checks['process'] = { ok: false, detail: 'shutting down' };
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  };
}
