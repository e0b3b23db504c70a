import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { close, connect, createAccount, createIntegration, createKeyRing, type Db, generateSecretKey, type KeyRing, storeSecretCandidate } from '@dirsync/db';
import { createControlClient, type ControlClient } from '@dirsync/jobs';
import { createTestDatabase, createTestQueuePrefix, testDestinations, testRedisUrl, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';

// The attack of issue 8: an LDAP integration aimed at the platform's own Redis, with a password
// carrying Redis commands, tried through Test Connection and the new-password check, on a worker
// whose policy allows loopback (as the test setup needs) and on one with the strict default.

let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let ring: KeyRing;
let accountId: string;
let redis: Redis;
const workers: DirsyncWorker[] = [];
const controls: ControlClient[] = [];
const logLines: string[] = [];
const timeoutMs = 20_000;
const redisTarget = new URL(testRedisUrl);
const redisUrl = `ldap://${redisTarget.hostname}:${redisTarget.port || 6379}`;

beforeAll(async () => {
  database = await createTestDatabase('dest_attack');
  db = connect(database.url, { max: 4 });
  ring = createKeyRing({ current: generateSecretKey() });
  accountId = (await createAccount(db, { name: 'mallory' })).id;
  redis = new Redis(testRedisUrl, { maxRetriesPerRequest: 3 });
});

afterAll(async () => {
  await Promise.all(controls.map((c) => c.close()));
  await Promise.all(workers.map((w) => w.close()));
  redis.disconnect();
  await prefix?.cleanup();
  await close(db);
  await database.drop();
});

afterEach(async () => {
  await Promise.all(controls.splice(0).map((c) => c.close()));
  await Promise.all(workers.splice(0).map((w) => w.close()));
  await prefix.cleanup();
});

function startWorker(label: string, destinations: typeof testDestinations | undefined): ControlClient {
  prefix = createTestQueuePrefix(label);
  workers.push(
    createWorker({
      db,
      redisUrl: testRedisUrl,
      prefix: prefix.prefix,
      concurrency: 1,
      keyRing: ring,
      logger: pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) }),
      workerId: label,
      runRotations: false,
      ...(destinations ? { destinations } : {}),
    }),
  );
  const control = createControlClient({ connection: testRedisUrl, prefix: prefix.prefix });
  controls.push(control);
  return control;
}

async function redisIntegration(url: string, secret: string): Promise<string> {
  const settings = {
    url,
    bindDn: 'cn=reader,dc=example,dc=com',
    tls: { mode: 'none', allowInsecure: true },
    users: { baseDns: ['ou=people,dc=example,dc=com'] },
    groups: { baseDns: ['ou=groups,dc=example,dc=com'] },
  };
  return (await createIntegration(db, { accountId, kind: 'ldap', name: `redis-${randomUUID()}`, settings }, { ring, plaintext: secret })).id;
}

test.each([
  ['a worker allowing loopback (the platform endpoint is refused all the same)', testDestinations],
  ['a worker with the strict default policy', undefined],
])('Test Connection and the password check to the platform Redis are refused on %s; no command runs', async (_label, policy) => {
  const control = startWorker(policy ? 'attack-allowed' : 'attack-strict', policy);
  const key = `dirsync-attack-${randomBytes(6).toString('hex')}`;
  const injected = `hunter2\r\nSET ${key} pwned\r\n`;
  for (const url of [redisUrl, `ldap://[::ffff:${redisTarget.hostname}]:${redisTarget.port || 6379}`]) {
    // The password check refuses the injected secret first; a clean password meets the policy.
    const stored = await redisIntegration(url, injected);
    const viaTest = await control.testConnection(stored, { timeoutMs });
    expect(viaTest.ok).toBe(false);
    expect(viaTest.checks).toEqual([expect.objectContaining({ ok: false, detail: expect.stringMatching(/carriage return, line feed or NUL|resolves to/) })]);

    const clean = await redisIntegration(url, 'hunter2-but-clean');
    const refused = await control.testConnection(clean, { timeoutMs });
    expect(refused.ok).toBe(false);
    const expected = policy
      ? /^refused: ldap:\/\/\S+ resolves to (::ffff:)?127\.0\.0\.1 port \d+, the platform's own Redis, which no integration may reach \(not even inside DIRSYNC_ALLOWED_NETWORKS\)$/
      : /^refused: ldap:\/\/\S+ resolves to (::ffff:)?127\.0\.0\.1( \(it carries the IPv4 address 127\.0\.0\.1\))?, a loopback address, which this installation does not allow; .*DIRSYNC_ALLOWED_NETWORKS/;
    expect(refused.checks).toEqual([{ name: 'destination', ok: false, detail: expect.stringMatching(expected) }]);

    // PUT .../secret runs the same check on the worker with the candidate secret.
    const candidate = await storeSecretCandidate(db, ring, clean, injected);
    const checked = await control.checkSecret(clean, candidate, { timeoutMs });
    expect(checked.ok).toBe(false);
    const cleanCandidate = await storeSecretCandidate(db, ring, clean, 'another-clean-one');
    expect((await control.checkSecret(clean, cleanCandidate, { timeoutMs })).checks[0]).toMatchObject({ name: 'destination', ok: false });
  }
  expect(await redis.exists(key)).toBe(0);
  expect(logLines.join('\n')).not.toContain(key);
});
