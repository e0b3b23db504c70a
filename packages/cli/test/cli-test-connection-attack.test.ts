import { startSlapd, type SlapdServer } from '@dirsync/testkit';
import { type CliEnvironment, createCliEnvironment, ldapIntegrationArgs } from './support/run-cli.ts';

// `dirsync integrations test` runs Test Connection in its own process; what it reports must be
// what the API's and the console's (run in a worker) report for the same directory, warnings
// included: here a group whose mapped object is too large to show, which the worker reports as
// a `mapping` warning.

const timeoutMs = 120_000;
let server: SlapdServer;
let cli: CliEnvironment;

beforeAll(async () => {
  server = await startSlapd({ tls: true });
  const client = await server.client();
  try {
    await client.add(`cn=oversized,ou=groups,${server.suffix}`, { objectClass: ['groupOfNames'], cn: 'oversized', member: [server.readerDn], description: 'x'.repeat(80_000) });
  } finally {
    await client.unbind();
  }
  cli = await createCliEnvironment('clitestmapping');
  await cli.ok(['accounts', 'add', 'acme']);
}, timeoutMs);

afterAll(async () => {
  await cli?.cleanup();
  await server?.stop();
}, timeoutMs);

test('an entry the mapping cannot show is a mapping warning of the command, as of the worker', async () => {
  const id = (await cli.ok(ldapIntegrationArgs(server, 'oversized'), { input: server.readerPassword })).trim();
  const text = await cli.run(['integrations', 'test', id]);
  expect(text.code).toBe(0);
  expect(text.stdout).toMatch(/^! mapping: 1 of the first entries could not be mapped: the mapped object has \d+ bytes, too large to show in a preview$/m);
  expect(text.stdout).toMatch(/^connection OK$/m);

  const json = JSON.parse(await cli.ok(['integrations', 'test', id, '--json'])) as { ok: boolean; checks: Array<{ name: string; ok: boolean; warning?: boolean }> };
  expect(json.ok).toBe(true);
  expect(json.checks.at(-1)).toMatchObject({ name: 'mapping', ok: true, warning: true });
}, timeoutMs);
