import { randomUUID } from 'node:crypto';
import { changeEntrySchema, changePageSchema, type ChangeEntry } from '@dirsync/contracts';
import { createIntegration, deleteObjects, insertMemberships, insertObjects, type ObjectWrite, pruneChanges, writeObjects } from '@dirsync/db';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

let api: ApiHarness;
let accountA: string;
let accountB: string;
let readA: string;
let readB: string;
let syncOnlyA: string;
let integrationA: string;
let integrationB: string;

const hashOf = (type: string, attributes: Record<string, unknown>) => `${type}:${JSON.stringify(attributes)}`;

function user(externalId: string, attributes: Record<string, unknown> = { displayName: externalId }): ObjectWrite {
  return { externalId, type: 'user', dn: `uid=${externalId},dc=x`, attributesJson: JSON.stringify(attributes), contentHash: JSON.stringify(attributes) };
}

beforeAll(async () => {
  api = await startApiHarness('api_changes');
  accountA = await api.account('alpha');
  accountB = await api.account('beta');
  readA = await api.key(accountA, ['read']);
  readB = await api.key(accountB, ['read']);
  syncOnlyA = await api.key(accountA, ['sync']);
  integrationA = (await createIntegration(api.db, { accountId: accountA, kind: 'ldap', name: 'feed-a', settings: ldapSettings() })).id;
  integrationB = (await createIntegration(api.db, { accountId: accountB, kind: 'ldap', name: 'feed-b', settings: ldapSettings() })).id;
});

afterAll(async () => {
  await api?.close();
});

