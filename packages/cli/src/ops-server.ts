import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

/** Options of {@link startOpsServer}. */
export interface OpsServerOptions {
  readonly port: number;
  /** Default all interfaces (Prometheus and the orchestrator's probes come from outside). */
  readonly host?: string;
  /** A prom-client registry (only what serving it needs). */
  readonly registry: { readonly contentType: string; metrics(): Promise<string> };
  /** `/readyz`: 200 when `ready`, else 503; the report is the body. */
  readonly readiness: () => Promise<{ readonly ready: boolean }>;
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
 * The internal operations port (`DIRSYNC_METRICS_PORT`) of every dirsync process: `/healthz` (the
 * process answers), `/readyz` (dependencies, 503 when one is missing) and `/metrics` (Prometheus
 * text). Metrics name accounts and integrations, so they are served here only, never on the
 * public API port: this port is for Prometheus and the orchestrator inside the platform's network.
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

/**
 * {@link startOpsServer} on `DIRSYNC_METRICS_PORT` (0: none) for a process whose real work matters
 * more than being scraped: a port already taken (several processes on one host) is logged, and
 * the process goes on without its operations port.
 */
export async function serveOpsPort(options: OpsServerOptions): Promise<OpsServer | undefined> {
  if (options.port <= 0) return undefined;
  return startOpsServer(options).catch((error: unknown) => {
    options.logger.error({ port: options.port, error: (error as NodeJS.ErrnoException).code ?? String(error) }, 'operations port not served: cannot listen on DIRSYNC_METRICS_PORT');
    return undefined;
  });
}
