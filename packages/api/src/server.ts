import type { AddressInfo, Socket } from 'node:net';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type ConnectionError, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Db, KeyRing } from '@dirsync/db';
import {
  createControlClient,
  createEnqueueClient,
  createRepeatedErrorLog,
  createWebhookEnqueueClient,
  DEFAULT_QUEUE_PREFIX,
  failFastRedisOptions,
  type LeaderLeaseTiming,
  type RedisConnection,
} from '@dirsync/jobs';
import { createReadinessProbe, type ReadinessCheck, type ReadinessReport } from './ops/readiness.ts';
import { createServiceMetrics, type ServiceMetrics } from './ops/metrics.ts';
import { openRedis } from './ops/redis.ts';
import { authenticate, callerOf } from './auth.ts';
import { type ApiConsoleOptions, prepareConsole, registerConsole, registerConsoleAuth } from './console/index.ts';
import type { ApiApp, ApiDeps, ConnectorTooling, SettingsValidator, SyncRequester } from './context.ts';
import { problemIndexPage, problemTypePage, problemTypes } from './problem-types.ts';
import { ProblemError, sendProblem } from './problems.ts';
import { registerActionRoutes } from './routes/actions.ts';
import { registerAuditRoutes } from './routes/audit.ts';
import { registerChangeRoutes } from './routes/changes.ts';
import { registerConnectorRoutes, registerConsentCallback } from './routes/connectors.ts';
import { registerDashboard } from './routes/dashboard.ts';
import { registerDirectoryRoutes } from './routes/directory.ts';
import { registerIntegrationRoutes } from './routes/integrations.ts';
import { registerPreviewRoute } from './routes/preview.ts';
import { registerRunRoutes } from './routes/runs.ts';
import { registerWebhookRoutes } from './routes/webhooks.ts';

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
  /** How a sync is asked for: the scheduler package's `requestSync`, passed in by the CLI. */
  readonly requestSync: SyncRequester;
  /**
   * What `POST /v1/connectors` needs from the providers (certificate generator, cloud hosts),
   * passed in by the CLI; without it that route answers 503.
   */
  readonly connectorTooling?: ConnectorTooling | undefined;
  /**
   * The scheduler's jitter cap, so that integrations' `nextSyncs` are the due times the
   * scheduler uses (default the scheduler's default, one hour; 0: no jitter).
   */
  readonly scheduleJitterMaxMs?: number | undefined;
  /** How long Test Connection waits for a worker (default 30 s). */
  readonly controlTimeoutMs?: number | undefined;
  /** Longest a sync request's `wait` is honoured (default 300 s, the most the API accepts). */
  readonly syncWaitLimitMs?: number | undefined;
  /** Webhook endpoints may be `http:` URLs (`DIRSYNC_WEBHOOK_ALLOW_HTTP`; default false: https only). */
  readonly webhookAllowHttp?: boolean | undefined;
  /** Requests per key per window (default 600 per minute). */
  readonly rateLimit?: { readonly max: number; readonly timeWindowMs: number } | undefined;
  /**
   * Requests per client address per window on the routes that need no key: `/healthz`,
   * `/readyz`, the docs, the OpenAPI document and the consent callback (default 300 per minute).
   */
  readonly publicRateLimit?: { readonly max: number; readonly timeWindowMs: number } | undefined;
  /**
   * False serves only `/healthz` and `/readyz` (a scheduler with the API turned off still
   * answers its probes). Default true.
   */
  readonly serveApi?: boolean | undefined;
  /**
   * What the per-key and per-address rate limiters do while Redis cannot be reached: `closed`
   * (default) answers 503 with Retry-After, `open` lets requests through unlimited. The probes
   * and the docs are never refused for it.
   */
  readonly rateLimitOnRedisDown?: 'open' | 'closed' | undefined;
  /**
   * More readiness checks of the process serving this API (a scheduler's enqueues), reported
   * beside the database and the queue.
   */
  readonly readinessChecks?: Readonly<Record<string, () => ReadinessCheck>> | undefined;
  /** Metrics to serve on the metrics port instead of the installation-wide ones made here. */
  readonly metrics?: ServiceMetrics | undefined;
  /**
   * Whether this process's metrics include the installation-wide series: `'leader'` while it
   * holds the installation's metrics lease (every process given `'leader'` competes for it, one
   * at a time exports), `true` always (default), `false` never. They come from PostgreSQL and
   * Redis, the same from every process: one exporter is enough.
   */
  readonly installationMetrics?: boolean | 'leader' | undefined;
  /** Timing of that lease (default 30 s, renewed every 10 s): tests shorten it. */
  readonly installationMetricsLease?: Partial<LeaderLeaseTiming> | undefined;
  /**
   * Serves the administration console under `/console` (its files, sign-in routes) and lets
   * `/v1` accept its session cookie. Absent: no console, and `/v1` takes API keys only.
   */
  readonly console?: ApiConsoleOptions | undefined;
}

