import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { Webhook } from 'standardwebhooks';
import {
  close,
  connect,
  createAccount,
  createIntegration,
  createKeyRing,
  createWebhookEndpoint,
  type Db,
  generateSecretKey,
  getWebhookEndpoint,
  type KeyRing,
  listWebhookDeliveries,
  recordWebhookEvent,
  redeliverWebhookDelivery,
  updateWebhookEndpoint,
  webhookMessageId,
} from '@dirsync/db';
import { SYNC_BACKOFF_TYPE, SYNC_QUEUE } from '@dirsync/jobs';
import { DestinationPolicy, type Provider } from '@dirsync/providers';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, waitFor, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import type { ProviderFactory } from '../src/processor.ts';
import { createWebhookWorker, postWebhook } from '../src/webhooks/index.ts';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';
import { runReaches } from './support/runs.ts';
import { ScriptedProvider, user, type ScriptedEntry } from './support/scripted-provider.ts';

// Webhooks end to end: events recorded in PostgreSQL, drained by a real worker through the real
// Redis queue, POSTed to real HTTP receivers on loopback (which this installation allows
// explicitly), signatures checked with the standardwebhooks package, not with our own code.

let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let ring: KeyRing;
let worker: DirsyncWorker;
let syncQueue: Queue;
const logLines: string[] = [];
const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
const providers = new Map<string, Provider<ScriptedEntry>>();
const factory: ProviderFactory = (_kind, settings) => {
  const provider = providers.get(String(settings['key']));
  if (!provider) throw new Error('no scripted provider for these settings');
  return provider;
};
const secretsIssued: string[] = [];

/** One request a receiver got. */
interface Received {
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly at: number;
}

