import { randomUUID } from 'node:crypto';
import { createIntegration, insertObjects, type ObjectWrite } from '@dirsync/db';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

// The feed's query as an attacker writes it: cursors that are not what the feed hands out, limits
// in other notations, and another account's cursors and integrations.

let api: ApiHarness;
let readA: string;
let readB: string;
let integrationA: string;

function user(externalId: string): ObjectWrite {
  const attributes = { displayName: externalId };
  return { externalId, type: 'user', dn: `uid=${externalId},dc=x`, attributesJson: JSON.stringify(attributes), contentHash: JSON.stringify(attributes) };
}

beforeAll(async () => {
  api = await startApiHarness('api_changes_attack');
  const accountA = await api.account('alpha');
  const accountB = await api.account('beta');
  readA = await api.key(accountA, ['read']);
  readB = await api.key(accountB, ['read']);
  integrationA = (await createIntegration(api.db, { accountId: accountA, kind: 'ldap', name: 'feed-a', settings: ldapSettings() })).id;
  await insertObjects(api.db, integrationA, randomUUID(), [user('ann'), user('bob'), user('cy')]);
});

afterAll(async () => {
  await api?.close();
});

async function get(query: string, token: string): Promise<{ status: number; type: string | undefined; body: Record<string, unknown> }> {
  const response = await api.request('GET', `/v1/changes${query}`, { token });
  const body = (await response.json()) as Record<string, unknown>;
  return { status: response.status, type: response.headers.get('content-type') ?? undefined, body };
}

const badCursors = ['-1', '01', '00', '1e3', '0x10', '+1', ' 1', '1 ', '1.0', 'abc', '', '9223372036854775808', '99999999999999999999999', '１', '1%00', '%2D1', '[]'];

test.each(badCursors)('after=%j is a 400 problem, never a 500 or a page', async (cursor) => {
  const { status, type, body } = await get(`?after=${encodeURIComponent(cursor)}`, readA);
  expect(status).toBe(400);
  expect(type).toMatch(/^application\/problem\+json/);
  expect(body).not.toHaveProperty('items');
});

test('after given twice is a 400', async () => {
  const twice = await get('?after=0&after=1', readA);
  expect(twice.status).toBe(400);
});

test('the largest cursor is beyond the head: 400, not an overflow', async () => {
  const { status, body } = await get('?after=9223372036854775807', readA);
  expect(status).toBe(400);
  expect(JSON.stringify(body)).not.toContain('ann');
});

test.each(['0', '1001', '-5', '1.5', 'abc', '1e9'])('limit=%s is a 400', async (limit) => {
  expect((await get(`?limit=${limit}`, readA)).status).toBe(400);
});

test("a cursor of A's feed read with B's key is beyond B's head (400), and shows nothing of A", async () => {
  const { status, body } = await get('?after=1', readB);
  expect(status).toBe(400);
  expect(JSON.stringify(body)).not.toContain(integrationA);
  const fromStart = await get('?after=0', readB);
  expect(fromStart.status).toBe(200);
  expect(fromStart.body['items']).toEqual([]);
  const head = await api.request('GET', '/v1/changes/head', { token: readB });
  expect(await head.json()).toEqual({ cursor: '0' });
  // A's own read from the same cursor works.
  const own = await get('?after=1', readA);
  expect(own.status).toBe(200);
  expect((own.body['items'] as unknown[]).length).toBe(2);
});

test('an unknown query parameter such as integrationId does not widen the read', async () => {
  const { status, body } = await get(`?after=0&integrationId=${integrationA}&accountId=x`, readB);
  expect([200, 400]).toContain(status);
  expect(JSON.stringify(body)).not.toContain(integrationA);
});
