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

/**
 * Readiness of a worker: Postgres answers with the current migrations applied, the worker's own
 * queue connection answers a queue command and its queue workers are not backing off after
 * errors (`queue`, e.g. `DirsyncWorker.queueState`), and the process is not shutting down. A
 * Redis that answers PING but fails queue commands is not ready. Never throws.
 */
export function createReadinessProbe(deps: { db: Db; queue: () => Promise<ReadinessCheck>; stopping?: () => boolean }): () => Promise<ReadinessReport> {
  return async () => {
    const [database, queue] = await Promise.all([
      checkDatabaseReady(deps.db).then((r): ReadinessCheck => (r.ok ? { ok: true } : { ok: false, detail: r.reason })),
      deps.queue().catch((): ReadinessCheck => ({ ok: false, detail: 'queue check failed' })),
    ]);
    const checks: Record<string, ReadinessCheck> = { database, redis: queue };
    if (deps.stopping?.()) checks['process'] = { ok: false, detail: 'shutting down' };
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  };
}
