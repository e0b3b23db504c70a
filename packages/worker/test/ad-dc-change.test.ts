import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
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
  addAdGroup,
  addAdUser,
  backupSamba,
  createTestDatabase,
  createTestQueuePrefix,
  restoreSamba,
  type SambaServer,
  type SharedSamba,
  sambaAdminClient,
  sharedSamba,
  testRedisUrl,
  type TestDatabase,
  type TestQueuePrefix,
  waitFor,
  testDestinations,
} from '@dirsync/testkit';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';

// The integration is pointed at another domain controller of the same domain: a DC restored from
// a backup of the run's DC, on a loopback address of its own. Same objects (objectGUIDs), but
// another DC name, another invocationId and USNs of its own: the cursor cannot continue there,
// so the delta runs as a full sync that says why, and finds nothing to create or delete.

const timeoutMs = 180_000;

let dc: SharedSamba;
let second: SambaServer | undefined;
let backupFile: string | undefined;
let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let queue: Queue;
let worker: DirsyncWorker;
let integrationId: string;
let ou: string;

function settings(target: { ldapsUrl: string; caPem: string; dnsHostName: string }): Record<string, unknown> {
  return { url: target.ldapsUrl, bindDn: dc.reader.dn, tls: { caPem: target.caPem, serverName: target.dnsHostName }, baseDns: [ou] };
}

beforeAll(async () => {
  dc = await sharedSamba();
  ou = await dc.createOu('addcchange');
  const admin = await dc.client();
  try {
    const users = [];
    for (let i = 0; i < 5; i++) users.push(await addAdUser(admin, ou, `Member ${i}`));
    await addAdGroup(admin, ou, 'Crew', users);
  } finally {
    await admin.unbind();
  }
  database = await createTestDatabase('addcchange');
  db = connect(database.url, { max: 4 });
  prefix = createTestQueuePrefix('addcchange');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  const ring = createKeyRing({ current: generateSecretKey() });
  const account = await createAccount(db, { name: 'ad-dc-change' });
  integrationId = (
    await createIntegration(db, { accountId: account.id, kind: 'active_directory', name: 'dc change', settings: settings(dc) }, { ring, plaintext: dc.reader.password })
  ).id;
  worker = createWorker({ db, destinations: testDestinations, redisUrl: testRedisUrl, prefix: prefix.prefix, concurrency: 1, keyRing: ring, logger: pino({ level: 'silent' }), workerId: 'ad-dc' });
}, timeoutMs);

afterAll(async () => {
  await worker?.close();
  await queue?.close();
  await prefix?.cleanup();
  if (db) await close(db);
  await database?.drop();
  await second?.stop();
  if (backupFile) await rm(dirname(backupFile), { recursive: true, force: true });
  await dc?.release();
}, timeoutMs);

async function sync(mode: 'full' | 'delta'): Promise<Run> {
  const runId = randomUUID();
  await queue.add('sync', { integrationId, runId, mode, trigger: 'manual', dryRun: false }, { jobId: `run.${runId}`, attempts: 1 });
  return waitFor(
    async () => {
      const run = await getRun(db, runId);
      return run && !['queued', 'running'].includes(run.status) ? run : undefined;
    },
    { timeoutMs: 100_000, what: `the ${mode} run to end` },
  );
}

test('a delta against another DC of the domain runs full, says why, and continues there', async () => {
  const first = await sync('delta');
  expect(first).toMatchObject({ status: 'succeeded', mode: 'full', created: 6, membershipsAdded: 5 });
  const before = (await getIntegration(db, integrationId))?.cursor as Record<string, unknown>;
  expect(before).toMatchObject({ dc: dc.dnsHostName });

  backupFile = await backupSamba(dc);
  second = await restoreSamba(backupFile, { hostName: 'dc2', adminPassword: dc.adminPassword });
  expect(second.dnsHostName).toBe('dc2.dirsync.test');
  expect(second.host).not.toBe(dc.host);
  await updateIntegration(db, integrationId, { settings: settings(second) });

  const switched = await sync('delta');
  expect(switched).toMatchObject({ status: 'succeeded', mode: 'full', created: 0, updated: 0, deleted: 0, membershipsAdded: 0, membershipsRemoved: 0 });
  expect(switched.reason).toMatch(/taken on domain controller dc1\.dirsync\.test, but dc2\.dirsync\.test answers now; USNs are per DC/);
  const cursor = (await getIntegration(db, integrationId))?.cursor as Record<string, unknown>;
  expect(cursor).toMatchObject({ dc: 'dc2.dirsync.test' });
  // A restore makes a new database identity.
  expect(cursor['invocationId']).not.toBe(before['invocationId']);

  // From now on deltas continue on the new DC.
  const admin = await sambaAdminClient(second);
  try {
    await admin.modify(`CN=Member 0,${ou}`, new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Moved DC'] }) }));
  } finally {
    await admin.unbind();
  }
  const next = await sync('delta');
  expect(next).toMatchObject({ status: 'succeeded', mode: 'delta', updated: 1, created: 0, deleted: 0 });
}, timeoutMs);
