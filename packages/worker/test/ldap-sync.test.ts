import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Attribute, Change } from 'ldapts';
import { pino } from 'pino';
import {
  close,
  connect,
  createAccount,
  createIntegration,
  createKeyRing,
  type Db,
  generateSecretKey,
  getIntegration,
  getRun,
  type Run,
  updateIntegration,
} from '@dirsync/db';
import { SYNC_QUEUE } from '@dirsync/jobs';
import {
  createTestDatabase,
  createTestQueuePrefix,
  groupDn,
  startSlapd,
  testRedisUrl,
  userDn,
  waitFor,
  type SlapdServer,
  type TestDatabase,
  type TestQueuePrefix,
} from '@dirsync/testkit';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';

// End to end through the real pieces: slapd, the generic LDAP provider built from stored settings
// and the decrypted bind password, the BullMQ worker, Redis and PostgreSQL.

const users = 120;
const groups = 8;
const membersPerGroup = 20;

let server: SlapdServer;
let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let queue: Queue;
let worker: DirsyncWorker;
let integrationId: string;

function settings(baseOu = 'ou=people', groupsOu = 'ou=groups'): Record<string, unknown> {
  return {
    url: server.url,
    bindDn: server.readerDn,
    tls: { mode: 'none', allowInsecure: true },
    users: { baseDns: [`${baseOu},${server.suffix}`] },
    groups: { baseDns: [`${groupsOu},${server.suffix}`] },
    pageSize: 25,
    // Entries are loaded and changed within the same second: a small overlap re-reads them.
    deltaOverlapSeconds: 5,
  };
}

beforeAll(async () => {
  server = await startSlapd({ data: { users, groups, membersPerGroup, seed: 7 } });
  database = await createTestDatabase('ldapsync');
  db = connect(database.url, { max: 6 });
  prefix = createTestQueuePrefix('ldapsync');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  const ring = createKeyRing({ current: generateSecretKey() });
  const account = await createAccount(db, { name: 'ldap-e2e' });
  integrationId = (
    await createIntegration(
      db,
      { accountId: account.id, kind: 'ldap', name: 'openldap', settings: settings() },
      { ring, plaintext: server.readerPassword },
    )
  ).id;
  worker = createWorker({
    db,
    redisUrl: testRedisUrl,
    prefix: prefix.prefix,
    concurrency: 1,
    keyRing: ring,
    logger: pino({ level: 'silent' }),
    workerId: 'e2e',
  });
});

afterAll(async () => {
  await worker?.close();
  await queue?.close();
  await prefix?.cleanup();
  if (db) await close(db);
  await database?.drop();
  await server?.stop();
});

async function sync(mode: 'full' | 'delta', attempts = 1): Promise<Run> {
  const runId = randomUUID();
  await queue.add(
    'sync',
    { integrationId, runId, mode, trigger: 'manual', dryRun: false },
    { jobId: `run.${runId}`, attempts, backoff: { type: 'fixed', delay: 10 } },
  );
  return waitFor(
    async () => {
      const run = await getRun(db, runId);
      return run && !['queued', 'running'].includes(run.status) ? run : undefined;
    },
    { timeoutMs: 60_000, what: `the ${mode} run to end` },
  );
}

async function liveCount(type: 'user' | 'group'): Promise<number> {
  const [row] = await db.$client<{ n: number }[]>`
    select count(*)::int as n from directory_objects
    where integration_id = ${integrationId} and type = ${type} and deleted_at is null`;
  return row?.n ?? 0;
}

async function objectByDn(dn: string) {
  const [row] = await db.$client<{ external_id: string; deleted: boolean; attributes: Record<string, unknown> }[]>`
    select external_id, deleted_at is not null as deleted, attributes from directory_objects
    where integration_id = ${integrationId} and dn = ${dn.toLowerCase()}`;
  return row;
}

async function liveEdgeCount(): Promise<number> {
  const [row] = await db.$client<{ n: number }[]>`
    select count(*)::int as n from memberships where integration_id = ${integrationId} and deleted_at is null`;
  return row?.n ?? 0;
}