/** A node:http receiver answering each request with `answer(n)` (n counts from 0). */
class Receiver {
  readonly requests: Received[] = [];
  answer: (index: number, body: string) => number = () => 200;
  readonly #server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      const status = this.answer(this.requests.length, body);
      this.requests.push({ headers, body, at: Date.now() });
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : 'no');
    });
  });
  url = '';

  async start(): Promise<this> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hooks/in?x=1`;
    return this;
  }

  /** Bodies of the requests, parsed. */
  events(): Array<{ type: string; data: Record<string, unknown> }> {
    return this.requests.map((r) => JSON.parse(r.body) as { type: string; data: Record<string, unknown> });
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
const receivers: Receiver[] = [];
async function receiver(): Promise<Receiver> {
  const r = await new Receiver().start();
  receivers.push(r);
  return r;
}

async function endpoint(accountId: string, url: string, events: string[] = ['*']) {
  const created = await createWebhookEndpoint(db, ring, { accountId, url, events });
  secretsIssued.push(created.secret);
  return created;
}

async function newAccount(): Promise<string> {
  return (await createAccount(db, { name: `acct-${randomUUID()}` })).id;
}

beforeAll(async () => {
  database = await createTestDatabase('webhooks');
  db = connect(database.url, { max: 8 });
  prefix = createTestQueuePrefix('webhooks');
  ring = createKeyRing({ current: generateSecretKey() });
  syncQueue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  worker = createWorker({
    db,
    redisUrl: testRedisUrl,
    prefix: prefix.prefix,
    concurrency: 1,
    keyRing: ring,
    logger,
    workerId: 'webhooks-test',
    createProvider: factory,
    lockRetryDelayMs: 100,
    runRotations: false,
    controlConcurrency: 0,
    // The receivers run on loopback: this installation allows it explicitly.
    destinations: new DestinationPolicy({ allowedNetworks: ['127.0.0.0/8'] }),
    webhooks: { allowHttp: true, backoff: { baseMs: 200, maxMs: 800 }, disableAfterFailures: 4, maxAttempts: 10, timeoutMs: 5_000, sweepIntervalMs: 100, busyDelayMs: 100 },
  });
});

afterAll(async () => {
  await worker.close();
  await Promise.all(receivers.map((r) => r.close()));
  await syncQueue.close();
  await prefix.cleanup();
  await close(db);
  await database.drop();
  // No secret of any endpoint reached a log line.
  const logs = logLines.join('\n');
  for (const secret of secretsIssued) {
    expect(logs).not.toContain(secret);
    expect(logs).not.toContain(secret.slice('whsec_'.length));
  }
});

test('an event is delivered once, signed: the standardwebhooks package verifies it with the secret', async () => {
  const accountId = await newAccount();
  const target = await receiver();
  const { endpoint: hook, secret } = await endpoint(accountId, target.url);
  const recorded = await recordWebhookEvent(db, { accountId, type: 'webhook.test', data: { hello: 'world' } });
  expect(recorded.endpointIds).toEqual([hook.id]);
  await waitFor(() => target.requests.length === 1, { what: 'the delivery' });
  const [request] = target.requests;
  const verified = new Webhook(secret).verify(request!.body, request!.headers) as { type: string; timestamp: string; data: unknown };
  expect(verified.type).toBe('webhook.test');
  expect(verified.data).toEqual({ hello: 'world' });
  expect(Number.isNaN(Date.parse(verified.timestamp))).toBe(false);
  expect(request!.headers['webhook-id']).toBe(webhookMessageId(recorded.eventId!));
  expect(request!.headers['content-type']).toBe('application/json');
  // Another endpoint's secret does not verify it.
  expect(() => new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).verify(request!.body, request!.headers)).toThrow();
  const page = await listWebhookDeliveries(db, accountId, hook.id, { limit: 10 });
  await waitFor(async () => (await listWebhookDeliveries(db, accountId, hook.id, { limit: 10 }))?.items[0]?.status === 'succeeded', { what: 'the delivery recorded' });
  expect(page?.items).toHaveLength(1);
  expect(target.requests).toHaveLength(1);
});

test('500 answers are retried with growing delays, under the same webhook-id, until a 2xx', async () => {
  const accountId = await newAccount();
  const target = await receiver();
  target.answer = (index) => (index < 2 ? 500 : 204);
  const { endpoint: hook, secret } = await endpoint(accountId, target.url);
  const recorded = await recordWebhookEvent(db, { accountId, type: 'run.finished', data: { runId: randomUUID() } });
  await waitFor(async () => (await listWebhookDeliveries(db, accountId, hook.id, { limit: 1 }))?.items[0]?.status === 'succeeded', { what: 'success after retries' });
  expect(target.requests).toHaveLength(3);
  const ids = new Set(target.requests.map((r) => r.headers['webhook-id']));
  expect([...ids]).toEqual([webhookMessageId(recorded.eventId!)]);
  for (const request of target.requests) expect(new Webhook(secret).verify(request.body, request.headers)).toBeTruthy();
  // Equal jitter: retry n waits at least half of base·2^(n-1).
  const [first, second, third] = target.requests.map((r) => r.at) as [number, number, number];
  expect(second - first).toBeGreaterThanOrEqual(100);
  expect(third - second).toBeGreaterThanOrEqual(200);
  const [delivery] = (await listWebhookDeliveries(db, accountId, hook.id, { limit: 1 }))!.items;
  expect(delivery).toMatchObject({ attempts: 3, lastStatusCode: 204, status: 'succeeded', lastError: null });
  expect((await getWebhookEndpoint(db, accountId, hook.id))?.failureStreak).toBe(0);
});

test('per endpoint, a newer event is not delivered before an older one succeeds, retries included', async () => {
  const accountId = await newAccount();
  const target = await receiver();
  target.answer = (_index, body) => {
    const { data } = JSON.parse(body) as { data: { n: number } };
    const tries = target.requests.filter((r) => (JSON.parse(r.body) as { data: { n: number } }).data.n === data.n).length;
    return data.n === 1 && tries < 2 ? 503 : 200;
  };
  // A second worker sweeps and drains the same queue: the endpoint's lease keeps them in turn.
  const second = createWebhookWorker({
    db,
    keyRing: ring,
    logger,
    connection: testRedisUrl,
    prefix: prefix.prefix,
    name: 'second',
    destinations: new DestinationPolicy({ allowedNetworks: ['127.0.0.0/8'] }),
    allowHttp: true,
    backoff: { baseMs: 200, maxMs: 800 },
    sweepIntervalMs: 50,
    busyDelayMs: 50,
  });
  try {
    const { endpoint: hook } = await endpoint(accountId, target.url);
    for (const n of [1, 2, 3]) await recordWebhookEvent(db, { accountId, type: 'run.finished', data: { n } });
    await waitFor(async () => (await listWebhookDeliveries(db, accountId, hook.id, { limit: 10 }))?.items.every((d) => d.status === 'succeeded'), { what: 'all three delivered' });
    const order = target.events().map((e) => e.data['n']);
    expect(order).toEqual([1, 1, 1, 2, 3]);
  } finally {
    await second.close();
  }
});

test('a streak of failures disables the endpoint with an action needed; enabling it again delivers what waited', async () => {
  const accountId = await newAccount();
  const failing = await receiver();
  failing.answer = () => 500;
  const watcher = await receiver();
  const { endpoint: hook } = await endpoint(accountId, failing.url);
  await endpoint(accountId, watcher.url, ['action.needed']);
  await recordWebhookEvent(db, { accountId, type: 'run.failed', data: { n: 1 } });
  await waitFor(async () => (await getWebhookEndpoint(db, accountId, hook.id))?.enabled === false, { what: 'the endpoint disabled' });
  const disabled = await getWebhookEndpoint(db, accountId, hook.id);
  expect(disabled?.failureStreak).toBe(4);
  expect(disabled?.disabledReason).toContain('4 deliveries failed in a row');
  expect(failing.requests).toHaveLength(4);
  await waitFor(() => watcher.requests.length === 1, { what: 'the action.needed event' });
  expect(watcher.events()[0]).toMatchObject({ type: 'action.needed', data: { action: 'webhook_disabled', webhookId: hook.id } });
  // While disabled, new events of the account do not go to it.
  const later = await recordWebhookEvent(db, { accountId, type: 'run.failed', data: { n: 2 } });
  expect(later.endpointIds).toEqual([]);

  failing.answer = () => 200;
  // Its next attempt was an hour away: enabling the endpoint makes what waited due now.
  await db.$client`update webhook_deliveries set next_attempt_at = now() + interval '1 hour' where endpoint_id = ${hook.id} and status = 'pending'`;
  const enabled = await updateWebhookEndpoint(db, accountId, hook.id, { enabled: true });
  expect(enabled).toMatchObject({ enabled: true, failureStreak: 0, disabledReason: null });
  await waitFor(() => failing.requests.length === 5, { what: 'the waiting delivery after enabling' });
  expect(failing.events()[4]).toMatchObject({ type: 'run.failed', data: { n: 1 } });
});

test('410 Gone disables the endpoint at once', async () => {
  const accountId = await newAccount();
  const gone = await receiver();
  gone.answer = () => 410;
  const { endpoint: hook } = await endpoint(accountId, gone.url);
  await recordWebhookEvent(db, { accountId, type: 'run.finished', data: {} });
  await waitFor(async () => (await getWebhookEndpoint(db, accountId, hook.id))?.enabled === false, { what: 'the endpoint disabled' });
  expect(gone.requests).toHaveLength(1);
  expect((await getWebhookEndpoint(db, accountId, hook.id))?.disabledReason).toContain('410');
});

test('a redelivery sends the same message again, same webhook-id', async () => {
  const accountId = await newAccount();
  const target = await receiver();
  const { endpoint: hook } = await endpoint(accountId, target.url);
  await recordWebhookEvent(db, { accountId, type: 'run.finished', data: { once: true } });
  await waitFor(async () => (await listWebhookDeliveries(db, accountId, hook.id, { limit: 1 }))?.items[0]?.status === 'succeeded', { what: 'the first delivery' });
  const [delivery] = (await listWebhookDeliveries(db, accountId, hook.id, { limit: 1 }))!.items;
  const otherAccount = await newAccount();
  expect(await redeliverWebhookDelivery(db, otherAccount, hook.id, delivery!.id)).toBeUndefined();
  expect(await redeliverWebhookDelivery(db, accountId, hook.id, delivery!.id)).toMatchObject({ status: 'pending' });
  await waitFor(() => target.requests.length === 2, { what: 'the redelivery' });
  expect(target.requests[1]!.headers['webhook-id']).toBe(target.requests[0]!.headers['webhook-id']);
  expect(target.requests[1]!.body).toBe(target.requests[0]!.body);
});

test("one account's events never reach another account's endpoints", async () => {
  const accountA = await newAccount();
  const accountB = await newAccount();
  const targetA = await receiver();
  const targetB = await receiver();
  const { endpoint: hookA } = await endpoint(accountA, targetA.url);
  const { endpoint: hookB } = await endpoint(accountB, targetB.url);
  const recorded = await recordWebhookEvent(db, { accountId: accountB, type: 'run.finished', data: { of: 'B' } });
  expect(recorded.endpointIds).toEqual([hookB.id]);
  await waitFor(() => targetB.requests.length === 1, { what: "B's delivery" });
  await recordWebhookEvent(db, { accountId: accountA, type: 'run.finished', data: { of: 'A' } });
  await waitFor(() => targetA.requests.length === 1, { what: "A's delivery" });
  expect(targetA.events().map((e) => e.data['of'])).toEqual(['A']);
  expect(targetB.events().map((e) => e.data['of'])).toEqual(['B']);
  expect(await listWebhookDeliveries(db, accountB, hookA.id, { limit: 10 })).toBeUndefined();
  expect(await getWebhookEndpoint(db, accountB, hookA.id)).toBeUndefined();
});

test('by default a loopback or private URL is refused before anything is sent, and so are redirects', async () => {
  const target = await receiver();
  const base = { secret: `whsec_${Buffer.alloc(32, 1).toString('base64')}`, messageId: 'msg_x', body: '{}', allowHttp: true, timeoutMs: 2_000, maxResponseBytes: 1024 };
  const strict = await postWebhook({ ...base, url: target.url, policy: DestinationPolicy.strict() });
  expect(strict).toMatchObject({ ok: false, refused: true });
  expect(strict.error).toContain('127.0.0.1');
  const privateAddress = await postWebhook({ ...base, url: 'http://10.1.2.3:8080/hook', policy: DestinationPolicy.strict() });
  expect(privateAddress).toMatchObject({ ok: false, refused: true });
  expect(target.requests).toHaveLength(0);
  // A name that resolves to loopback is refused too (the resolver's answer is what is checked).
  const named = new DestinationPolicy({ resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
  expect(await postWebhook({ ...base, url: target.url.replace('127.0.0.1', 'hooks.example.test'), policy: named })).toMatchObject({ ok: false, refused: true });
  expect(target.requests).toHaveLength(0);
  // https only unless allowed; no credentials in the URL.
  expect(await postWebhook({ ...base, allowHttp: false, url: target.url, policy: new DestinationPolicy({ allowedNetworks: ['127.0.0.0/8'] }) })).toMatchObject({ ok: false, refused: true });
  expect(await postWebhook({ ...base, url: target.url.replace('http://', 'http://user:pw@'), policy: new DestinationPolicy({ allowedNetworks: ['127.0.0.0/8'] }) })).toMatchObject({ ok: false, refused: true });
  expect(target.requests).toHaveLength(0);
  // A redirect is a failure, not followed.
  const redirecting = await receiver();
  redirecting.answer = () => 302;
  const redirected = await postWebhook({ ...base, url: redirecting.url, policy: new DestinationPolicy({ allowedNetworks: ['127.0.0.0/8'] }) });
  expect(redirected).toMatchObject({ ok: false, statusCode: 302, refused: false });
  expect(target.requests).toHaveLength(0);
});

test('an answer is read only up to its bound, and a receiver that does not answer times out', async () => {
  const policy = new DestinationPolicy({ allowedNetworks: ['127.0.0.0/8'] });
  const base = { secret: `whsec_${Buffer.alloc(32, 2).toString('base64')}`, messageId: 'msg_y', body: '{}', allowHttp: true, policy, maxResponseBytes: 64 * 1024 };
  // An endless answer: the delivery ends once the bound is passed, and the connection with it.
  let sent = 0;
  const endless = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(16 * 1024, 120);
    const pump = () => {
      while (!res.destroyed && res.write(chunk)) sent += chunk.length;
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  });
  endless.listen(0, '127.0.0.1');
  await once(endless, 'listening');
  const closed = new Promise<void>((resolve) => endless.on('connection', (socket) => socket.on('close', () => resolve())));
  const bounded = await postWebhook({ ...base, url: `http://127.0.0.1:${(endless.address() as AddressInfo).port}/`, timeoutMs: 10_000 });
  expect(bounded).toMatchObject({ ok: true, statusCode: 200 });
  await closed;
  expect(sent).toBeLessThan(64 * 1024 * 1024);
  endless.closeAllConnections();
  endless.close();

  // A receiver that takes the request and never answers.
  const silent = http.createServer((req) => req.resume());
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const timedOut = await postWebhook({ ...base, url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`, timeoutMs: 300 });
  expect(timedOut).toMatchObject({ ok: false, statusCode: null, refused: false });
  expect(timedOut.error).toBe('no answer within 300 ms');
  silent.closeAllConnections();
  silent.close();
});

async function sync(integrationId: string) {
  const runId = randomUUID();
  await syncQueue.add('sync', { integrationId, runId, mode: 'full', trigger: 'manual', dryRun: false }, { jobId: `run.${runId}`, attempts: 1, backoff: { type: SYNC_BACKOFF_TYPE, delay: 50 } });
  return runId;
}

test('a run that changed objects sends run.finished and objects.changed with its feed range; a blocked run sends run.blocked and action.needed', async () => {
  const accountId = await newAccount();
  const target = await receiver();
  const { secret } = await endpoint(accountId, target.url);
  const key = randomUUID();
  const provider = new ScriptedProvider().put(user('u1'), user('u2'), user('u3'), user('u4'));
  providers.set(key, provider);
  const integration = await createIntegration(db, { accountId, kind: 'ldap', name: key, settings: { key }, deleteThresholdCount: 1, deleteThresholdPercent: 1 }, { ring, plaintext: 'pw' });

  const first = await sync(integration.id);
  await runReaches(db, first, ['succeeded']);
  await waitFor(() => target.requests.length >= 2, { what: 'the events of the first run' });
  const events = target.events();
  expect(events.map((e) => e.type)).toEqual(['run.finished', 'objects.changed']);
  expect(events[0]!.data).toMatchObject({ integrationId: integration.id, runId: first, status: 'succeeded' });
  expect(events[1]!.data).toMatchObject({ integrationId: integration.id, runId: first, count: 4 });
  const { cursorFrom, cursorTo } = events[1]!.data as { cursorFrom: string; cursorTo: string };
  expect(BigInt(cursorTo) - BigInt(cursorFrom)).toBe(4n);
  for (const request of target.requests) expect(new Webhook(secret).verify(request.body, request.headers)).toBeTruthy();

  provider.remove('u1', 'u2', 'u3');
  const second = await sync(integration.id);
  await runReaches(db, second, ['blocked']);
  await waitFor(() => target.requests.length >= 4, { what: 'the events of the blocked run' });
  const blocked = target.events().slice(2);
  expect(blocked.map((e) => e.type)).toEqual(['run.blocked', 'action.needed']);
  expect(blocked[0]!.data).toMatchObject({ runId: second, status: 'blocked' });
  expect(blocked[1]!.data).toMatchObject({ action: 'blocked_run', runId: second, integrationId: integration.id });
});