/** The policy of every answer that brings none of its own: never framed, by any site. */
const frameAncestorsNone = "frame-ancestors 'none'";

/** Forbids framing an answer; a policy the answer brings keeps its other directives. */
function denyFraming(reply: FastifyReply): void {
  void reply.header('x-frame-options', 'DENY');
  const policy = reply.getHeader('content-security-policy');
  if (policy === undefined) void reply.header('content-security-policy', frameAncestorsNone);
  else if (typeof policy === 'string' && !/(^|;)\s*frame-ancestors\s/i.test(policy)) void reply.header('content-security-policy', `${policy}; ${frameAncestorsNone}`);
}

/** One route the server answers, as registered (`/v1/integrations/:id`). */
export interface ApiRoute {
  readonly method: string;
  readonly url: string;
}

/** A running API server. */
export interface ApiServer {
  readonly app: FastifyInstance;
  /**
   * Every route registered, API, probes, docs and dashboard alike: what a test must cover
   * (the OpenAPI document lists only the documented ones).
   */
  readonly routes: readonly ApiRoute[];
  /** Starts listening; returns the port (useful with port 0). */
  listen(port: number, host?: string): Promise<number>;
  /**
   * What the process's internal operations port serves for this server: its metrics (they name
   * accounts and integrations, so the public port never serves them) and its readiness.
   */
  readonly ops: { readonly registry: Registry; readiness(): Promise<ReadinessReport> };
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
 * The request as logged: method and path, never the query string, whose values can be
 * credentials (the consent callback's `code` and `state`, a `key=` someone put in a URL).
 */
function requestSummary(request: FastifyRequest): Record<string, unknown> {
  return { method: request.method, path: (request.url ?? '').split('?')[0], remoteAddress: request.ip };
}

/** Where `value` holds a NUL character (dotted path, `` for the value itself), or undefined. */
function nulPath(value: unknown, path = '', depth = 0): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  // Deeper than any body the API accepts: its schema refuses it anyway.
  if (value === null || typeof value !== 'object' || depth > 64) return undefined;
  for (const [key, item] of Object.entries(value)) {
    const itemPath = Array.isArray(value) ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;
    if (key.includes('\u0000')) return itemPath;
    const found = nulPath(item, itemPath, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * A request Node's HTTP parser refused (head over its size limit, broken syntax): answered as
 * problem+json, then the connection is closed. After a HEAD no body may follow the head, or the
 * client would read it as the start of the next answer.
 */
function answerMalformedRequest(error: ConnectionError, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, title, detail] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'the request line and headers exceed the size limit']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'the request was not received in time']
        : [400, 'Bad Request', 'the request is not valid HTTP'];
  const body = JSON.stringify({ type: `/v1/problems/${status === 431 ? 'request-too-large' : 'invalid-request'}`, title, status, detail });
  // Typed as a JSON form, given as the Buffer of what was read.
  const raw: unknown = error.rawPacket;
  const head = Buffer.isBuffer(raw) && raw.subarray(0, 5).toString('latin1') === 'HEAD ';
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\nConnection: close\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${head ? '' : body}`,
  );
}

interface DocumentedBody {
  required?: boolean;
  content?: Record<string, { schema?: { anyOf?: unknown[] } }>;
}

/**
 * Documents a body that may be left out (its schema `.nullish()`: fastify hands the validator
 * `null` when none is sent) as optional, with the object it is when sent. The schema generator
 * writes it as required, `anyOf` the object or `null`, so a client generated from the document
 * would have to send one (`POST …/enable`).
 */
function optionalBodies<T>(document: T): T {
  const paths = (document as { paths?: Record<string, Record<string, { requestBody?: DocumentedBody }>> }).paths ?? {};
  for (const operations of Object.values(paths)) {
    for (const operation of Object.values(operations)) {
      const body = operation.requestBody;
      const json = body?.content?.['application/json'];
      const alternatives = json?.schema?.anyOf;
      if (body === undefined || json === undefined || alternatives === undefined) continue;
      const sent = alternatives.filter((schema) => (schema as { type?: unknown } | null)?.type !== 'null');
      if (sent.length !== 1 || alternatives.length !== 2) continue;
      json.schema = sent[0] as { anyOf?: unknown[] };
      body.required = false;
    }
  }
  return document;
}

/**
 * Builds the HTTP server of `dirsync api` (and of `dirsync scheduler` unless disabled): the
 * versioned API under `/v1` (OpenAPI at `/v1/openapi.json`, docs at `/docs`), the queue dashboard
 * at `/admin/queues`, and `/healthz`, `/readyz`; `/metrics` only through {@link ApiServer.ops},
 * which the process serves on its internal operations port.
 */
export async function createApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const prefix = options.prefix ?? DEFAULT_QUEUE_PREFIX;
  const logger = options.logger.child({}, { redact: { paths: redactPaths, censor: '[redacted]' }, serializers: { req: requestSummary } });
  // Every connection reports each failed reconnect while Redis is down: one line per distinct
  // error, then a summary per interval.
  const redisErrors = createRepeatedErrorLog({ logger, level: 'warn' });
  const onRedisError = (error: Error) => redisErrors.report('redis connection error', error);
  let stopping = false;

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Request ids in logs and answers; the header lets a caller's own id carry through.
    requestIdHeader: 'x-request-id',
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    bodyLimit: 1024 * 1024,
    // Malformed percent-encoding and over-long path parameters are refused by the router
    // before any route: answered as problem+json like every other client error.
    frameworkErrors: (error, request, reply) => {
      // Answered before any route, so without the onSend hooks.
      denyFraming(reply);
      void sendProblem(error, request, reply, logger);
    },
    clientErrorHandler: answerMalformedRequest,
  }).withTypeProvider<ZodTypeProvider>();
  const routes: ApiRoute[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url });
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('caller', null);
  app.setErrorHandler((error, request, reply) => sendProblem(error, request, reply, logger));
  // PostgreSQL text cannot hold U+0000, and no identifier, name or setting needs it: refused for
  // every route at once, before validation, wherever it hides (keys included).
  app.addHook('preValidation', async (request) => {
    for (const [part, value] of [['params', request.params], ['querystring', request.query], ['body', request.body]] as const) {
      const path = nulPath(value);
      if (path !== undefined) {
        throw new ProblemError(400, 'invalid-request', `invalid ${part}: NUL characters are not accepted`, { extensions: { errors: [{ in: part, path, message: 'contains a NUL character' }] } });
      }
    }
  });
  // The docs, the queue dashboard and the consent callback share the console's origin: no page of
  // another site may frame any answer of this server and have it clicked through. A policy of the
  // answer's own keeps its other directives.
  app.addHook('onSend', async (_request, reply, payload) => {
    denyFraming(reply);
    return payload;
  });
  // Checked before anything listens: a wrong console URL or an insecure issuer stops the start.
  const consoleSetup = options.console && options.serveApi !== false ? prepareConsole(options.console) : undefined;
  // The cookie parser must come before every route that reads the session.
  if (consoleSetup) await registerConsole(app, consoleSetup);
  app.setNotFoundHandler((request, reply) => sendProblem(new ProblemError(404, 'not-found', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`), request, reply, logger));

  const metrics =
    options.metrics ??
    createServiceMetrics({
      db: options.db,
      connection: options.connection,
      prefix,
      onError: onRedisError,
      installationWide: options.installationMetrics ?? true,
      leaderLease: options.installationMetricsLease,
      onLeaderChange: (leader, state) =>
        logger.info({ installationMetrics: state.status, detail: state.detail }, leader ? 'installation-wide metrics exported by this process now' : 'installation-wide metrics no longer exported by this process'),
    });
  // Whether the series are exported here is reported, never a reason to be unready: a process
  // that is not the exporter serves everything else as well (Redis's own check says when it is down).
  const installationCheck = (): ReadinessCheck => {
    const state = metrics.leaderState();
    if (state === undefined) return { ok: true };
    const where = state.status === 'leader' ? 'exported by this process' : state.status === 'follower' ? 'exported by another process' : 'not exported by this process';
    return { ok: true, detail: `installation-wide metrics ${where}: ${state.detail}` };
  };
  const readiness = createReadinessProbe({
    db: options.db,
    connection: options.connection,
    prefix,
    stopping: () => stopping,
    extra: {
      ...options.readinessChecks,
      ...(metrics.leaderState() === undefined ? {} : { installationMetrics: installationCheck }),
    },
  });
  const closers: Array<() => Promise<void>> = [() => readiness.close()];
  if (!options.metrics) closers.push(() => metrics.close());
  // The first answer of the lease (bounded by the fail-fast connection's timeouts): a scrape right
  // after the start then has the series if this process exports them.
  await metrics.ready;
  // Fails at once while Redis is down, so a request never waits for a reconnect here.
  const limiterRedis = openRedis(options.connection, { ...failFastRedisOptions }, onRedisError);
  const failClosed = options.rateLimitOnRedisDown !== 'open';
  closers.push(async () => {
    await limiterRedis.quit().catch(() => limiterRedis.disconnect());
  });
  const serveApi = options.serveApi !== false;

  /** Routes that need no key, limited per client address (Redis-backed, shared by every replica). */
  const publicRoutes = (deps: ApiDeps | undefined) => async (pub: ApiApp) => {
    await pub.register(rateLimit, {
      global: true,
      max: options.publicRateLimit?.max ?? 300,
      timeWindow: options.publicRateLimit?.timeWindowMs ?? 60_000,
      redis: limiterRedis,
      nameSpace: `${prefix}:public-rate:`,
      // Probes must keep answering when Redis is down (readiness reports it).
      skipOnError: true,
      keyGenerator: (request) => request.ip,
      errorResponseBuilder: (_request, context) =>
        new ProblemError(429, 'rate-limited', `this address made more than ${context.max} requests in the current window: retry in ${context.after}`),
    });
    pub.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
    pub.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
      const report = await readiness.check();
      return reply.code(report.ready ? 200 : 503).send(report);
    });
    if (deps) {
      await pub.register(swaggerUi, { routePrefix: '/docs', uiConfig: { url: '/v1/openapi.json' } });
      pub.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
      // The `type` of every problem answer resolves here, on any deployment (it is relative).
      pub.get('/v1/problems', { schema: { hide: true } }, async (_request, reply) => reply.type('text/html; charset=utf-8').send(problemIndexPage()));
      pub.get('/v1/problems/:code', { schema: { hide: true } }, async (request, reply) => {
        const code = (request.params as { code?: string }).code ?? '';
        const type = Object.hasOwn(problemTypes, code) ? problemTypes[code] : undefined;
        if (type === undefined) throw new ProblemError(404, 'not-found', 'no such problem type: the list is at /v1/problems');
        return reply.type('text/html; charset=utf-8').send(problemTypePage(code, type));
      });
      // The customer's administrator's browser lands here, without a key.
      registerConsentCallback(pub, deps);
      if (consoleSetup) registerConsoleAuth(pub, consoleSetup, { db: options.db, logger });
    }
  };

  if (!serveApi) await app.register(publicRoutes(undefined));
  if (serveApi) {
    const enqueue = createEnqueueClient({ connection: options.connection, prefix, onError: onRedisError, failFast: true });
    const control = createControlClient({ connection: options.connection, prefix, onError: onRedisError, failFast: true });
    const webhookEnqueue = createWebhookEnqueueClient({ connection: options.connection, prefix, purpose: 'request', onError: onRedisError });
    closers.push(
      () => enqueue.close(),
      () => control.close(),
      () => webhookEnqueue.close(),
    );
    const deps: ApiDeps = {
      db: options.db,
      logger,
      enqueue,
      control,
      keyRing: options.keyRing,
      validateSettings: options.validateSettings,
      requestSync: options.requestSync,
      connectorTooling: options.connectorTooling,
      scheduleJitterMaxMs: options.scheduleJitterMaxMs,
      controlTimeoutMs: options.controlTimeoutMs ?? 30_000,
      syncWaitLimitMs: options.syncWaitLimitMs ?? 300_000,
      webhooks: { enqueue: webhookEnqueue, allowHttp: options.webhookAllowHttp ?? false },
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
            'RFC 9457 problem details (`application/problem+json`). The administration console at /console calls the same routes ' +
            'with its session cookie instead, naming the account in `X-Dirsync-Account` and sending `X-CSRF-Token` on every change.',
        },
        components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'an API key: dsk_…' } } },
      },
      transform: jsonSchemaTransform,
      transformObject: (document) => ('openapiObject' in document ? optionalBodies(document.openapiObject) : document.swaggerObject),
    });
    await app.register(publicRoutes(deps));

    await app.register(
      async (v1) => {
        // Requests without a valid key have no key to be limited by: their failures are counted
        // per client address, and past the public limit the address is refused before any
        // database lookup (a Redis outage lets them through, as the other limiters do).
        const failedAuthMax = options.publicRateLimit?.max ?? 300;
        const failedAuthWindowMs = options.publicRateLimit?.timeWindowMs ?? 60_000;
        const failedAuthKey = (ip: string) => `${prefix}:auth-failures:${ip}`;
        v1.addHook('onRequest', async (request) => {
          const failures = Number(
            await limiterRedis.get(failedAuthKey(request.ip)).catch((error: unknown) => {
              if (failClosed) throw error;
              return null;
            }),
          );
          if (failures >= failedAuthMax) {
            const ttl = await limiterRedis.pttl(failedAuthKey(request.ip)).catch(() => failedAuthWindowMs);
            const seconds = Math.max(1, Math.ceil((ttl > 0 ? ttl : failedAuthWindowMs) / 1000));
            throw new ProblemError(429, 'rate-limited', `this address sent more than ${failedAuthMax} requests without a valid key in the current window: retry in ${seconds} seconds`, {
              headers: { 'retry-after': String(seconds) },
            });
          }
          try {
            request.caller = await authenticate(options.db, request, 'bearer', consoleSetup?.settings);
          } catch (error) {
            if (error instanceof ProblemError && error.statusCode === 401) {
              await limiterRedis
                .multi()
                .incr(failedAuthKey(request.ip))
                .pexpire(failedAuthKey(request.ip), failedAuthWindowMs, 'NX')
                .exec()
                .catch(() => undefined);
            }
            throw error;
          }
        });
        if (consoleSetup) {
          // A browser would otherwise keep an account's data in its cache past sign-out (shared computers).
          v1.addHook('onSend', async (request, reply, payload) => {
            if (request.headers.authorization === undefined && request.headers.cookie !== undefined) void reply.header('cache-control', 'no-store');
            return payload;
          });
        }
        // Runs after authentication, so the limit is per key, not per address.
        await v1.register(rateLimit, {
          global: true,
          hook: 'preHandler',
          max: options.rateLimit?.max ?? 600,
          timeWindow: options.rateLimit?.timeWindowMs ?? 60_000,
          redis: limiterRedis,
          nameSpace: `${prefix}:api-rate:`,
          skipOnError: !failClosed,
          keyGenerator: (request) => callerOf(request).rateLimitKey,
          errorResponseBuilder: (request, context) =>
            new ProblemError(429, 'rate-limited', `this ${request.caller?.session ? 'console session' : 'key'} made more than ${context.max} requests in the current window: retry in ${context.after}`),
        });
        v1.addHook('preHandler', async (request) => {
          // Integration and run ids in every log line of the request.
          const id = (request.params as { id?: unknown } | undefined)?.id;
          const route = request.routeOptions.url ?? '';
          if (typeof id === 'string') {
            const field = route.startsWith('/v1/runs/') ? 'runId' : route.startsWith('/v1/connectors/') ? 'connectorId' : route.startsWith('/v1/webhooks/') ? 'webhookId' : 'integrationId';
            request.log = request.log.child({ [field]: id });
          }
        });
        registerIntegrationRoutes(v1, deps);
        registerPreviewRoute(v1, deps);
        registerRunRoutes(v1, deps);
        registerDirectoryRoutes(v1, deps);
        registerChangeRoutes(v1, deps);
        registerAuditRoutes(v1, deps);
        registerActionRoutes(v1, deps);
        registerConnectorRoutes(v1, deps);
        registerWebhookRoutes(v1, deps);
      },
      { prefix: '/v1' },
    );
    closers.push(await registerDashboard(app, { db: options.db, connection: options.connection, prefix, logger }));
  }

  let closing: Promise<void> | undefined;
  return {
    app,
    routes,
    async listen(port, host = '0.0.0.0') {
      await app.listen({ port, host });
      return (app.server.address() as AddressInfo).port;
    },
    ops: { registry: metrics.registry, readiness: () => readiness.check() },
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
