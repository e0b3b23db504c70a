import type { AddressInfo } from 'node:net';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Db, KeyRing } from '@dirsync/db';
import { createControlClient, createEnqueueClient, DEFAULT_QUEUE_PREFIX, type RedisConnection } from '@dirsync/jobs';
import { createReadinessProbe } from '../ops/readiness.ts';
import { createServiceMetrics, type ServiceMetrics } from '../ops/metrics.ts';
import { openRedis } from '../ops/redis.ts';
import { authenticate, callerOf } from './auth.ts';
import type { ApiDeps, SettingsValidator } from './context.ts';
import { ProblemError, sendProblem } from './problems.ts';
import { registerActionRoutes } from './routes/actions.ts';
import { registerConnectorRoutes, registerConsentCallback } from './routes/connectors.ts';
import { registerDashboard } from './routes/dashboard.ts';
import { registerDirectoryRoutes } from './routes/directory.ts';
import { registerIntegrationRoutes } from './routes/integrations.ts';
import { registerRunRoutes } from './routes/runs.ts';

/** Options of {@link createApiServer}. */
export interface ApiServerOptions {
  readonly db: Db;
  /** Redis of the queues (and of the rate limiter). */
  readonly connection: RedisConnection;
  /** BullMQ key prefix; must match the workers'. */
  readonly prefix?: string | undefined;
  readonly logger: Logger;
  /** Needed to store secrets (PUT …/secret, secrets in POST /v1/integrations). */
  readonly keyRing?: KeyRing | undefined;
  /** Settings check per kind: the providers' `validateSettings`, passed in by the CLI. */
  readonly validateSettings: SettingsValidator;
  /** How long Test Connection waits for a worker (default 30 s). */
  readonly controlTimeoutMs?: number | undefined;
  /** Requests per key per window (default 600 per minute). */
  readonly rateLimit?: { readonly max: number; readonly timeWindowMs: number } | undefined;
  /**
   * False serves only `/healthz`, `/readyz` and `/metrics` (a scheduler with the API turned
   * off still answers its probes). Default true.
   */
  readonly serveApi?: boolean | undefined;
  /** Extra metrics to serve (the scheduler's own), added to the installation-wide ones. */
  readonly metrics?: ServiceMetrics | undefined;
}

/** A running API server. */
export interface ApiServer {
  readonly app: FastifyInstance;
  /** Starts listening; returns the port (useful with port 0). */
  listen(port: number, host?: string): Promise<number>;
  /**
   * Graceful stop: `/readyz` turns 503, new connections are refused, requests in flight finish,
   * then every connection (Redis, queues) is closed. The database handle stays open (the caller
   * owns it). Idempotent.
   */
  close(): Promise<void>;
}

// Redaction for the API's logs: the request serializer logs no headers or bodies, but an object
// logged by mistake must not carry a key or a password either.
const redactPaths = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  '*.authorization',
  'password',
  'secret',
  'token',
  '*.password',
  '*.secret',
  '*.token',
  'body.secret',
];

/**
 * Builds the HTTP server of `dirsync api` (and of `dirsync scheduler` unless disabled): the
 * versioned API under `/v1` (OpenAPI at `/v1/openapi.json`, docs at `/docs`), the queue dashboard
 * at `/admin/queues`, and `/healthz`, `/readyz`, `/metrics`.
 */
