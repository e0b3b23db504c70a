import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Webhook } from 'standardwebhooks';
import { close, connect, createAccount, createKeyRing, createWebhookEndpoint, type Db, generateSecretKey, type KeyRing, listWebhookDeliveries, recordWebhookEvent } from '@dirsync/db';
import { DestinationPolicy } from '@dirsync/providers';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, waitFor, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import { postWebhook } from '../src/webhooks/index.ts';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';

// Where a webhook signing secret could leak once deliveries have gone out and been retried: every
// key the queue left in the real Redis (job data, options, results, failure reasons, delayed and
// completed sets, events streams), the delivery records and the log lines.

let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let ring: KeyRing;
let worker: DirsyncWorker;
let redis: Redis;
const logLines: string[] = [];
const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });

beforeAll(async () => {
  database = await createTestDatabase('webhooks_attack');
  db = connect(database.url, { max: 4 });
  prefix = createTestQueuePrefix('webhooks_attack');
  ring = createKeyRing({ current: generateSecretKey() });
  redis = new Redis(testRedisUrl, { maxRetriesPerRequest: 3 });
  worker = createWorker({
    db,
    redisUrl: testRedisUrl,
    prefix: prefix.prefix,
    concurrency: 1,
    keyRing: ring,
    logger,
    workerId: 'webhooks-attack',
    createProvider: () => {
      throw new Error('no sync in this test');
    },
    lockRetryDelayMs: 100,
    runRotations: false,
    controlConcurrency: 0,
    destinations: new DestinationPolicy({ allowedNetworks: ['127.0.0.0/8'] }),
    webhooks: { allowHttp: true, backoff: { baseMs: 100, maxMs: 200 }, disableAfterFailures: 10, maxAttempts: 10, timeoutMs: 5_000, sweepIntervalMs: 100, busyDelayMs: 100 },
  });
});

afterAll(async () => {
  await worker.close();
  redis.disconnect();
  await prefix.cleanup();
  await close(db);
  await database.drop();
});

/** Every value stored under the test's queue prefix, as text. */
async function redisContents(): Promise<string> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix.prefix}*`, 'COUNT', 1000);
    keys.push(...found);
    cursor = next;
  } while (cursor !== '0');
  const parts: string[] = [];
  for (const key of keys) {
    const type = await redis.type(key);
    if (type === 'string') parts.push((await redis.get(key)) ?? '');
    else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
    else if (type === 'list') parts.push(JSON.stringify(await redis.lrange(key, 0, -1)));
    else if (type === 'set') parts.push(JSON.stringify(await redis.smembers(key)));
    else if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(key, '0', '-1')));
    else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
  }
  return `${keys.join('\n')}\n${parts.join('\n')}`;
}

test('after retried and successful deliveries, no form of the signing secret is in Redis, the delivery records or the logs', async () => {
  const accountId = (await createAccount(db, { name: `acct-${randomUUID()}` })).id;
  const bodies: string[] = [];
  const headers: Record<string, string>[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      headers.push(Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])));
      // The first two attempts fail, so retries are scheduled through delayed jobs.
      res.writeHead(bodies.length <= 2 ? 500 : 200).end(bodies.length <= 2 ? 'try again' : 'ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/in`;
    const { endpoint, secret } = await createWebhookEndpoint(db, ring, { accountId, url, events: ['*'] });
    await recordWebhookEvent(db, { accountId, type: 'webhook.test', data: { n: 1 } });
    await recordWebhookEvent(db, { accountId, type: 'webhook.test', data: { n: 2 } });
    await waitFor(async () => (await listWebhookDeliveries(db, accountId, endpoint.id, { limit: 10 }))?.items.every((d) => d.status === 'succeeded') === true && bodies.length === 4, {
      what: 'both deliveries succeeded after two failures',
      timeoutMs: 30_000,
    });
    // Both retried deliveries verify with the secret, so the secret was really in use.
    expect(bodies.map((body, i) => (new Webhook(secret).verify(body, headers[i]!) as { data: { n: number } }).data.n)).toEqual([1, 1, 1, 2]);

    const key = secret.slice('whsec_'.length);
    const forms = [secret, key, Buffer.from(key, 'base64').toString('hex'), Buffer.from(key, 'base64').toString('base64url')];
    const stored = await redisContents();
    expect(stored).toContain(endpoint.id);
    const deliveries = JSON.stringify(await listWebhookDeliveries(db, accountId, endpoint.id, { limit: 10 }));
    const rows = JSON.stringify(await db.$client`select * from webhook_endpoints where id = ${endpoint.id}`);
    const deliveryRows = JSON.stringify(await db.$client`select d.*, e.body from webhook_deliveries d join webhook_events e on e.id = d.event_id where d.endpoint_id = ${endpoint.id}`);
    const logs = logLines.join('\n');
    for (const form of forms) {
      expect(stored).not.toContain(form);
      expect(deliveries).not.toContain(form);
      expect(rows).not.toContain(form);
      expect(deliveryRows).not.toContain(form);
      expect(logs).not.toContain(form);
    }
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}, 60_000);

test("a receiver's name server that never answers is bounded by the delivery timeout too", async () => {
  // The endpoint's owner controls the name server of its host: a lookup can hang as long as the
  // resolver lets it. The attempt must end within its timeout all the same.
  let asked = 0;
  const policy = new DestinationPolicy({
    resolve: () => {
      asked++;
      return new Promise(() => undefined);
    },
  });
  const attempt = await postWebhook({
    url: 'https://slow-dns.example.com/hook',
    secret: `whsec_${Buffer.alloc(32, 1).toString('base64')}`,
    messageId: 'msg_1',
    body: '{}',
    policy,
    allowHttp: false,
    timeoutMs: 200,
    maxResponseBytes: 1024,
  });
  expect(asked).toBe(1);
  expect(attempt).toMatchObject({ ok: false, refused: false, statusCode: null });
  expect(attempt.error).toMatch(/within 200 ms/);
});
