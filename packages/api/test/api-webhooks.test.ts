import { Queue } from 'bullmq';
import { WEBHOOK_QUEUE } from '@dirsync/jobs';
import { testRedisUrl, waitFor } from '@dirsync/testkit';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

// /v1/webhooks over HTTP: the secret shown once and nowhere else, URLs checked on save, every
// route confined to the caller's account, redelivery and test events queued, a disabled
// endpoint listed among the account's actions.

let api: ApiHarness;
let webhookQueue: Queue;
let accountA: string;
let accountB: string;
let adminA: string;
let readerA: string;
let adminB: string;
const secrets: string[] = [];

beforeAll(async () => {
  api = await startApiHarness('api_webhooks');
  webhookQueue = new Queue(WEBHOOK_QUEUE, { connection: { url: testRedisUrl }, prefix: api.prefix.prefix });
  accountA = await api.account('hooks-a');
  accountB = await api.account('hooks-b');
  adminA = await api.key(accountA, ['admin']);
  readerA = await api.key(accountA, ['read']);
  adminB = await api.key(accountB, ['admin']);
});

afterAll(async () => {
  await webhookQueue.close();
  await api.close();
  const logs = api.logs.join('\n');
  for (const secret of secrets) expect(logs).not.toContain(secret.slice('whsec_'.length));
});

interface Endpoint {
  id: string;
  url: string;
  events: string[];
  enabled: boolean;
  failureStreak: number;
  disabledReason: string | null;
  secret?: string;
}

async function create(token: string, body: unknown): Promise<Endpoint> {
  const answer = await api.request('POST', '/v1/webhooks', { token, body });
  expect(answer.status).toBe(201);
  const endpoint = (await answer.json()) as Endpoint;
  if (endpoint.secret !== undefined) secrets.push(endpoint.secret);
  return endpoint;
}

async function drainJobsOf(endpointId: string): Promise<number> {
  const jobs = await webhookQueue.getJobs(['waiting', 'delayed', 'active', 'completed', 'failed', 'prioritized']);
  return jobs.filter((job) => (job.data as { endpointId?: string }).endpointId === endpointId).length;
}

test('an endpoint is created with its secret shown once; lists and reads never show it', async () => {
  const created = await create(adminA, { url: 'https://hooks.example.com/dirsync', events: ['run.failed', 'action.needed'], description: 'ops' });
  expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
  expect(Buffer.from(created.secret!.slice('whsec_'.length), 'base64')).toHaveLength(32);
  expect(created).toMatchObject({ url: 'https://hooks.example.com/dirsync', events: ['run.failed', 'action.needed'], enabled: true, failureStreak: 0, disabledReason: null });

  const list = await api.request('GET', '/v1/webhooks', { token: readerA });
  expect(list.status).toBe(200);
  const listed = await list.text();
  expect(listed).toContain(created.id);
  expect(listed).not.toContain(created.secret!.slice('whsec_'.length));
  expect(listed).not.toContain('secret');
  const one = await api.request('GET', `/v1/webhooks/${created.id}`, { token: readerA });
  expect(await one.text()).not.toContain(created.secret!.slice('whsec_'.length));

  const rotated = await api.request('POST', `/v1/webhooks/${created.id}/rotate-secret`, { token: adminA });
  expect(rotated.status).toBe(200);
  const { secret } = (await rotated.json()) as { secret: string };
  secrets.push(secret);
  expect(secret).toMatch(/^whsec_/);
  expect(secret).not.toBe(created.secret);
  // Reading keys may not create, rotate or delete.
  expect((await api.request('POST', '/v1/webhooks', { token: readerA, body: { url: 'https://x.example.com', events: ['*'] } })).status).toBe(403);
  expect((await api.request('POST', `/v1/webhooks/${created.id}/rotate-secret`, { token: readerA })).status).toBe(403);
});

test('URLs are checked on save: https only here, no credentials, bounded length; event types checked', async () => {
  const refused = async (body: unknown) => {
    const answer = await api.request('POST', '/v1/webhooks', { token: adminA, body });
    expect([400, 422]).toContain(answer.status);
    return (await answer.json()) as { detail: string };
  };
  expect((await refused({ url: 'http://hooks.example.com/x', events: ['*'] })).detail).toContain('https');
  expect((await refused({ url: 'https://user:pw@hooks.example.com/x', events: ['*'] })).detail).toContain('user name or password');
  expect((await refused({ url: 'ftp://hooks.example.com/x', events: ['*'] })).detail).toContain('https');
  await refused({ url: `https://hooks.example.com/${'a'.repeat(2100)}`, events: ['*'] });
  await refused({ url: 'https://hooks.example.com/x', events: ['no.such.event'] });
  await refused({ url: 'https://hooks.example.com/x', events: [] });
  const created = await create(adminA, { url: 'https://hooks.example.com/patch', events: ['*'] });
  expect((await api.request('PATCH', `/v1/webhooks/${created.id}`, { token: adminA, body: { url: 'http://hooks.example.com/x' } })).status).toBe(422);
});

