import { clientOperations } from '@dirsync/client';
import { revokeApiKey, listApiKeys } from '@dirsync/db';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

let api: ApiHarness;
let accountId: string;

beforeAll(async () => {
  api = await startApiHarness('api_auth', { rateLimit: { max: 5, timeWindowMs: 60_000 } });
  accountId = await api.account('acme');
});

afterAll(async () => {
  await api.close();
});

async function problemOf(response: Response) {
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  return (await response.json()) as Record<string, unknown>;
}

test('a request without a key, with an unknown key or a revoked key is 401 problem+json', async () => {
  const missing = await api.request('GET', '/v1/integrations');
  expect(missing.status).toBe(401);
  expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
  expect(await problemOf(missing)).toEqual({
    type: '/v1/problems/unauthenticated',
    title: 'Unauthorized',
    status: 401,
    detail: expect.stringMatching(/API key is required/),
    instance: '/v1/integrations',
  });

  const unknown = await api.request('GET', '/v1/integrations', { token: 'dsk_0123456789abcdef_' + 'x'.repeat(43) });
  expect(unknown.status).toBe(401);
  expect((await problemOf(unknown))['detail']).toMatch(/unknown or revoked/);

  const token = await api.key(accountId, ['read'], 'to-revoke');
  expect((await api.request('GET', '/v1/integrations', { token })).status).toBe(200);
  const [key] = (await listApiKeys(api.db, { accountId })).filter((k) => k.name === 'to-revoke');
  await revokeApiKey(api.db, key!.id);
  expect((await api.request('GET', '/v1/integrations', { token })).status).toBe(401);
});

test('scopes: read cannot sync or change, sync cannot change, admin can do all', async () => {
  const admin = api.client(await api.key(accountId, ['admin']));
  const integration = await admin.createIntegration({ kind: 'ldap', name: 'scoped', settings: ldapSettings(), enabled: false });
  const read = await api.key(accountId, ['read']);
  const sync = await api.key(accountId, ['sync']);

  const denied = await api.request('POST', `/v1/integrations/${integration.id}/syncs`, { token: read, body: {} });
  expect(denied.status).toBe(403);
  expect(await problemOf(denied)).toMatchObject({ type: '/v1/problems/insufficient-scope', requiredScope: 'sync', detail: expect.stringMatching(/"sync" scope; the key has "read"/) });
  expect((await api.request('PATCH', `/v1/integrations/${integration.id}`, { token: sync, body: { description: 'x' } })).status).toBe(403);
  expect((await api.request('GET', `/v1/integrations/${integration.id}`, { token: sync })).status).toBe(403);
  // The sync key reaches the handler (409: the integration is disabled), the read key does not.
  expect((await api.request('POST', `/v1/integrations/${integration.id}/syncs`, { token: sync, body: {} })).status).toBe(409);
  expect((await admin.getIntegration(integration.id)).name).toBe('scoped');
});

test('a platform key sees no account data', async () => {
  const platform = await api.key(null, ['admin'], 'ops');
  const response = await api.request('GET', '/v1/integrations', { token: platform });
  expect(response.status).toBe(403);
  expect((await problemOf(response))['type']).toBe('/v1/problems/account-required');
});

test('each key has its own rate limit, answered with 429 problem+json and Retry-After', async () => {
  const busy = await api.key(accountId, ['read'], 'busy');
  const calm = await api.key(accountId, ['read'], 'calm');
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) statuses.push((await api.request('GET', '/v1/actions', { token: busy })).status);
  expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  const limited = await api.request('GET', '/v1/actions', { token: busy });
  expect(limited.status).toBe(429);
  expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(await problemOf(limited)).toMatchObject({ type: '/v1/problems/rate-limited', status: 429, detail: expect.stringMatching(/more than 5 requests/) });
  expect((await api.request('GET', '/v1/actions', { token: calm })).status).toBe(200);
});