async function get(path: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await api.request('GET', path, { token });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function page(token: string, after: string, limit?: number) {
  const { status, body } = await get(`/v1/changes?after=${after}${limit === undefined ? '' : `&limit=${limit}`}`, token);
  expect(status).toBe(200);
  return changePageSchema.parse(body);
}

function describeEntry(entry: ChangeEntry): string {
  return entry.type === 'membership.changed' ? `${entry.type} ${entry.groupExternalId} +${[...entry.added].sort().join(',')} -${[...entry.removed].sort().join(',')}` : `${entry.type} ${entry.externalId}`;
}

test('the feed pages in cursor order, objects joined as stored, memberships per group', async () => {
  const run = randomUUID();
  await insertObjects(api.db, integrationA, run, [user('ann'), user('bob')]);
  await insertObjects(api.db, integrationA, run, [{ ...user('staff'), type: 'group', dn: 'cn=staff,dc=x' }]);
  await insertMemberships(api.db, integrationA, run, [{ groupExternalId: 'staff', memberExternalIds: ['ann', 'bob'], membersHash: 'h' }]);
  await writeObjects(api.db, integrationA, run, [{ ...user('ann', { displayName: 'Ann B.' }), change: 'update' }]);
  await deleteObjects(api.db, integrationA, ['bob'], hashOf, run);

  const first = await page(readA, '0', 3);
  expect(first.items.map(describeEntry)).toEqual(['object.created ann', 'object.created bob', 'object.created staff']);
  expect(first).toMatchObject({ cursor: '3', hasMore: true });
  expect(first.items[0]).toMatchObject({
    cursor: '1',
    integrationId: integrationA,
    runId: run,
    objectType: 'user',
    // Its state now, the later update included.
    object: { externalId: 'ann', type: 'user', attributes: { displayName: 'Ann B.' }, deleted: false },
  });
  // bob was deleted after its creation entry: the entry still comes, with the soft-deleted state.
  expect(first.items[1]).toMatchObject({ type: 'object.created', object: { externalId: 'bob', deleted: true } });
  const rest = await page(readA, first.cursor, 1000);
  expect(rest.items.map(describeEntry)).toEqual([
    'membership.changed staff +ann,bob -',
    'object.updated ann',
    'membership.changed staff + -bob',
    'object.deleted bob',
  ]);
  expect(rest).toMatchObject({ cursor: '7', hasMore: false });
  expect(rest.items.map((entry) => entry.cursor)).toEqual(['4', '5', '6', '7']);
  // Head counts every entry: the deletion's edge entry and its object entry.
  expect((await get('/v1/changes/head', readA)).body).toEqual({ cursor: '7' });
  expect(Object.keys(rest.items.at(-1) ?? {}).sort()).toEqual(['cursor', 'externalId', 'integrationId', 'objectType', 'occurredAt', 'runId', 'type']);
  for (const entry of [...first.items, ...rest.items]) expect(changeEntrySchema.safeParse(entry).success).toBe(true);
  // Caught up: an empty page keeps the cursor.
  expect(await page(readA, '7')).toEqual({ items: [], cursor: '7', hasMore: false });
  // Default limit 100.
  expect((await page(readA, '0')).items).toHaveLength(7);
});

test('limits, malformed cursors and cursors beyond the head are refused with 400', async () => {
  for (const query of ['limit=0', 'limit=1001', 'limit=ten', 'after=-1', 'after=abc', 'after=01', 'after=99999999999999999999', 'after=9999999999999999999', 'after=1.5']) {
    const { status, body } = await get(`/v1/changes?${query}`, readA);
    expect([query, status]).toEqual([query, 400]);
    expect(body['type']).toBe('/v1/problems/invalid-request');
  }
  const head = String((await get('/v1/changes/head', readA)).body['cursor']);
  const beyond = await get(`/v1/changes?after=${BigInt(head) + 1n}`, readA);
  expect(beyond.status).toBe(400);
  expect(beyond.body).toMatchObject({ type: '/v1/problems/invalid-cursor', status: 400 });
});

test("account isolation: B never sees A's entries, and A's cursors reveal nothing to B", async () => {
  // B has one entry of its own; A has several.
  await insertObjects(api.db, integrationB, randomUUID(), [user('beta-only')]);
  expect((await get('/v1/changes/head', readB)).body).toEqual({ cursor: '1' });
  const own = await page(readB, '0');
  expect(own.items.map(describeEntry)).toEqual(['object.created beta-only']);
  expect(own.items[0]?.integrationId).toBe(integrationB);
  // A cursor from A's stream is beyond B's head: refused, nothing of A's in the answer.
  const borrowed = await get('/v1/changes?after=5', readB);
  expect(borrowed.status).toBe(400);
  expect(JSON.stringify(borrowed.body)).not.toMatch(/ann|bob|staff|feed-a/);
  expect(JSON.stringify(own)).not.toMatch(/ann|bob|staff|feed-a/);
});

test('the read scope is required; no key, no feed', async () => {
  expect((await get('/v1/changes', syncOnlyA)).status).toBe(403);
  expect((await get('/v1/changes/head', syncOnlyA)).status).toBe(403);
  const anonymous = await api.request('GET', '/v1/changes');
  expect(anonymous.status).toBe(401);
  const admin = await api.key(accountA, ['admin']);
  expect((await get('/v1/changes/head', admin)).status).toBe(200);
});

test('a cursor older than the retained history answers 410 cursor-expired with the head', async () => {
  const account = await api.account('gamma');
  const token = await api.key(account, ['read']);
  const integration = (await createIntegration(api.db, { accountId: account, kind: 'ldap', name: 'feed-c', settings: ldapSettings() })).id;
  await insertObjects(api.db, integration, randomUUID(), [user('old1'), user('old2')]);
  await insertObjects(api.db, integration, randomUUID(), [user('new1')]);
  await api.db.$client`update change_batches set published_at = now() - interval '30 days' where account_id = ${account} and last_seq <= 2`;
  while ((await pruneChanges(api.db, { hours: 168 })) > 0);
  const response = await api.request('GET', '/v1/changes?after=1', { token });
  expect(response.status).toBe(410);
  expect(response.headers.get('content-type')).toContain('application/problem+json');
  expect(await response.json()).toMatchObject({ type: '/v1/problems/cursor-expired', status: 410, title: 'Gone', head: '3', detail: expect.stringContaining('read the synced lists again') });
  const kept = await page(token, '2');
  expect(kept.items.map(describeEntry)).toEqual(['object.created new1']);
  // "0" (a consumer that never read) is behind the pruned entries too.
  expect((await api.request('GET', '/v1/changes', { token })).status).toBe(410);
});

test('the routes are in the OpenAPI document, with the 410', async () => {
  const document = (await (await api.request('GET', '/v1/openapi.json')).json()) as {
    paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown> }>>;
  };
  expect(document.paths['/v1/changes']?.['get']?.operationId).toBe('listChanges');
  expect(Object.keys(document.paths['/v1/changes']?.['get']?.responses ?? {})).toEqual(expect.arrayContaining(['200', '400', '401', '403', '410']));
  expect(document.paths['/v1/changes/head']?.['get']?.operationId).toBe('getChangeHead');
});