export async function createApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const prefix = options.prefix ?? DEFAULT_QUEUE_PREFIX;
  const logger = options.logger.child({}, { redact: { paths: redactPaths, censor: '[redacted]' } });
  const onRedisError = (error: Error) => logger.warn({ error: error.message }, 'redis connection error');
  let stopping = false;

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Request ids in logs and answers; the header lets a caller's own id carry through.
    requestIdHeader: 'x-request-id',
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    bodyLimit: 1024 * 1024,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('caller', null);
  app.setErrorHandler((error, request, reply) => sendProblem(error, request, reply, logger));
  app.setNotFoundHandler((request, reply) => sendProblem(new ProblemError(404, 'not-found', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`), request, reply, logger));

  const readiness = createReadinessProbe({ db: options.db, connection: options.connection, stopping: () => stopping });
  const metrics = options.metrics ?? createServiceMetrics({ db: options.db, connection: options.connection, prefix, onError: onRedisError });
  const closers: Array<() => Promise<void>> = [() => readiness.close()];
  if (!options.metrics) closers.push(() => metrics.close());

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    const report = await readiness.check();
    return reply.code(report.ready ? 200 : 503).send(report);
  });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );

  if (options.serveApi !== false) {
    const enqueue = createEnqueueClient({ connection: options.connection, prefix, onError: onRedisError });
    const control = createControlClient({ connection: options.connection, prefix, onError: onRedisError });
    const limiterRedis = openRedis(options.connection, { maxRetriesPerRequest: 1, connectTimeout: 2000 }, onRedisError);
    closers.push(
      () => enqueue.close(),
      () => control.close(),
      async () => {
        await limiterRedis.quit().catch(() => limiterRedis.disconnect());
      },
    );
    const deps: ApiDeps = {
      db: options.db,
      logger,
      enqueue,
      control,
      keyRing: options.keyRing,
      validateSettings: options.validateSettings,
      controlTimeoutMs: options.controlTimeoutMs ?? 30_000,
    };

    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'dirsync API',
          version: '1',
          description:
            'Directory integrations of an account, their syncs, run reports and synced data. Every route under /v1 needs an API key ' +
            '(`Authorization: Bearer dsk_…`, made with `dirsync api-keys create`) and acts only on the key\'s account. Errors are ' +
            'RFC 9457 problem details (`application/problem+json`).',
        },
        components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'an API key: dsk_…' } } },
      },
      transform: jsonSchemaTransform,
    });
    await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { url: '/v1/openapi.json' } });
    app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

    await app.register(
      async (v1) => {
        v1.addHook('onRequest', async (request) => {
          request.caller = await authenticate(options.db, request, 'bearer');
        });
        // Runs after authentication, so the limit is per key, not per address.
        await v1.register(rateLimit, {
          global: true,
          hook: 'preHandler',
          max: options.rateLimit?.max ?? 600,
          timeWindow: options.rateLimit?.timeWindowMs ?? 60_000,
          redis: limiterRedis,
          nameSpace: `${prefix}:api-rate:`,
          skipOnError: true,
          keyGenerator: (request) => callerOf(request).key.id,
          errorResponseBuilder: (_request, context) =>
            new ProblemError(429, 'rate-limited', `this key made more than ${context.max} requests in the current window: retry in ${context.after}`),
        });
        v1.addHook('preHandler', async (request) => {
          // Integration and run ids in every log line of the request.
          const id = (request.params as { id?: unknown } | undefined)?.id;
          const route = request.routeOptions.url ?? '';
          if (typeof id === 'string') {
            const field = route.startsWith('/v1/runs/') ? 'runId' : route.startsWith('/v1/connectors/') ? 'connectorId' : 'integrationId';
            request.log = request.log.child({ [field]: id });
          }
        });
        registerIntegrationRoutes(v1, deps);
        registerRunRoutes(v1, deps);
        registerDirectoryRoutes(v1, deps);
        registerActionRoutes(v1, deps);
        registerConnectorRoutes(v1, deps);
      },
      { prefix: '/v1' },
    );
    // Outside the authenticated routes: the customer's administrator's browser lands here.
    registerConsentCallback(app, deps);

    closers.push(await registerDashboard(app, { db: options.db, connection: options.connection, prefix, logger }));
  }

  let closing: Promise<void> | undefined;
  return {
    app,
    async listen(port, host = '0.0.0.0') {
      await app.listen({ port, host });
      return (app.server.address() as AddressInfo).port;
    },
    close() {
      closing ??= (async () => {
        stopping = true;
        // A connection whose request finishes during the close turns idle afterwards; without
        // closing those too, keep-alive would hold the close for its whole timeout.
        const sweep = setInterval(() => app.server.closeIdleConnections(), 100);
        try {
          await app.close();
        } finally {
          clearInterval(sweep);
        }
        await Promise.allSettled(closers.map((close) => close()));
      })();
      return closing;
    },
  };
}
