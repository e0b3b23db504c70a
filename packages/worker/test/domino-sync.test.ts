import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Attribute, Change } from 'ldapts';
import { pino } from 'pino';
import { close, connect, createAccount, createIntegration, createKeyRing, type Db, generateSecretKey, getRun, type Run } from '@dirsync/db';
import { SYNC_QUEUE } from '@dirsync/jobs';
import {
  createTestDatabase,
  createTestQueuePrefix,
  type DominoServer,
  dominoNames,
  dominoUnid,
  startDomino,
  testRedisUrl,
  type TestDatabase,
  type TestQueuePrefix,
  waitFor,
  testDestinations,
} from '@dirsync/testkit';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';

// A Domino Directory end to end: slapd with the Domino schema, answering at most 20 entries per
// search and without paged results, the Domino provider built from stored settings, the worker,
// Redis and PostgreSQL. Tests continue from the state the previous one left.

const timeoutMs = 60_000;
const spec = { people: 150, groups: 6, membersPerGroup: 12, timestamp: new Date(Math.floor((Date.now() - 86_400_000) / 1000) * 1000) };
const memberships = spec.groups * spec.membersPerGroup + 1;

let server: DominoServer;
let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let queue: Queue;
let worker: DirsyncWorker;
let stamped: string;
let hashed: string;
let ring: ReturnType<typeof createKeyRing>;
let accountId: string;
const others: DominoServer[] = [];

beforeAll(async () => {
  server = await startDomino({ data: spec, sizeLimit: 20, paging: false });
  database = await createTestDatabase('dominosync');
  db = connect(database.url, { max: 4 });
  prefix = createTestQueuePrefix('dominosync');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  ring = createKeyRing({ current: generateSecretKey() });
  const account = await createAccount(db, { name: 'domino-e2e' });
  accountId = account.id;
  const add = async (name: string, change: Record<string, unknown>) =>
    (
      await createIntegration(
        db,
        {
          accountId: account.id,
          kind: 'domino',
          name,
          settings: {
            url: server.url,
            bindDn: server.readerDn,
            tls: { mode: 'none', allowInsecure: true },
            users: { baseDns: [server.suffix] },
            groups: { baseDns: [`ou=Groups,${server.suffix}`] },
            // Loaded entries are stamped a second apart: without overlap a delta re-reads only the
            // entry that set the mark, so its counts are exact.
            deltaOverlapSeconds: 0,
            ...change,
          },
        },
        { ring, plaintext: server.readerPassword },
      )
    ).id;
  stamped = await add('stamped', {});
  hashed = await add('hashed', { deltaMethod: 'hash' });
  worker = createWorker({ db, destinations: testDestinations, redisUrl: testRedisUrl, prefix: prefix.prefix, concurrency: 1, keyRing: ring, logger: pino({ level: 'silent' }), workerId: 'domino-e2e' });
}, timeoutMs);

afterAll(async () => {
  await worker?.close();
  await queue?.close();
  await prefix?.cleanup();
  if (db) await close(db);
  await database?.drop();
  await server?.stop();
  await Promise.all(others.map((s) => s.stop()));
}, timeoutMs);

async function sync(integrationId: string, mode: 'full' | 'delta'): Promise<Run> {
  const runId = randomUUID();
  await queue.add('sync', { integrationId, runId, mode, trigger: 'manual', dryRun: false }, { jobId: `run.${runId}`, attempts: 1 });
  return waitFor(
    async () => {
      const run = await getRun(db, runId);
      return run && !['queued', 'running'].includes(run.status) ? run : undefined;
    },
    { timeoutMs: 50_000, what: `the ${mode} run to end` },
  );
}

async function stored(integrationId: string, externalId: string) {
  const [row] = await db.$client<{ attributes: Record<string, unknown>; deleted: boolean }[]>`
    select attributes, deleted_at is not null as deleted from directory_objects where integration_id = ${integrationId} and external_id = ${externalId}`;
  return row;
}

async function liveEdges(integrationId: string): Promise<number> {
  const [row] = await db.$client<{ n: number }[]>`select count(*)::int as n from memberships where integration_id = ${integrationId} and deleted_at is null`;
  return row?.n ?? 0;
}

async function admin(change: (client: Awaited<ReturnType<DominoServer['client']>>) => Promise<void>): Promise<void> {
  const client = await server.client();
  try {
    await change(client);
  } finally {
    await client.unbind();
  }
}

test('the first syncs read every person and group past the size limit, split by name', async () => {
  for (const id of [stamped, hashed]) {
    const run = await sync(id, 'delta');
    expect(run).toMatchObject({ status: 'succeeded', mode: 'full', created: spec.people + spec.groups, membershipsAdded: memberships, failed: 0, issueCount: 0 });
    expect(await liveEdges(id)).toBe(memberships);
  }
  expect((await stored(stamped, dominoUnid('person', 3)))?.attributes).toMatchObject({ uid: 'p00003', mail: 'p00003@acme.example' });
}, timeoutMs);

