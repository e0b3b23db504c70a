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
  createKeyRing,
  createWebhookEndpoint,
  type Db,
  generateSecretKey,
  getWebhookEndpoint,
  type KeyRing,
  listDisabledWebhookEndpoints,
  listWebhookDeliveries,
  recordWebhookEvent,
  updateWebhookEndpoint,
  type WebhookEndpointRow,
} from '@dirsync/db';
import { WEBHOOK_QUEUE } from '@dirsync/jobs';
import { DestinationPolicy, platformEndpointsOf, type ResolvedAddress } from '@dirsync/providers';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, waitFor, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import { createWebhookWorker, type WebhookJobResult, type WebhookWorker } from '../src/webhooks/index.ts';

// A webhook URL the destination policy refuses is not retried: the first attempt disables the
// endpoint with the policy's words. Real receivers on loopback, the real Redis queue and
// PostgreSQL; the policy is the one the worker runs with, its resolver answering for the test's
// names (as a name server the endpoint's owner controls would).

let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let ring: KeyRing;
let queue: Queue;
const logLines: string[] = [];
const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
const secretsIssued: string[] = [];

// The watcher of action.needed events listens on 127.0.0.2, the only loopback address the
// refusing installation allows; the refused receivers listen on 127.0.0.1.
const watcherNetwork = '127.0.0.2/32';
const names: Record<string, string> = { 'hooks.example.test': '127.0.0.1' };
async function resolve(host: string): Promise<readonly ResolvedAddress[]> {
  const address = names[host];
  if (address === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  return [{ address, family: 4 }];
}

/** The policy of an installation allowing `allowedNetworks`, with its own Redis and PostgreSQL. */
function policy(allowedNetworks: string[]): DestinationPolicy {
  return new DestinationPolicy({ allowedNetworks, resolve, platformEndpoints: platformEndpointsOf({ redisUrl: testRedisUrl, databaseUrl: database.url }) });
}

const workers: WebhookWorker[] = [];
/** What every drain returned, from the workers' completed events (keyed jobs leave no record). */
const drains: WebhookJobResult[] = [];
function startWorker(destinations: DestinationPolicy, name: string): WebhookWorker {
  const started = createWebhookWorker({
    db,
    keyRing: ring,
    logger,
    connection: testRedisUrl,
    prefix: prefix.prefix,
    name,
    destinations,
    allowHttp: true,
    // Retries this soon would show within the test if a refusal were retried.
    backoff: { baseMs: 100, maxMs: 200 },
    maxAttempts: 8,
    disableAfterFailures: 20,
    timeoutMs: 5_000,
    sweepIntervalMs: 100,
    busyDelayMs: 50,
  });
  started.worker.on('completed', (_job, result) => drains.push(result));
  workers.push(started);
  return started;
}

async function stopWorker(worker: WebhookWorker): Promise<void> {
  await worker.close();
  workers.splice(workers.indexOf(worker), 1);
}

interface Received {
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** A node:http receiver answering 200 to everything. */
class Receiver {
  readonly requests: Received[] = [];
  readonly #server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      this.requests.push({ headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])), body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  port = 0;

  async start(host: string): Promise<this> {
    this.#server.listen(0, host);
    await once(this.#server, 'listening');
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  events(): Array<{ type: string; data: Record<string, unknown> }> {
    return this.requests.map((r) => JSON.parse(r.body) as { type: string; data: Record<string, unknown> });
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((done) => this.#server.close(() => done()));
  }
}
const receivers: Receiver[] = [];
async function receiver(host = '127.0.0.1'): Promise<Receiver> {
  const r = await new Receiver().start(host);
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

/** Records `count` events in one transaction, so every one is queued before any drain runs. */
async function recordEvents(accountId: string, count: number): Promise<void> {
  await db.$client.begin(async (tx) => {
    for (let n = 1; n <= count; n++) await recordWebhookEvent(tx, { accountId, type: 'run.finished', data: { n } });
  });
}

async function disabled(accountId: string, id: string): Promise<WebhookEndpointRow> {
  return waitFor(
    async () => {
      const row = await getWebhookEndpoint(db, accountId, id);
      return row !== undefined && !row.enabled ? row : undefined;
    },
    { what: `endpoint ${id} disabled` },
  );
}

/** The drain jobs of an endpoint in the queue, by state. */
async function jobsOf(endpointId: string) {
  const of = async (states: Parameters<Queue['getJobs']>[0]) => (await queue.getJobs(states)).filter((job) => (job.data as { endpointId?: string }).endpointId === endpointId);
  return { pending: await of(['waiting', 'active', 'prioritized', 'waiting-children']), delayed: await of(['delayed']) };
}

/**
 * Waits until the drain that was refused has returned and no drain of the endpoint runs or
 * waits, then checks that no retry is scheduled and that all drains of the endpoint made one
 * failed attempt between them (`expectedFailed` when it was enabled again in between).
 *
 * A sweep's drain that found the endpoint leased by another drain waits `busyDelayMs` among the
 * delayed jobs without having made an attempt; it is waited for too. A retry is a delayed job
 * after a failed attempt, and none may be left.
 */
async function expectNoRetry(endpointId: string, expectedFailed = 1): Promise<void> {
  const of = () => drains.filter((r) => r.endpointId === endpointId);
  const jobs = await waitFor(
    async () => {
      if (of().filter((r) => r.outcome === 'refused').length < expectedFailed) return undefined;
      const current = await jobsOf(endpointId);
      const busy = current.delayed.filter((job) => job.attemptsMade === 0);
      return current.pending.length === 0 && busy.length === 0 ? current : undefined;
    },
    { what: `the drains of ${endpointId} to end` },
  );
  expect(jobs.delayed).toHaveLength(0);
  expect(of().reduce((sum, r) => sum + r.failed, 0)).toBe(expectedFailed);
  expect(of().filter((r) => r.outcome === 'refused')).toHaveLength(expectedFailed);
}

beforeAll(async () => {
  database = await createTestDatabase('webhooks_refused');
  db = connect(database.url, { max: 8 });
  prefix = createTestQueuePrefix('webhooks_refused');
  ring = createKeyRing({ current: generateSecretKey() });
  queue = new Queue(WEBHOOK_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
});

afterAll(async () => {
  for (const worker of [...workers]) await stopWorker(worker);
  await Promise.all(receivers.map((r) => r.close()));
  await queue.close();
  await prefix.cleanup();
  await close(db);
  await database.drop();
  const logs = logLines.join('\n');
  for (const secret of secretsIssued) {
    expect(logs).not.toContain(secret);
    expect(logs).not.toContain(secret.slice('whsec_'.length));
  }
});

test("a URL naming a loopback, a private address or the platform's Redis is attempted once: the endpoint is disabled with the policy's words, an action is needed, nothing is retried, later deliveries wait", async () => {
  const worker = startWorker(policy([watcherNetwork]), 'refusing');
  try {
    const accountId = await newAccount();
    const target = await receiver();
    const watcher = await receiver('127.0.0.2');
    await endpoint(accountId, `http://127.0.0.2:${watcher.port}/actions`, ['action.needed']);
    const redisPort = new URL(testRedisUrl).port || '6379';
    const cases = [
      { url: `http://127.0.0.1:${target.port}/hooks/in?token=t1`, words: [`http://127.0.0.1:${target.port} resolves to 127.0.0.1, a loopback address, which this installation does not allow`, 'DIRSYNC_ALLOWED_NETWORKS'] },
      { url: 'http://10.1.2.3:8080/hook', words: ['http://10.1.2.3:8080 resolves to 10.1.2.3, a private address, which this installation does not allow'] },
      { url: `http://127.0.0.1:${redisPort}/`, words: [`port ${redisPort}, the platform's own Redis, which no integration may reach`] },
    ];
    const hooks = [];
    for (const c of cases) hooks.push({ ...c, hook: (await endpoint(accountId, c.url, ['run.finished'])).endpoint });
    await recordEvents(accountId, 3);

    for (const { hook, words } of hooks) {
      const row = await disabled(accountId, hook.id);
      expect(row.disabledReason).toMatch(/^refused before anything was sent, not retried: /);
      for (const w of words) expect(row.disabledReason).toContain(w);
      // The label is the URL's origin: its path and query are not repeated.
      expect(row.disabledReason).not.toContain('token=t1');
      expect(row.failureStreak).toBe(1);
      await expectNoRetry(hook.id);
      // The refused delivery keeps its place with no next attempt; the two behind it wait unattempted.
      const { items } = (await listWebhookDeliveries(db, accountId, hook.id, { limit: 10 }))!;
      expect(items.map((d) => ({ status: d.status, attempts: d.attempts }))).toEqual([
        { status: 'pending', attempts: 0 },
        { status: 'pending', attempts: 0 },
        { status: 'pending', attempts: 1 },
      ]);
      expect(items[2]!.nextAttemptAt).toBeNull();
      expect(row.disabledReason).toContain(items[2]!.lastError!);
    }
    expect(target.requests).toHaveLength(0);
    // The sweep hands none of them to the queue: a disabled endpoint's deliveries wait.
    expect(await worker.sweep()).toEqual([]);

    // What GET /v1/actions lists as webhook_disabled, and the action.needed event of each.
    const listed = await listDisabledWebhookEndpoints(db, accountId);
    expect(listed.map((e) => e.id).sort()).toEqual(hooks.map((h) => h.hook.id).sort());
    await waitFor(() => watcher.requests.length === 3, { what: 'three action.needed events' });
    for (const { hook } of hooks) {
      const reason = listed.find((e) => e.id === hook.id)!.disabledReason;
      expect(watcher.events().filter((e) => e.data['webhookId'] === hook.id)).toEqual([
        { type: 'action.needed', timestamp: expect.any(String), data: { action: 'webhook_disabled', webhookId: hook.id, url: hook.url, detail: reason } },
      ]);
    }
  } finally {
    await stopWorker(worker);
  }
});

test('a name that resolves to loopback is refused the same way; enabled while the policy still refuses, it costs one attempt more', async () => {
  const worker = startWorker(policy([watcherNetwork]), 'refusing-named');
  try {
    const accountId = await newAccount();
    const target = await receiver();
    const { endpoint: hook } = await endpoint(accountId, `http://hooks.example.test:${target.port}/in`);
    await recordEvents(accountId, 1);
    const row = await disabled(accountId, hook.id);
    expect(row.disabledReason).toContain(`http://hooks.example.test:${target.port} resolves to 127.0.0.1, a loopback address, which this installation does not allow`);
    await expectNoRetry(hook.id);
    expect(target.requests).toHaveLength(0);

    const enabled = await updateWebhookEndpoint(db, accountId, hook.id, { enabled: true });
    expect(enabled).toMatchObject({ enabled: true, failureStreak: 0, disabledReason: null });
    // As the API does after enabling: ask a worker to drain it now.
    await worker.enqueue.drain([hook.id]);
    const again = await disabled(accountId, hook.id);
    expect(again.disabledReason).toBe(row.disabledReason);
    expect(again.failureStreak).toBe(1);
    await expectNoRetry(hook.id, 2);
    const { items } = (await listWebhookDeliveries(db, accountId, hook.id, { limit: 10 }))!;
    expect(items).toEqual([expect.objectContaining({ status: 'pending', attempts: 2, nextAttemptAt: null })]);
    expect(target.requests).toHaveLength(0);
  } finally {
    await stopWorker(worker);
  }
});

test('enabled again once the network is allowed, the endpoint gets what waited, in order, the refused delivery first', async () => {
  const accountId = await newAccount();
  const target = await receiver();
  const { endpoint: hook, secret } = await endpoint(accountId, `http://hooks.example.test:${target.port}/in`);
  const refusing = startWorker(policy([watcherNetwork]), 'before');
  try {
    await recordEvents(accountId, 3);
    await disabled(accountId, hook.id);
    await expectNoRetry(hook.id);
  } finally {
    await stopWorker(refusing);
  }
  const [refused] = (await listWebhookDeliveries(db, accountId, hook.id, { limit: 10 }))!.items.slice(-1);
  expect(refused).toMatchObject({ attempts: 1, status: 'pending' });

  // The installation allows the network (DIRSYNC_ALLOWED_NETWORKS) and its workers restart.
  const allowing = startWorker(policy(['127.0.0.0/8']), 'after');
  try {
    await updateWebhookEndpoint(db, accountId, hook.id, { enabled: true });
    await allowing.enqueue.drain([hook.id]);
    await waitFor(async () => (await listWebhookDeliveries(db, accountId, hook.id, { limit: 10 }))!.items.every((d) => d.status === 'succeeded'), { what: 'the three deliveries' });
    expect(target.events().map((e) => e.data['n'])).toEqual([1, 2, 3]);
    expect(target.requests[0]!.headers['webhook-id']).toBe(refused!.messageId);
    for (const request of target.requests) expect(new Webhook(secret).verify(request.body, request.headers)).toBeTruthy();
    const { items } = (await listWebhookDeliveries(db, accountId, hook.id, { limit: 10 }))!;
    expect(items.map((d) => d.attempts)).toEqual([1, 1, 2]);
    expect(await getWebhookEndpoint(db, accountId, hook.id)).toMatchObject({ enabled: true, failureStreak: 0, disabledReason: null });
  } finally {
    await stopWorker(allowing);
  }
});
