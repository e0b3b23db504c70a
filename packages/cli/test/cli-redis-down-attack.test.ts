import { randomUUID } from 'node:crypto';
import { close, connect, createConnector, createKeyRing } from '@dirsync/db';
import { generateCertificate } from '@dirsync/providers';
import { startThrowawayRedis, type ThrowawayRedis } from '@dirsync/testkit';
import { type CliEnvironment, createCliEnvironment } from './support/run-cli.ts';

// A command that needs the queue while Redis is away: it must say so and exit 1 (as the README's
// exit codes promise for "a server could not be reached"), not wait for Redis forever. Redis is
// a server of the test's own, stopped, so its port refuses connections.

const timeoutMs = 120_000;
let cli: CliEnvironment;
let redis: ThrowawayRedis;

beforeAll(async () => {
  cli = await createCliEnvironment('cliredisdown');
  redis = await startThrowawayRedis();
  await cli.ok(['accounts', 'add', 'acme']);
}, timeoutMs);

afterAll(async () => {
  await redis?.stop();
  await cli?.cleanup();
}, timeoutMs);

test('sync with Redis unreachable exits 1 with one line naming the queue, records no run and shows no password', async () => {
  const id = (
    await cli.ok(['integrations', 'add', '--account', 'acme', '--kind', 'ldap', '--name', 'dir', '--url', 'ldaps://ldap.example.com', '--bind-dn', 'cn=r,dc=example,dc=com', '--users-base', 'dc=example,dc=com', '--groups-base', 'dc=example,dc=com', '--no-password'])
  ).trim();
  await redis.stop();
  const password = 's3cret-redis-password';
  const down = `redis://:${password}@127.0.0.1:${redis.port}/0`;

  const started = Date.now();
  const result = await cli.run(['sync', id], { env: { REDIS_URL: down } });
  const took = Date.now() - started;
  expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 1, stdout: '' });
  expect(result.stderr).toMatch(/^dirsync: the queue \(Redis\) cannot be reached right now\n$/);
  expect(result.stderr).not.toContain(password);
  // Generous: the command waits a little for Redis, not for ever (runCli kills it after 60 s).
  expect(took).toBeLessThan(45_000);
  expect(JSON.parse(await cli.ok(['runs', 'list', '--integration', id, '--json']))).toEqual({ items: [] });
}, timeoutMs);

test('rotate --queue with Redis unreachable exits 1 with the same line instead of waiting for Redis', async () => {
  const db = connect(cli.database.url, { max: 1 });
  let connectorId: string;
  try {
    const connector = await createConnector(
      db,
      createKeyRing({ current: cli.env['DIRSYNC_SECRET_KEY']! }),
      { name: 'queued-rotation', description: 'rotated through the queue', clientId: randomUUID(), applicationObjectId: randomUUID(), homeTenantId: randomUUID(), redirectUri: 'https://dirsync.example.com/v1/consent/callback' },
      await generateCertificate({ subject: 'dirsync connector', validityDays: 30 }),
    );
    connectorId = connector.id;
  } finally {
    await close(db);
  }
  await redis.stop();
  const started = Date.now();
  const result = await cli.run(['connectors', 'rotate', connectorId, '--queue', '--json'], { env: { REDIS_URL: `redis://127.0.0.1:${redis.port}/0` } });
  expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({ code: 1, stdout: '', stderr: 'dirsync: the queue (Redis) cannot be reached right now\n' });
  expect(Date.now() - started).toBeLessThan(45_000);
}, timeoutMs);