test('a modifyTimestamp delta reads only the changes; a hash delta reads everything and writes the same', async () => {
  const newcomer = 'AA00000000000000000000000000BEEF';
  await admin(async (c) => {
    await c.modify(dominoNames.personDn(3, server.suffix), new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Buyer'] }) }));
    await c.add(`cn=New Comer,ou=Sales,${server.suffix}`, {
      objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson', 'dominoPerson'],
      cn: 'New Comer',
      sn: 'Comer',
      dominoUNID: newcomer,
    });
  });
  const delta = await sync(stamped, 'delta');
  // The change, the newcomer, and the last group loaded (stamped at the mark: read, unchanged).
  expect(delta).toMatchObject({ status: 'succeeded', mode: 'delta', fetched: 3, created: 1, updated: 1, unchanged: 1, deleted: 0 });
  const hashDelta = await sync(hashed, 'delta');
  expect(hashDelta).toMatchObject({ status: 'succeeded', mode: 'delta', fetched: spec.people + spec.groups + 1, created: 1, updated: 1, deleted: 0 });
  expect(hashDelta.unchanged).toBe(spec.people + spec.groups - 1);
  for (const id of [stamped, hashed]) expect((await stored(id, dominoUnid('person', 3)))?.attributes['title']).toBe('Buyer');
}, timeoutMs);

test('deletions are found by full syncs, with their memberships', async () => {
  const gone = 4;
  await admin((c) => c.del(dominoNames.personDn(gone, server.suffix)));
  const delta = await sync(stamped, 'delta');
  expect(delta).toMatchObject({ status: 'succeeded', deleted: 0 });
  expect((await stored(stamped, dominoUnid('person', gone)))?.deleted).toBe(false);
  const edgesBefore = await liveEdges(stamped);

  const full = await sync(stamped, 'full');
  expect(full).toMatchObject({ status: 'succeeded', mode: 'full', deleted: 1, created: 0 });
  expect((await stored(stamped, dominoUnid('person', gone)))?.deleted).toBe(true);
  expect(full.membershipsRemoved).toBeGreaterThan(0);
  expect(await liveEdges(stamped)).toBe(edgesBefore - full.membershipsRemoved);
}, timeoutMs);

test('a person added back, with its UNID or a new one, gets its memberships in the delta that brings it back, though its groups are not read', async () => {
  const gone = 4;
  const dn = dominoNames.personDn(gone, server.suffix);
  const itsGroups = Array.from({ length: spec.groups }, (_, j) => j).filter((j) =>
    Array.from({ length: spec.membersPerGroup }, (_, m) => (j * 3 + m) % spec.people).includes(gone),
  ).length;
  expect(itsGroups).toBeGreaterThan(0);
  const person = (unid: string) => ({
    objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson', 'dominoPerson'],
    cn: dominoNames.personCn(gone),
    sn: 'Back',
    dominoUNID: unid,
  });
  const edges = await liveEdges(stamped);

  await admin((c) => c.add(dn, person(dominoUnid('person', gone))));
  const restored = await sync(stamped, 'delta');
  expect(restored).toMatchObject({ status: 'succeeded', mode: 'delta', created: 0, restored: 1, updated: 0, membershipsAdded: itsGroups });
  expect((await stored(stamped, dominoUnid('person', gone)))?.deleted).toBe(false);
  expect(await liveEdges(stamped)).toBe(edges + itsGroups);

  await admin((c) => c.del(dn));
  expect(await sync(stamped, 'full')).toMatchObject({ status: 'succeeded', deleted: 1, membershipsRemoved: itsGroups });
  const unid = 'BB00000000000000000000000000CAFE';
  await admin((c) => c.add(dn, person(unid)));
  const recreated = await sync(stamped, 'delta');
  expect(recreated).toMatchObject({ status: 'succeeded', mode: 'delta', created: 1, restored: 0, updated: 0, membershipsAdded: itsGroups });
  expect(await liveEdges(stamped)).toBe(edges + itsGroups);
  const [edge] = await db.$client<{ n: number }[]>`
    select count(*)::int as n from memberships where integration_id = ${stamped} and deleted_at is null and member_external_id = ${unid}`;
  expect(edge?.n).toBe(itsGroups);
  // The full sync that follows has nothing to add.
  expect(await sync(stamped, 'full')).toMatchObject({ status: 'succeeded', created: 0, deleted: 0, membershipsAdded: 0, membershipsRemoved: 0 });
}, timeoutMs);

test('full syncs of a capped directory of kanji-only people and hyphenated groups read every entry exactly once and delete nothing', async () => {
  const digits = (n: number) => [...String(n)].map((d) => '〇一二三四五六七八九'[Number(d)]).join('');
  const names = { people: 600, groups: 520, membersPerGroup: 2 };
  const other = await startDomino({
    data: { ...names, personNames: (i) => `${['山田', '山本', '山口'][i % 3]}${['太郎', '花子', '健'][Math.floor(i / 3) % 3]}${digits(i)}`, groupNames: (j) => `DL-app-${j + 1}` },
    sizeLimit: 200,
    paging: false,
  });
  others.push(other);
  const id = (
    await createIntegration(
      db,
      {
        accountId,
        kind: 'domino',
        name: 'kanji',
        settings: {
          url: other.url,
          bindDn: other.readerDn,
          tls: { mode: 'none', allowInsecure: true },
          users: { baseDns: [other.suffix] },
          groups: { baseDns: [`ou=Groups,${other.suffix}`] },
        },
      },
      { ring, plaintext: other.readerPassword },
    )
  ).id;
  const edges = names.groups * names.membersPerGroup + 1;
  const first = await sync(id, 'full');
  expect(first).toMatchObject({ status: 'succeeded', created: names.people + names.groups, membershipsAdded: edges, failed: 0, issueCount: 0 });
  // A second full read is the same union of parts: nothing is missed, so nothing is deleted.
  const second = await sync(id, 'full');
  expect(second).toMatchObject({ status: 'succeeded', fetched: names.people + names.groups, created: 0, deleted: 0, membershipsAdded: 0, membershipsRemoved: 0 });
  expect(await liveEdges(id)).toBe(edges);
  expect((await stored(id, dominoUnid('person', 4)))?.attributes['displayName']).toBe('山本花子四');
}, timeoutMs);
