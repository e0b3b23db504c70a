import { auditPageSchema } from '@dirsync/contracts';
import { type CliEnvironment, createCliEnvironment } from './support/run-cli.ts';

// `dirsync audit` as an operator runs it: the account's events, with the API's filters.

const timeoutMs = 120_000;
let cli: CliEnvironment;

beforeAll(async () => {
  cli = await createCliEnvironment('cliaudit');
}, timeoutMs);

afterAll(async () => {
  await cli?.cleanup();
}, timeoutMs);

const ok = (args: string[]) => cli.ok(args);

test('lists the account’s events (JSON and table), filtered and paged; another account sees none of them', async () => {
  await ok(['accounts', 'add', 'audit-one']);
  await ok(['accounts', 'add', 'audit-two']);
  const hook = JSON.parse(await ok(['webhooks', 'add', 'https://hooks.example.com/a', '--account', 'audit-one', '--json'])) as { id: string; secret: string };
  await ok(['webhooks', 'rotate-secret', hook.id, '--account', 'audit-one']);

  const all = auditPageSchema.parse(JSON.parse(await ok(['audit', '--account', 'audit-one', '--json'])));
  expect(all.items.map((e) => [e.action, e.actor])).toEqual([
    ['webhook.secret_rotated', 'cli'],
    ['webhook.created', 'cli'],
    ['account.created', 'cli'],
  ]);
  expect(all.nextCursor).toBeNull();
  expect(JSON.stringify(all)).not.toContain(hook.secret.slice('whsec_'.length));

  const created = auditPageSchema.parse(JSON.parse(await ok(['audit', '--account', 'audit-one', '--action', 'webhook.created', '--json'])));
  expect(created.items.map((e) => e.action)).toEqual(['webhook.created']);
  const first = auditPageSchema.parse(JSON.parse(await ok(['audit', '--account', 'audit-one', '--limit', '1', '--json'])));
  expect(first.items).toHaveLength(1);
  expect(first.nextCursor).not.toBeNull();
  const second = auditPageSchema.parse(JSON.parse(await ok(['audit', '--account', 'audit-one', '--limit', '1', '--cursor', first.nextCursor!, '--json'])));
  expect(second.items.map((e) => e.action)).toEqual(['webhook.created']);
  expect(second.nextCursor).not.toBeNull();

  const text = await ok(['audit', '--account', 'audit-one']);
  expect(text).toContain('webhook.secret_rotated');
  expect(text).toContain(hook.id);
  expect(auditPageSchema.parse(JSON.parse(await ok(['audit', '--account', 'audit-two', '--action', 'webhook.*', '--json']))).items).toEqual([]);
  expect(await ok(['audit', '--account', 'audit-two', '--actor', 'nobody-acts-so'])).toContain('no audit events');
}, timeoutMs);

test('refuses bad filters and unknown accounts with one clear line', async () => {
  const badSince = await cli.run(['audit', '--account', 'audit-one', '--since', 'yesterday']);
  expect(badSince.code).not.toBe(0);
  expect(badSince.stderr).toMatch(/--since: /);
  const badIntegration = await cli.run(['audit', '--account', 'audit-one', '--integration', 'nope']);
  expect(badIntegration.stderr).toMatch(/--integration: /);
  const nobody = await cli.run(['audit', '--account', 'nobody']);
  expect(nobody.code).not.toBe(0);
  expect(nobody.stderr).toContain('no account "nobody"');
}, timeoutMs);
