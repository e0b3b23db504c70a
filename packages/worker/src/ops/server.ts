import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
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

/** Options of {@link startOpsServer}. */
export interface OpsServerOptions {
  readonly port: number;
  /** Default all interfaces (Prometheus and the orchestrator's probes come from outside). */
  readonly host?: string;
  readonly registry: Registry;
  readonly readiness: () => Promise<ReadinessReport>;
  readonly logger: Logger;
}

/** A running operations server. */
export interface OpsServer {
  /** The port it listens on (useful with port 0). */
  readonly port: number;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

/**
 * Serves `/healthz` (the process answers), `/readyz` (dependencies, 503 when one is missing) and
 * `/metrics` (Prometheus text) for a worker, which has no other HTTP server.
 */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n');
    if (path === '/healthz') return send(res, 200, 'application/json', JSON.stringify({ status: 'ok' }));
    if (path === '/readyz') {
      const report = await options.readiness();
      return send(res, report.ready ? 200 : 503, 'application/json', JSON.stringify(report));
    }
    if (path === '/metrics') return send(res, 200, options.registry.contentType, await options.registry.metrics());
    return send(res, 404, 'text/plain', 'not found\n');
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      options.logger.error({ error: error instanceof Error ? error.message : String(error) }, 'ops request failed');
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  options.logger.info({ port }, 'ops server listening (/healthz, /readyz, /metrics)');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
