import { generateKeyPairSync } from 'node:crypto';
import { Queue } from 'bullmq';
import pino from 'pino';
import { close, connect, connectors, createConnector, createKeyRing, type Db, generateSecretKey, getConnector, updateConnector } from '@dirsync/db';
import { ROTATION_QUEUE, rotationJobId } from '@dirsync/jobs';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, type TestDatabase } from '@dirsync/testkit';
import { createScheduler } from '../src/index.ts';

let database: TestDatabase;
let db: Db;
const ring = createKeyRing({ current: generateSecretKey() });
const logger = pino({ level: 'silent' });
let count = 0;

async function connector(rotationCron = '0 3 * * *') {
  count += 1;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const print = count.toString(16).padStart(40, '0');
  return createConnector(
    db,
    ring,
    {
      name: `connector ${count}`,
      description: 'rotation schedule test',
      clientId: `11111111-2222-4333-8444-${String(count).padStart(12, '0')}`,
      applicationObjectId: `99999999-2222-4333-8444-${String(count).padStart(12, '0')}`,
      homeTenantId: 'f0f0f0f0-2222-4333-8444-555555555555',
      redirectUri: 'https://dirsync.example/consent',
      rotationCron,
    },
    {
      certificatePem: '-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n',
      privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      thumbprint: print,
      thumbprintSha256: print.padEnd(64, '0'),
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 86_400_000),
    },
  );
}

beforeAll(async () => {
  database = await createTestDatabase('rotation_schedule');
  db = connect(database.url, { max: 4 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

afterEach(async () => {
  // Each test ticks with its own connectors.
  await db.delete(connectors);
});

test('each connector\'s daily rotation is enqueued once per slot, by one of several replicas', async () => {
  const prefix = createTestQueuePrefix('rotation');
  const queue = new Queue(ROTATION_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  const replicas = [1, 2, 3].map(() => createScheduler({ db, connection: testRedisUrl, prefix: prefix.prefix, logger }));
  try {
    const c = await connector();
    // Never scheduled: the latest slot (03:00 today) is due at once.
    const first = await Promise.all(replicas.map((r) => r.tick(new Date('2030-01-10T12:00:00Z'))));
    const enqueued = first.flatMap((r) => r.rotations.enqueued);
    expect(enqueued).toEqual([{ connectorId: c.id, slot: new Date('2030-01-10T03:00:00Z'), jobId: rotationJobId(c.id, Date.parse('2030-01-10T03:00:00Z')), deduplicated: false }]);
    expect((await getConnector(db, c.id))?.rotationScheduledFor).toEqual(new Date('2030-01-10T03:00:00Z'));
    // Later the same day: nothing new.
    expect((await replicas[0]!.tick(new Date('2030-01-10T23:59:00Z'))).rotations.enqueued).toEqual([]);
    // The next day's slot, after downtime too: one job for the latest slot only.
    const next = await Promise.all(replicas.map((r) => r.tick(new Date('2030-01-13T04:00:00Z'))));
    expect(next.flatMap((r) => r.rotations.enqueued).map((s) => s.slot)).toEqual([new Date('2030-01-13T03:00:00Z')]);
    const jobs = await queue.getJobs(['waiting', 'delayed', 'prioritized']);
    expect(jobs.map((j) => j.data).sort((a, b) => String(a.scheduledFor).localeCompare(String(b.scheduledFor)))).toEqual([
      { connectorId: c.id, trigger: 'schedule', scheduledFor: '2030-01-10T03:00:00.000Z', requestedBy: 'scheduler' },
      { connectorId: c.id, trigger: 'schedule', scheduledFor: '2030-01-13T03:00:00.000Z', requestedBy: 'scheduler' },
    ]);
  } finally {
    await Promise.all(replicas.map((r) => r.stop()));
    await queue.close();
    await prefix.cleanup();
  }
});

test('a connector with an unusable rotation schedule is reported and the others still rotate', async () => {
  const prefix = createTestQueuePrefix('rotation-bad');
  const scheduler = createScheduler({ db, connection: testRedisUrl, prefix: prefix.prefix, logger });
  try {
    const good = await connector('30 1 * * *');
    const bad = await connector();
    await updateConnector(db, bad.id, { rotationCron: 'every day' });
    const result = await scheduler.tick(new Date('2030-02-01T02:00:00Z'));
    expect(result.rotations.enqueued.map((s) => s.connectorId)).toEqual([good.id]);
    expect(result.rotations.failed).toEqual([{ connectorId: bad.id, error: expect.stringMatching(/"every day"/) }]);
    const off = createScheduler({ db, connection: testRedisUrl, prefix: prefix.prefix, logger, rotations: false });
    expect((await off.tick(new Date('2030-02-02T02:00:00Z'))).rotations).toEqual({ enqueued: [], failed: [] });
    await off.stop();
  } finally {
    await scheduler.stop();
    await prefix.cleanup();
  }
});
