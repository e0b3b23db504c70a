import { createServer, type AddressInfo } from 'node:net';
import { testPgServerUrl } from '@dirsync/testkit';
import { type CliEnvironment, createCliEnvironment } from './support/run-cli.ts';

// A command whose database cannot be used says why in one line — the driver's reason, which is
// what an operator fixes — and never the statement or its values that the query builder wraps
// it in.

const timeoutMs = 60_000;

let cli: CliEnvironment;
let closedPort: number;

beforeAll(async () => {
  cli = await createCliEnvironment('clidbdown');
  // A port that was free a moment ago and has nothing listening now.
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closedPort = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
}, timeoutMs);

afterAll(async () => {
  await cli?.cleanup();
}, timeoutMs);

test('a database that refuses connections: the reason in one line, exit 1, no statement', async () => {
  const result = await cli.run(['integrations', 'list', '--account', 'acme'], { env: { DATABASE_URL: `postgres://postgres@127.0.0.1:${closedPort}/dirsync` } });
  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr).toBe(`dirsync: the database could not be used: connect ECONNREFUSED 127.0.0.1:${closedPort}\n`);
}, timeoutMs);

test('a role the server does not know is named as the server words it; the statement and its values stay out', async () => {
  const url = new URL(testPgServerUrl);
  url.username = 'dirsync_no_such_role';
  url.password = 'not-a-real-password-4711';
  url.pathname = '/postgres';
  const result = await cli.run(['integrations', 'list', '--account', 'acme-secret-name'], { env: { DATABASE_URL: url.toString() } });
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(/^dirsync: the database could not be used: .*dirsync_no_such_role/);
  expect(result.stderr.split('\n').filter((line) => line !== '')).toHaveLength(1);
  for (const hidden of ['Failed query', 'select', 'acme-secret-name', 'not-a-real-password-4711']) expect(result.stderr).not.toContain(hidden);
}, timeoutMs);

test('--debug adds the stack and the driver error it was caused by', async () => {
  const result = await cli.run(['integrations', 'list', '--account', 'acme', '--debug'], { env: { DATABASE_URL: `postgres://postgres@127.0.0.1:${closedPort}/dirsync` } });
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(/^dirsync: the database could not be used: connect ECONNREFUSED/);
  expect(result.stderr).toMatch(/^caused by: Error: connect ECONNREFUSED/m);
}, timeoutMs);