test("another account's endpoints and deliveries read as absent, for every route", async () => {
  const mine = await create(adminA, { url: 'https://hooks.example.com/a', events: ['*'] });
  const test = await api.request('POST', `/v1/webhooks/${mine.id}/test`, { token: adminA });
  expect(test.status).toBe(202);
  const deliveries = await api.request('GET', `/v1/webhooks/${mine.id}/deliveries`, { token: readerA });
  const [delivery] = ((await deliveries.json()) as { items: Array<{ id: string; eventType: string; status: string; messageId: string }> }).items;
  expect(delivery).toMatchObject({ eventType: 'webhook.test', status: 'pending' });
  expect(delivery!.messageId).toBe(((await test.json()) as { messageId: string }).messageId);

  const b = { token: adminB };
  expect((await api.request('GET', `/v1/webhooks/${mine.id}`, b)).status).toBe(404);
  expect((await api.request('PATCH', `/v1/webhooks/${mine.id}`, { ...b, body: { enabled: false } })).status).toBe(404);
  expect((await api.request('POST', `/v1/webhooks/${mine.id}/rotate-secret`, b)).status).toBe(404);
  expect((await api.request('GET', `/v1/webhooks/${mine.id}/deliveries`, b)).status).toBe(404);
  expect((await api.request('POST', `/v1/webhooks/${mine.id}/deliveries/${delivery!.id}/redeliver`, b)).status).toBe(404);
  expect((await api.request('POST', `/v1/webhooks/${mine.id}/test`, b)).status).toBe(404);
  expect((await api.request('DELETE', `/v1/webhooks/${mine.id}`, b)).status).toBe(404);
  const listB = (await (await api.request('GET', '/v1/webhooks', b)).json()) as { items: Endpoint[] };
  expect(listB.items.map((e) => e.id)).not.toContain(mine.id);
  // A's endpoint is untouched by B's attempts.
  expect(((await (await api.request('GET', `/v1/webhooks/${mine.id}`, { token: readerA })).json()) as Endpoint).enabled).toBe(true);
  // B's own endpoint cannot be reached through A's delivery id either.
  const theirs = await create(adminB, { url: 'https://hooks.example.com/b', events: ['*'] });
  expect((await api.request('POST', `/v1/webhooks/${theirs.id}/deliveries/${delivery!.id}/redeliver`, b)).status).toBe(404);
});

test('a test event and a redelivery ask a worker to drain the endpoint', async () => {
  const endpoint = await create(adminA, { url: 'https://hooks.example.com/drain', events: ['*'] });
  expect(await drainJobsOf(endpoint.id)).toBe(0);
  expect((await api.request('POST', `/v1/webhooks/${endpoint.id}/test`, { token: adminA })).status).toBe(202);
  await waitFor(async () => (await drainJobsOf(endpoint.id)) === 1, { what: 'the drain job of the test event' });
  const page = (await (await api.request('GET', `/v1/webhooks/${endpoint.id}/deliveries`, { token: readerA })).json()) as { items: Array<{ id: string }> };
  const redelivered = await api.request('POST', `/v1/webhooks/${endpoint.id}/deliveries/${page.items[0]!.id}/redeliver`, { token: adminA });
  expect(redelivered.status).toBe(202);
  expect(await redelivered.json()).toMatchObject({ status: 'pending', attempts: 0 });
  await waitFor(async () => (await drainJobsOf(endpoint.id)) === 2, { what: 'the drain job of the redelivery' });
  // The job names the endpoint only: no URL, no secret.
  const jobs = await webhookQueue.getJobs(['waiting', 'delayed', 'prioritized']);
  for (const job of jobs) expect(Object.keys(job.data as object)).toEqual(['endpointId']);
});

test('a disabled endpoint is an action needed of its account only; enabling it resets the streak', async () => {
  const endpoint = await create(adminA, { url: 'https://hooks.example.com/disabled', events: ['*'], description: 'billing hook' });
  const disabled = await api.request('PATCH', `/v1/webhooks/${endpoint.id}`, { token: adminA, body: { enabled: false } });
  expect(await disabled.json()).toMatchObject({ enabled: false, disabledReason: 'disabled by an administrator' });
  const actionsA = (await (await api.request('GET', '/v1/actions', { token: readerA })).json()) as { items: Array<{ type: string; webhookId?: string; integrationId: string | null; integrationName: string }> };
  expect(actionsA.items.filter((a) => a.type === 'webhook_disabled' && a.webhookId === endpoint.id)).toEqual([
    expect.objectContaining({ integrationId: null, integrationName: 'billing hook' }),
  ]);
  const actionsB = (await (await api.request('GET', '/v1/actions', { token: adminB })).json()) as { items: Array<{ webhookId?: string }> };
  expect(actionsB.items.some((a) => a.webhookId === endpoint.id)).toBe(false);

  const enabled = await api.request('PATCH', `/v1/webhooks/${endpoint.id}`, { token: adminA, body: { enabled: true } });
  expect(await enabled.json()).toMatchObject({ enabled: true, failureStreak: 0, disabledReason: null });
  const after = (await (await api.request('GET', '/v1/actions', { token: readerA })).json()) as { items: Array<{ webhookId?: string }> };
  expect(after.items.some((a) => a.webhookId === endpoint.id)).toBe(false);

  expect((await api.request('DELETE', `/v1/webhooks/${endpoint.id}`, { token: adminA })).status).toBe(204);
  expect((await api.request('GET', `/v1/webhooks/${endpoint.id}`, { token: readerA })).status).toBe(404);
});

test('the webhook routes are in the OpenAPI document', async () => {
  const document = (await (await api.request('GET', '/v1/openapi.json')).json()) as { paths: Record<string, Record<string, { operationId: string }>> };
  const operations = Object.values(document.paths).flatMap((methods) => Object.values(methods).map((m) => m.operationId));
  for (const id of ['createWebhook', 'listWebhooks', 'getWebhook', 'updateWebhook', 'deleteWebhook', 'rotateWebhookSecret', 'listWebhookDeliveries', 'redeliverWebhook', 'testWebhook']) {
    expect(operations).toContain(id);
  }
});
