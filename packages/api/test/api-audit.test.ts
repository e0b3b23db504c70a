import { auditPageSchema, type AuditEventEntry } from '@dirsync/contracts';
import { createIntegration, recordAudit } from '@dirsync/db';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

// GET /v1/audit: an account's own events (and only its own), filtered and paged.

let api: ApiHarness;
let accountA: string;
let accountB: string;
let adminA: string;
let adminB: string;
let integrationA: string;
let integrationB: string;

beforeAll(async () => {
  api = await startApiHarness('api_audit');
  accountA = await api.account('alpha');
  accountB = await api.account('beta');
  adminA = await api.key(accountA, ['admin'], 'alpha-admin');
  adminB = await api.key(accountB, ['admin'], 'beta-admin');
  integrationA = (await createIntegration(api.db, { accountId: accountA, kind: 'ldap', name: 'audit-a', settings: ldapSettings() })).id;
  integrationB = (await createIntegration(api.db, { accountId: accountB, kind: 'ldap', name: 'audit-b', settings: ldapSettings() })).id;
});

afterAll(async () => {
  await api?.close();
});

async function get(path: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await api.request('GET', path, { token });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function events(query: string, token = adminA): Promise<AuditEventEntry[]> {
  const { status, body } = await get(`/v1/audit${query}`, token);
  expect({ status, body }).toMatchObject({ status: 200 });
  return auditPageSchema.parse(body).items;
}

test('an account reads its own events, newest first, including those recorded for its integrations only; never another account’s', async () => {
  await recordAudit(api.db, { accountId: accountA, integrationId: integrationA, actor: 'api-key:ops (1)', action: 'integration.updated', details: { fields: ['schedule'] } });
  await recordAudit(api.db, { integrationId: integrationA, actor: 'worker:w1', action: 'connector.credential.rotated' });
  await recordAudit(api.db, { accountId: accountB, integrationId: integrationB, actor: 'api-key:beta (2)', action: 'integration.updated' });
  await recordAudit(api.db, { integrationId: integrationB, actor: 'worker:w2', action: 'connector.credential.rotated' });
  // Platform events (no account, no integration) belong to no account.
  await recordAudit(api.db, { actor: 'cli', action: 'entra.migration_deadline.set', details: { deadline: null } });

  const seenA = await events('');
  expect(seenA.map((e) => [e.action, e.actor])).toEqual([
    ['connector.credential.rotated', 'worker:w1'],
    ['integration.updated', 'api-key:ops (1)'],
  ]);
  expect(seenA[1]).toMatchObject({ integrationId: integrationA, details: { fields: ['schedule'] } });
  expect(seenA.every((e) => e.integrationId === integrationA)).toBe(true);

  const seenB = await events('', adminB);
  expect(seenB.map((e) => e.actor)).toEqual(['worker:w2', 'api-key:beta (2)']);
  // Asking for the other account's integration finds nothing rather than its events.
  expect(await events(`?integrationId=${integrationB}`)).toEqual([]);
});

test('filters: action (exact or prefix), actor (contains, any case), integration, since/until', async () => {
  await recordAudit(api.db, { accountId: accountA, actor: 'console:ann@example.com (session 1)', action: 'webhook.created', details: { webhookId: 'w' } });
  await recordAudit(api.db, { accountId: accountA, actor: 'console:ann@example.com (session 1)', action: 'webhook.deleted', details: { webhookId: 'w' } });
  expect((await events('?action=webhook.created')).map((e) => e.action)).toEqual(['webhook.created']);
  expect((await events('?action=webhook.*')).map((e) => e.action)).toEqual(['webhook.deleted', 'webhook.created']);
  // `_` is a literal, not a LIKE wildcard.
  expect(await events('?action=webhook_created')).toEqual([]);
  expect((await events('?actor=ANN@EXAMPLE')).length).toBe(2);
  expect((await events(`?integrationId=${integrationA}`)).map((e) => e.action)).toEqual(['connector.credential.rotated', 'integration.updated']);

  const all = await events('');
  const newest = all[0]!;
  const oldest = all.at(-1)!;
  expect((await events(`?since=${encodeURIComponent(newest.occurredAt)}`)).map((e) => e.id)).toEqual([newest.id]);
  expect((await events(`?until=${encodeURIComponent(newest.occurredAt)}`)).map((e) => e.id)).toEqual(all.slice(1).map((e) => e.id));
  expect((await events(`?until=${encodeURIComponent(oldest.occurredAt)}`))).toEqual([]);
});

test('pages with nextCursor until null, each event once', async () => {
  for (let i = 0; i < 5; i++) await recordAudit(api.db, { accountId: accountA, actor: 'paging', action: 'run.approved', details: { i } });
  const seen: unknown[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const { status, body } = await get(`/v1/audit?actor=paging&limit=2${cursor === null ? '' : `&cursor=${cursor}`}`, adminA);
    expect(status).toBe(200);
    const page = auditPageSchema.parse(body);
    seen.push(...page.items.map((e) => e.details['i']));
    cursor = page.nextCursor;
    pages++;
  } while (cursor !== null && pages < 10);
  expect(seen).toEqual([4, 3, 2, 1, 0]);
  expect(pages).toBe(3);
});

test('needs the admin scope; bad filters and cursors are 400 problems', async () => {
  const readOnly = await api.key(accountA, ['read', 'sync']);
  const refused = await get('/v1/audit', readOnly);
  expect(refused).toMatchObject({ status: 403, body: { type: '/v1/problems/insufficient-scope', requiredScope: 'admin' } });
  expect((await get('/v1/audit', '')).status).toBe(401);
  expect((await get('/v1/audit?since=yesterday', adminA)).status).toBe(400);
  expect((await get('/v1/audit?action=DROP%20TABLE', adminA)).status).toBe(400);
  expect((await get('/v1/audit?integrationId=nope', adminA)).status).toBe(400);
  const garbled = await get('/v1/audit?cursor=bm9wZQ', adminA);
  expect(garbled.status).toBe(400);
  expect(String(garbled.body['type'])).toMatch(/^\/v1\/problems\//);
});

test('the route is in the OpenAPI document', async () => {
  const response = await api.request('GET', '/v1/openapi.json');
  const document = (await response.json()) as { paths: Record<string, Record<string, { operationId?: string }>> };
  expect(document.paths['/v1/audit']?.['get']?.operationId).toBe('listAudit');
});
