import net from 'node:net';
import pino from 'pino';
import { close, connect } from '@dirsync/db';
import { validateSettings } from '@dirsync/providers';
import { requestSync } from '@dirsync/scheduler';
import { startThrowawayRedis, waitFor, type ThrowawayRedis } from '@dirsync/testkit';
import { createApiServer } from '../src/index.ts';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

// The API while its Redis or its PostgreSQL is down: every request answers 503 with Retry-After
// at once, never after waiting for a reconnect, and the API recovers when the server is back.

let redis: ThrowawayRedis;
let api: ApiHarness;
let token: string;
let integrationId: string;

beforeAll(async () => {
  redis = await startThrowawayRedis();
  api = await startApiHarness('api-outage', { connection: redis.url });
  token = await api.key(await api.account('outage'), ['admin']);
  const created = await api.request('POST', '/v1/integrations', { token, body: { kind: 'ldap', name: 'Head office', settings: ldapSettings() } });
  expect(created.status).toBe(201);
  integrationId = ((await created.json()) as { id: string }).id;
}, 60_000);

afterAll(async () => {
  await api.close();
  await redis.stop();
});

/**
 * Every keyed route of the server, with its parameters filled in. The public documents (the
 * OpenAPI document, the problem-type pages) need no key and no Redis, and stay up.
 */
function keyedRoutes(): Array<{ method: string; path: string }> {
  return api.server.routes
    .filter((r) => r.url.startsWith('/v1/') && r.url !== '/v1/openapi.json' && !r.url.startsWith('/v1/problems') && !r.url.includes('consent/callback') && !['HEAD', 'OPTIONS'].includes(r.method))
    .map((r) => ({ method: r.method, path: r.url.replace(/:[A-Za-z0-9_]+/g, integrationId) }));
}

async function timed(method: string, path: string): Promise<{ status: number; retryAfter: string | null; ms: number; type: string | undefined }> {
  const started = performance.now();
  const answer = await api.request(method, path, { token, ...(['POST', 'PUT', 'PATCH'].includes(method) ? { body: {} } : {}) });
  const body = (await answer.json().catch(() => ({}))) as { type?: string };
  return { status: answer.status, retryAfter: answer.headers.get('retry-after'), ms: performance.now() - started, type: body.type };
}

test('with Redis stopped, every keyed route answers 503 with Retry-After within a second; readiness says why; it recovers', async () => {
  const routes = keyedRoutes();
  expect(routes.length).toBeGreaterThan(10);
  await redis.stop();
  const slow: string[] = [];
  for (const route of routes) {
    const answer = await timed(route.method, route.path);
    expect({ route: `${route.method} ${route.path}`, status: answer.status, type: answer.type }).toEqual({
      route: `${route.method} ${route.path}`,
      status: 503,
      type: '/v1/problems/queue-unavailable',
    });
    expect(Number(answer.retryAfter)).toBeGreaterThan(0);
    if (answer.ms >= 1_000) slow.push(`${route.method} ${route.path}: ${Math.round(answer.ms)} ms`);
  }
  expect(slow).toEqual([]);
  const ready = await api.request('GET', '/readyz');
  expect(ready.status).toBe(503);
  expect(((await ready.json()) as { checks: Record<string, { ok: boolean }> }).checks['redis']?.ok).toBe(false);
  // Liveness does not depend on Redis: the orchestrator must not restart the API for an outage.
  expect((await api.request('GET', '/healthz')).status).toBe(200);
  // The page a 503's problem type points to stays readable during the outage it explains.
  expect((await api.request('GET', '/v1/problems/queue-unavailable')).status).toBe(200);

  await redis.start();
  await waitFor(async () => (await api.request('GET', '/v1/integrations', { token })).status === 200, { what: 'the API to recover', timeoutMs: 20_000 });
  await waitFor(async () => (await api.request('GET', '/readyz')).status === 200, { what: 'readiness to recover', timeoutMs: 20_000 });
}, 120_000);

test('with the limiter failing open, reads are served from PostgreSQL while Redis is down and syncs answer 503 at once', async () => {
  const open = await startApiHarness('api-outage-open', { connection: redis.url, rateLimitOnRedisDown: 'open' });
  try {
    const key = await open.key(await open.account('open'), ['admin']);
    const created = await open.request('POST', '/v1/integrations', { token: key, body: { kind: 'ldap', name: 'Branch', settings: ldapSettings() } });
    expect(created.status).toBe(201);
    const id = ((await created.json()) as { id: string }).id;
    await redis.stop();
    expect((await open.request('GET', '/v1/integrations', { token: key })).status).toBe(200);
    const started = performance.now();
    const sync = await open.request('POST', `/v1/integrations/${id}/syncs`, { token: key, body: { mode: 'full' } });
    expect(sync.status).toBe(503);
    expect(sync.headers.get('retry-after')).not.toBeNull();
    expect(performance.now() - started).toBeLessThan(1_000);
  } finally {
    await redis.start();
    await open.close();
  }
}, 120_000);

test('with PostgreSQL unreachable, the API answers 503 with Retry-After within a second', async () => {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const deadPort = (holder.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => holder.close(() => resolve()));
  const db = connect(`postgres://postgres@127.0.0.1:${deadPort}/nothing`, { max: 2, connectTimeoutSeconds: 1 });
  const server = await createApiServer({ db, connection: redis.url, prefix: api.prefix.prefix, logger: pino({ level: 'silent' }), validateSettings, requestSync });
  try {
    const port = await server.listen(0, '127.0.0.1');
    for (const path of ['/v1/integrations', `/v1/integrations/${integrationId}`, '/v1/runs']) {
      const started = performance.now();
      const answer = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${token}` } });
      const body = (await answer.json()) as { type?: string };
      expect({ path, status: answer.status, type: body.type }).toEqual({ path, status: 503, type: '/v1/problems/database-unavailable' });
      expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(performance.now() - started).toBeLessThan(1_000);
    }
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(503);
  } finally {
    await server.close();
    await close(db);
  }
}, 60_000);

test('a failing readiness check of the serving process (a scheduler whose enqueues fail) makes /readyz 503 and names it', async () => {
  let enqueue = { ok: false, detail: 'enqueueing syncs fails: MOVED 1234 127.0.0.1:1' };
  const db = connect(api.database.url, { max: 2 });
  const server = await createApiServer({
    db,
    connection: redis.url,
    prefix: api.prefix.prefix,
    logger: pino({ level: 'silent' }),
    validateSettings,
    requestSync,
    serveApi: false,
    readinessChecks: { enqueue: () => enqueue },
  });
  try {
    const port = await server.listen(0, '127.0.0.1');
    const failing = await waitFor(async () => {
      const answer = await fetch(`http://127.0.0.1:${port}/readyz`);
      const report = (await answer.json()) as { checks: Record<string, { ok: boolean; detail?: string }> };
      // Wait for the probe's own Redis connection; then only the enqueue check fails.
      return report.checks['redis']?.ok === true ? { status: answer.status, report } : undefined;
    }, { what: 'the probe to reach Redis' });
    expect(failing.status).toBe(503);
    expect(failing.report.checks['enqueue']).toEqual(enqueue);
    enqueue = { ok: true, detail: '' };
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
  } finally {
    await server.close();
    await close(db);
  }
}, 60_000);
