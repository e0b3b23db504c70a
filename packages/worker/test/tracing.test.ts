import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import { SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { close, connect, createAccount, createIntegration, createKeyRing, generateSecretKey, getRun, type Db, type KeyRing, type Run } from '@dirsync/db';
import { SYNC_QUEUE } from '@dirsync/jobs';
import { createProvider } from '@dirsync/providers';
import { createTestDatabase, createTestQueuePrefix, startSlapd, testDestinations, testRedisUrl, waitFor, type SlapdServer, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import { createTracing, otlpTracesUrl, type Tracing } from '../src/ops/tracing.ts';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';

// A sync run as a trace, on a real OpenLDAP directory: one root span per run attempt with the
// pipeline's phases as children, read back through the SDK's in-memory exporter; the OTLP/HTTP
// exporter posting to a collector; and no tracer at all when none is configured.

const timeoutMs = 120_000;
const users = 60;
const groups = 3;
const batchSize = 25;

let server: SlapdServer;
let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let queue: Queue;
let worker: DirsyncWorker;
let tracing: Tracing;
let ring: KeyRing;
let accountId: string;
const exporter = new InMemorySpanExporter();

beforeAll(async () => {
  server = await startSlapd({ data: { users, groups, membersPerGroup: 10, seed: 5 } });
  database = await createTestDatabase('worker_tracing');
  db = connect(database.url, { max: 4 });
  prefix = createTestQueuePrefix('worker-tracing');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  ring = createKeyRing({ current: generateSecretKey() });
  accountId = (await createAccount(db, { name: 'tracing' })).id;
  tracing = await createTracing({ processor: new SimpleSpanProcessor({ exporter }) });
  worker = startWorker(prefix.prefix, 'tracing-worker', tracing.tracer);
}, timeoutMs);

afterAll(async () => {
  await worker?.close();
  await tracing?.shutdown();
  await queue?.close();
  await prefix?.cleanup();
  if (db) await close(db);
  await database?.drop();
  await server?.stop();
}, timeoutMs);

async function integration(name: string, password: string): Promise<string> {
  const settings = {
    url: server.url,
    bindDn: server.readerDn,
    tls: { mode: 'none', allowInsecure: true },
    users: { baseDns: [`ou=people,${server.suffix}`] },
    groups: { baseDns: [`ou=groups,${server.suffix}`] },
    pageSize: 20,
  };
  return (await createIntegration(db, { accountId, kind: 'ldap', name, settings }, { ring, plaintext: password })).id;
}

/** A worker on the test's database, directory and key ring, taking jobs under `queuePrefix` and recording spans with `tracer`. */
function startWorker(queuePrefix: string, workerId: string, tracer: Tracing['tracer']): DirsyncWorker {
  return createWorker({
    db,
    redisUrl: testRedisUrl,
    prefix: queuePrefix,
    concurrency: 1,
    keyRing: ring,
    logger: pino({ level: 'silent' }),
    workerId,
    destinations: testDestinations,
    createProvider: (kind, stored, secret) => createProvider(kind, stored, secret, { destinations: testDestinations }),
    batchSize,
    tracer,
  });
}

/** Queues a full sync of the integration on `on` and waits until its run has ended. */
async function runToEnd(on: Queue, integrationId: string): Promise<Run> {
  const runId = randomUUID();
  await on.add('sync', { integrationId, runId, mode: 'full', trigger: 'manual', dryRun: false }, { jobId: `run.${runId}`, attempts: 1 });
  return waitFor(
    async () => {
      const found = await getRun(db, runId);
      return found && !['queued', 'running', 'retrying'].includes(found.status) ? found : undefined;
    },
    { timeoutMs: 90_000, what: 'the run to end' },
  );
}

async function sync(integrationId: string): Promise<{ run: Run; spans: ReadableSpan[] }> {
  const run = await runToEnd(queue, integrationId);
  // The root span ends once the run is recorded: wait for it, then take its whole trace.
  const root = await waitFor(() => exporter.getFinishedSpans().find((span) => span.name === 'dirsync.run' && span.attributes['dirsync.run.id'] === run.id), {
    timeoutMs: 30_000,
    what: 'the run span',
  });
  const traceId = root.spanContext().traceId;
  return { run, spans: exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId) };
}

const idOf = (span: ReadableSpan) => span.spanContext().spanId;
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
// Milliseconds: the SDK may take a span's start or end at millisecond precision, its neighbour's finer.
const ms = ([seconds, nanoseconds]: readonly [number, number]) => Math.floor(seconds * 1000 + nanoseconds / 1e6);

test('a full sync is one trace: the run, its fetch with a write per batch, members and sweep', async () => {
  const { run, spans } = await sync(await integration('traced', server.readerPassword));
  expect(run.status).toBe('succeeded');
  const objects = users + groups;
  expect(run.fetched).toBe(objects);

  const roots = spans.filter((span) => span.name === 'dirsync.run');
  expect(roots).toHaveLength(1);
  const root = roots[0]!;
  expect(parentOf(root)).toBeUndefined();
  expect(root.attributes).toMatchObject({
    'dirsync.run.id': run.id,
    'dirsync.integration.id': run.integrationId,
    'dirsync.integration.kind': 'ldap',
    'dirsync.account.id': accountId,
    'dirsync.run.status': 'succeeded',
    'dirsync.run.mode': 'full',
    'dirsync.objects.fetched': objects,
    'dirsync.objects.created': objects,
  });
  expect(root.status.code).not.toBe(SpanStatusCode.ERROR);
  expect(root.resource.attributes['service.name']).toBe('dirsync-worker');

  const named = (name: string) => spans.filter((span) => span.name === name);
  const [fetch] = named('dirsync.fetch');
  const [members] = named('dirsync.members');
  const [sweep] = named('dirsync.sweep');
  expect([named('dirsync.fetch').length, named('dirsync.members').length, named('dirsync.sweep').length]).toEqual([1, 1, 1]);
  for (const phase of [fetch!, members!, sweep!]) expect(parentOf(phase)).toBe(idOf(root));
  expect(fetch!.attributes).toMatchObject({ 'dirsync.sync.mode': 'full', 'dirsync.objects.fetched': objects, 'dirsync.objects.failed': 0 });
  expect(sweep!.attributes).toMatchObject({ 'dirsync.objects.would_delete': 0, 'dirsync.deletions.allowed': true });

  // Every batch written is a child of the fetch that streamed it, and together they hold every object.
  const writes = named('dirsync.write');
  expect(writes.length).toBeGreaterThanOrEqual(Math.ceil(objects / batchSize));
  for (const write of writes) expect(parentOf(write)).toBe(idOf(fetch!));
  expect(writes.reduce((sum, write) => sum + Number(write.attributes['dirsync.batch.objects'] ?? 0), 0)).toBe(objects);

  // Phases in order, inside the run.
  expect(ms(fetch!.startTime)).toBeGreaterThanOrEqual(ms(root.startTime));
  expect(ms(members!.startTime)).toBeGreaterThanOrEqual(ms(fetch!.endTime));
  expect(ms(sweep!.startTime)).toBeGreaterThanOrEqual(ms(members!.endTime));
  expect(ms(root.endTime)).toBeGreaterThanOrEqual(ms(sweep!.endTime));
}, timeoutMs);

test('a failed run is a failed trace that carries the run report’s message, never the password', async () => {
  const password = `wrong-${randomUUID()}`;
  const { run, spans } = await sync(await integration('traced-failing', password));
  expect(run.status).toBe('failed');
  const root = spans.find((span) => span.name === 'dirsync.run')!;
  expect(root.status.code).toBe(SpanStatusCode.ERROR);
  expect(root.status.message).toBe(run.error);
  expect(root.attributes['dirsync.run.status']).toBe('failed');
  expect(JSON.stringify(spans.map((span) => [span.name, span.attributes, span.status, span.events]))).not.toContain(password);
}, timeoutMs);

test('without an endpoint there is no tracer; with one, a run\'s spans are posted to <endpoint>/v1/traces with the configured headers', async () => {
  const off = await createTracing({});
  expect(off.tracer).toBeUndefined();
  await off.shutdown();
  expect(otlpTracesUrl('http://collector:4318/')).toBe('http://collector:4318/v1/traces');

  const received: Array<{ url: string | undefined; type: string | undefined; authorization: string | undefined; tenant: string | undefined; body: string }> = [];
  const collector = createServer((request: IncomingMessage, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      received.push({ url: request.url, type: request.headers['content-type'], authorization: request.headers.authorization, tenant: request.headers['x-scope-orgid'] as string | undefined, body });
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  collector.listen(0, '127.0.0.1');
  await once(collector, 'listening');
  const address = collector.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  // A worker of its own (its own queues) whose tracer exports over OTLP/HTTP.
  const otlpPrefix = createTestQueuePrefix('worker-tracing-otlp');
  const otlpQueue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: otlpPrefix.prefix });
  const token = `collector-token-${randomUUID()}`;
  const otlp = await createTracing({ endpoint: `http://127.0.0.1:${address.port}`, headers: { authorization: `Bearer ${token}`, 'x-scope-orgid': 'dirsync' }, serviceVersion: '1.2.3' });
  const otlpWorker = startWorker(otlpPrefix.prefix, 'tracing-otlp-worker', otlp.tracer);
  try {
    const { id: runId } = await runToEnd(otlpQueue, await integration('traced-otlp', server.readerPassword));
    await otlpWorker.close();
    // Shutting down flushes the batch.
    await otlp.shutdown();
    expect(received.length).toBeGreaterThan(0);
    for (const request of received) {
      expect(request).toMatchObject({ url: '/v1/traces', type: 'application/json', authorization: `Bearer ${token}`, tenant: 'dirsync' });
    }
    const bodies = received.map((request) => request.body).join('\n');
    expect(bodies).toContain(runId);
    for (const name of ['dirsync.run', 'dirsync.fetch', 'dirsync.write', 'dirsync.members', 'dirsync.sweep']) expect(bodies).toContain(`"${name}"`);
    // The token is a header, nothing else: not in any span.
    expect(bodies).not.toContain(token);
  } finally {
    await otlpWorker.close();
    await otlp.shutdown();
    await otlpQueue.close();
    await otlpPrefix.cleanup();
    collector.close();
  }
}, timeoutMs);

test('a collector that refuses the exports is reported (status and count, never the token), the first failure at once', async () => {
  const collector = createServer((request: IncomingMessage, response) => {
    request.resume();
    request.on('end', () => response.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"bad token"}'));
  });
  collector.listen(0, '127.0.0.1');
  await once(collector, 'listening');
  const address = collector.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  const token = `collector-token-${randomUUID()}`;
  const failures: Array<{ reason: string; failedExports: number }> = [];
  const tracing = await createTracing({ endpoint: `http://127.0.0.1:${address.port}`, headers: { authorization: `Bearer ${token}` }, onExportFailure: (f) => failures.push(f) });
  try {
    for (let i = 0; i < 3; i += 1) tracing.tracer?.startSpan(`refused-${i}`).end();
    // Shutting down flushes the batch: one export, refused.
    await tracing.shutdown();
    expect(failures).toHaveLength(1);
    expect(failures[0]?.failedExports).toBe(1);
    expect(failures[0]?.reason).toMatch(/^HTTP 401: /);
    expect(JSON.stringify(failures)).not.toContain(token);
  } finally {
    collector.close();
  }
}, timeoutMs);
