import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatedUser, startSlapd, type SlapdServer } from '@dirsync/testkit';
import { type CliEnvironment, type CliResult, createCliEnvironment, ldapIntegrationArgs } from './support/run-cli.ts';

// Attribute mapping from the command line: refused with each problem at its path when the
// settings are written, samples printed by `integrations test`, and `integrations preview`
// trying an unsaved mapping against a real slapd.

const timeoutMs = 60_000;

let server: SlapdServer;
let cli: CliEnvironment;
let integrationId: string;
let dir: string;

beforeAll(async () => {
  server = await startSlapd({ tls: true, data: { users: 5, groups: 1, membersPerGroup: 2 } });
  cli = await createCliEnvironment('climap');
  dir = await mkdtemp(join(tmpdir(), 'dirsync-mapping-'));
  expect((await cli.run(['accounts', 'add', 'acme'])).code).toBe(0);
}, timeoutMs);

afterAll(async () => {
  await cli?.cleanup();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, timeoutMs);

function expectOk(result: CliResult): string {
  expect(result).toMatchObject({ code: 0, stderr: '' });
  return result.stdout;
}

const mapping = { user: { title: { from: 'title', transform: [{ op: 'lower' }, { op: 'first' }] } }, extra: { user: { employee: { from: 'employeeNumber' } } } };

test('integrations add refuses a mapping that breaks the rules, naming each problem by its path', async () => {
  const bad = { attributeMapping: { user: { dn: { from: 'cn' }, mail: { from: 'mail', transform: [{ op: 'regex', pattern: '(x*)*y' }] } } } };
  const result = await cli.run([...ldapIntegrationArgs(server, 'bad'), '--settings', JSON.stringify(bad)], { input: server.readerPassword });
  expect(result.code).not.toBe(0);
  expect(result.stderr).toMatch(/attributeMapping\.user\.dn: "dn" is structural/);
  expect(result.stderr).toMatch(/attributeMapping\.user\.mail\.transform\[0\]\.pattern: pattern nests quantifiers/);

  integrationId = expectOk(await cli.run([...ldapIntegrationArgs(server, 'mapped'), '--settings', JSON.stringify({ attributeMapping: mapping })], { input: server.readerPassword })).trim();
  expect(integrationId).toMatch(/^[0-9a-f-]{36}$/);
}, timeoutMs);

test('integrations test prints a few samples mapped with the stored mapping before its verdict', async () => {
  const lines = expectOk(await cli.run(['integrations', 'test', integrationId])).trim().split('\n');
  expect(lines.at(-1)).toBe('connection OK');
  const samples = lines.slice(lines.indexOf('mapped samples:') + 1, -1);
  expect(samples).toHaveLength(3);
  for (const line of samples) {
    const sample = JSON.parse(line.slice(line.indexOf(': ') + 2)) as { attributes: Record<string, string>; extra: Record<string, string> };
    const index = Number(/(\d+)$/.exec(sample.attributes['uid'] ?? '')?.[1]);
    expect(sample.attributes['title']).toBe(String(generatedUser(index)['title']).toLowerCase());
    expect(sample.extra).toEqual({ employee: String(generatedUser(index)['employeeNumber']) });
  }
}, timeoutMs);

test('integrations preview tries an unsaved mapping from a file, and refuses an invalid one', async () => {
  const file = join(dir, 'mapping.json');
  await writeFile(file, JSON.stringify({ user: { mail: { from: 'mail', transform: [{ op: 'regex', pattern: '^([^@]+)@' }, { op: 'first' }] } } }));
  const preview = JSON.parse(expectOk(await cli.run(['integrations', 'preview', integrationId, '--mapping-file', file, '--limit', '6', '--json']))) as {
    samples: { type: string; attributes: Record<string, unknown>; extra: Record<string, unknown> }[];
    problems: unknown[];
  };
  expect(preview.problems).toEqual([]);
  expect(preview.samples.map((s) => s.type)).toEqual(['user', 'user', 'user', 'user', 'user', 'group']);
  for (const sample of preview.samples.filter((s) => s.type === 'user')) {
    expect(sample.attributes['mail']).toBe(sample.attributes['uid']);
    // The stored mapping is replaced, not merged: its extra is gone.
    expect(sample.extra).toEqual({});
  }
  await writeFile(file, JSON.stringify({ user: { members: { from: 'member' } } }));
  const refused = await cli.run(['integrations', 'preview', integrationId, '--mapping-file', file]);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/attributeMapping\.user\.members: "members" is structural/);
}, timeoutMs);