test('the first full sync creates every user, group and membership', async () => {
  const run = await sync('delta');
  expect(run).toMatchObject({
    status: 'succeeded',
    mode: 'full',
    fetched: users + groups,
    created: users + groups,
    membershipsAdded: groups * membersPerGroup,
    failed: 0,
  });
  expect(run.reason).toMatch(/^no cursor/);
  expect(await liveCount('user')).toBe(users);
  expect(await liveCount('group')).toBe(groups);
  expect(await liveEdgeCount()).toBe(groups * membersPerGroup);
  expect((await getIntegration(db, integrationId))?.cursor).toMatchObject({ kind: 'ldap' });
});

test('a delta picks up a change, an addition and a move, and deletes nothing', async () => {
  const moved = await objectByDn(userDn(7));
  const admin = await server.client();
  try {
    await admin.modify(userDn(3), new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Chief Tester'] }) }));
    await admin.add(`uid=newcomer,ou=people,${server.suffix}`, {
      objectClass: ['inetOrgPerson'],
      uid: 'newcomer',
      cn: 'New Comer',
      sn: 'Comer',
    });
    await admin.add(`ou=alumni,ou=people,${server.suffix}`, { objectClass: ['organizationalUnit'], ou: 'alumni' });
    await admin.modifyDN(userDn(7), `uid=user0000007,ou=alumni,ou=people,${server.suffix}`);
    await admin.del(userDn(9));
  } finally {
    await admin.unbind();
  }

  const run = await sync('delta');
  expect(run).toMatchObject({ status: 'succeeded', mode: 'delta', created: 1, deleted: 0, failed: 0 });
  // The overlap window re-reads recent entries; unchanged ones cost nothing.
  expect(run.updated).toBe(2);
  expect((await objectByDn(userDn(3)))?.attributes).toMatchObject({ title: 'Chief Tester' });
  const afterMove = await objectByDn(`uid=user0000007,ou=alumni,ou=people,${server.suffix}`);
  expect(afterMove?.external_id).toBe(moved?.external_id);
  expect((await objectByDn(userDn(9)))?.deleted).toBe(false);
});

test('the next full sync soft-deletes the removed entry and its memberships', async () => {
  const edgesBefore = await liveEdgeCount();
  const gone = await objectByDn(userDn(9));
  const [memberOf] = await db.$client<{ n: number }[]>`
    select count(*)::int as n from memberships
    where integration_id = ${integrationId} and member_external_id = ${gone!.external_id} and deleted_at is null`;

  const run = await sync('full');
  expect(run).toMatchObject({ status: 'succeeded', deleted: 1, created: 0 });
  expect((await objectByDn(userDn(9)))?.deleted).toBe(true);
  expect(await liveEdgeCount()).toBe(edgesBefore - (memberOf?.n ?? 0) + run.membershipsAdded);
  expect(await liveCount('user')).toBe(users);
});

test('a source that suddenly returns nothing (wrong base DN) is blocked and deletes nothing', async () => {
  const admin = await server.client();
  try {
    await admin.add(`ou=empty,${server.suffix}`, { objectClass: ['organizationalUnit'], ou: 'empty' });
  } finally {
    await admin.unbind();
  }
  await updateIntegration(db, integrationId, { settings: settings('ou=empty', 'ou=empty') });
  try {
    const run = await sync('full');
    expect(run).toMatchObject({ status: 'blocked_by_threshold', deleted: 0, wouldDelete: users + groups });
    expect(await liveCount('user')).toBe(users);
    expect((await getIntegration(db, integrationId))?.status).toBe('blocked_by_threshold');
  } finally {
    await updateIntegration(db, integrationId, { settings: settings() });
  }
});

test('a directory that stops answering fails the run with a clear reason and deletes nothing', async () => {
  await server.kill();
  try {
    const run = await sync('full');
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/^unavailable: /);
    expect(run.error).not.toContain(server.readerPassword);
    expect(await liveCount('user')).toBe(users);
  } finally {
    await server.restart();
  }
  const recovered = await sync('full');
  expect(recovered).toMatchObject({ status: 'succeeded', deleted: 0 });
});