test('malformed requests are 400 problems that never echo the body', async () => {
  const admin = await api.key(accountId, ['admin'], 'malformed');
  const broken = await api.request('POST', '/v1/integrations', { token: admin, body: '{"secret": "hunter2-in-broken-json"' });
  expect(broken.status).toBe(400);
  const text = await broken.text();
  expect(text).not.toContain('hunter2');

  const unknownKey = await api.request('POST', '/v1/integrations', {
    token: admin,
    body: { kind: 'ldap', name: 'x', settings: ldapSettings(), password: 'hunter2-unknown-field' },
  });
  expect(unknownKey.status).toBe(400);
  const problem = await problemOf(unknownKey);
  expect(problem).toMatchObject({ type: '/v1/problems/invalid-request', errors: [expect.objectContaining({ in: 'body' })] });
  expect(JSON.stringify(problem)).not.toContain('hunter2');

  const unknownRoute = await api.request('GET', '/v1/nothing-here', { token: admin });
  expect(unknownRoute.status).toBe(404);
  expect((await problemOf(unknownRoute))['detail']).toBe('no route GET /v1/nothing-here');
});

test('the OpenAPI document is public and every operation has a client method', async () => {
  const response = await api.request('GET', '/v1/openapi.json');
  expect(response.status).toBe(200);
  const document = (await response.json()) as { openapi: string; paths: Record<string, Record<string, { operationId?: string; security?: unknown }>> };
  expect(document.openapi).toBe('3.1.0');
  const operations = Object.values(document.paths).flatMap((methods) => Object.values(methods));
  expect(operations.map((op) => op.operationId).sort()).toEqual(Object.values(clientOperations).sort());
  expect(operations.every((op) => Array.isArray(op.security) && op.security.length === 1)).toBe(true);
  expect(Object.keys(document.paths).some((path) => path.startsWith('/admin') || path === '/metrics')).toBe(false);

  const docs = await api.request('GET', '/docs/');
  expect(docs.status).toBe(200);
  expect(await docs.text()).toMatch(/swagger-ui/i);
});

test('health and readiness answer without a key; metrics only on the internal metrics port', async () => {
  expect(await (await api.request('GET', '/healthz')).json()).toEqual({ status: 'ok' });
  const ready = await api.request('GET', '/readyz');
  expect(ready.status).toBe(200);
  expect(await ready.json()).toEqual({ ready: true, checks: { database: { ok: true }, redis: { ok: true } } });
  // The public port does not serve them, not even to a platform key.
  expect((await api.request('GET', '/metrics')).status).toBe(404);
  expect((await api.request('GET', '/metrics', { token: await api.key(null, ['admin'], 'metrics-platform') })).status).toBe(404);
  // What the process's internal operations port serves (packages/cli/src/ops-server.ts).
  const metrics = await api.server.ops.registry.metrics();
  expect(metrics).toMatch(/dirsync_queue_jobs\{queue="dirsync-sync",state="waiting"\} 0/);
  expect(metrics).toMatch(/dirsync_runs\{status="queued"\} 0/);
  expect((await api.server.ops.readiness()).ready).toBe(true);
});

test('the queue dashboard asks for a platform admin key with a Basic challenge', async () => {
  const none = await api.request('GET', '/admin/queues');
  expect(none.status).toBe(401);
  expect(none.headers.get('www-authenticate')).toMatch(/^Basic realm="dirsync queue dashboard"/);
  const platform = await api.key(null, ['admin'], 'dashboard');
  const basic = `Basic ${Buffer.from(`anyone:${platform}`).toString('base64')}`;
  const page = await api.request('GET', '/admin/queues', { headers: { authorization: basic } });
  expect(page.status).toBe(200);
  expect(await page.text()).toMatch(/<html/i);
  const queues = await api.request('GET', '/admin/queues/api/queues', { headers: { authorization: basic } });
  expect(queues.status).toBe(200);
  expect(JSON.stringify(await queues.json())).toContain('dirsync-sync');

  const accountAdmin = await api.key(accountId, ['admin'], 'account-admin');
  expect((await api.request('GET', '/admin/queues', { token: accountAdmin })).status).toBe(403);
  const platformReader = await api.key(null, ['read'], 'platform-reader');
  expect((await api.request('GET', '/admin/queues', { token: platformReader })).status).toBe(403);
});
