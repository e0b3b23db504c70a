import { type CliEnvironment, createCliEnvironment } from './support/run-cli.ts';

// `dirsync webhooks` as an operator runs it: a child process per command, configured only
// through the environment. The secret is printed by add and rotate-secret, and nowhere else.

const timeoutMs = 120_000;
let cli: CliEnvironment;

beforeAll(async () => {
  cli = await createCliEnvironment('cliwebhooks');
}, timeoutMs);

afterAll(async () => {
  await cli?.cleanup();
}, timeoutMs);

const ok = (args: string[]) => cli.ok(args);

test('add shows the secret once; list, show, update, test, deliveries, redeliver, rotate-secret and remove work within the account', async () => {
  await ok(['accounts', 'add', 'hooks-one']);
  await ok(['accounts', 'add', 'hooks-two']);
  const added = JSON.parse(await ok(['webhooks', 'add', 'https://hooks.example.com/in', '--account', 'hooks-one', '--events', 'run.failed,action.needed', '--json'])) as { id: string; secret: string; events: string[] };
  expect(added.secret).toMatch(/^whsec_/);
  expect(added.events).toEqual(['run.failed', 'action.needed']);
  const secretBody = added.secret.slice('whsec_'.length);

  const listed = await ok(['webhooks', 'list', '--account', 'hooks-one', '--json']);
  expect((JSON.parse(listed) as Array<{ id: string }>).map((e) => e.id)).toEqual([added.id]);
  expect(listed).not.toContain(secretBody);
  expect(await ok(['webhooks', 'show', added.id, '--account', 'hooks-one'])).not.toContain(secretBody);

  // Another account sees nothing of it and can change nothing.
  const foreign = await cli.run(['webhooks', 'show', added.id, '--account', 'hooks-two']);
  expect(foreign.code).not.toBe(0);
  expect(foreign.stderr).toContain('no webhook');
  expect((await cli.run(['webhooks', 'remove', added.id, '--account', 'hooks-two'])).code).not.toBe(0);
  expect(JSON.parse(await ok(['webhooks', 'list', '--account', 'hooks-two', '--json']))).toEqual([]);

  // https only unless the installation allows http; no credentials in the URL.
  const plain = await cli.run(['webhooks', 'add', 'http://hooks.example.com/in', '--account', 'hooks-one']);
  expect(plain.code).not.toBe(0);
  expect(plain.stderr).toContain('https');
  expect((await cli.run(['webhooks', 'add', 'https://u:p@hooks.example.com/in', '--account', 'hooks-one'])).stderr).toContain('user name or password');
  expect((await cli.run(['webhooks', 'add', 'https://hooks.example.com/in', '--account', 'hooks-one', '--events', 'nope'])).stderr).toContain('unknown event type');

  const disabled = JSON.parse(await ok(['webhooks', 'update', added.id, '--account', 'hooks-one', '--disable', '--json'])) as { enabled: boolean; disabledReason: string };
  expect(disabled).toMatchObject({ enabled: false, disabledReason: 'disabled by an administrator' });
  expect(JSON.parse(await ok(['webhooks', 'update', added.id, '--account', 'hooks-one', '--enable', '--json']))).toMatchObject({ enabled: true, failureStreak: 0 });

  expect(await ok(['webhooks', 'test', added.id, '--account', 'hooks-one'])).toMatch(/test event queued \(msg_[0-9a-f]{32}\)/);
  const deliveries = JSON.parse(await ok(['webhooks', 'deliveries', added.id, '--account', 'hooks-one', '--json'])) as Array<{ id: string; eventType: string; status: string }>;
  expect(deliveries).toEqual([expect.objectContaining({ eventType: 'webhook.test', status: 'pending' })]);
  expect((await cli.run(['webhooks', 'redeliver', added.id, deliveries[0]!.id, '--account', 'hooks-two'])).code).not.toBe(0);
  expect(await ok(['webhooks', 'redeliver', added.id, deliveries[0]!.id, '--account', 'hooks-one'])).toContain('queued again');

  const rotated = (await ok(['webhooks', 'rotate-secret', added.id, '--account', 'hooks-one'])).trim();
  expect(rotated).toMatch(/^whsec_/);
  expect(rotated).not.toBe(added.secret);

  expect(await ok(['webhooks', 'remove', added.id, '--account', 'hooks-one'])).toContain('removed');
  expect(JSON.parse(await ok(['webhooks', 'list', '--account', 'hooks-one', '--json']))).toEqual([]);
}, timeoutMs);
