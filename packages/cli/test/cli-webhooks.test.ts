import { randomUUID } from 'node:crypto';
import { webhookDeliverySchema, webhookEndpointSchema, webhookEndpointWithSecretSchema, webhookTestAcceptedSchema } from '@dirsync/contracts';
import { z } from 'zod';
import { type CliEnvironment, createCliEnvironment } from './support/run-cli.ts';

// `dirsync webhooks` as an operator runs it: a child process per command, configured only
// through the environment. The secret is printed by add and rotate-secret, and nowhere else.
// `--json` prints what the `/v1/webhooks` routes answer: each output is parsed with their schema.

const timeoutMs = 120_000;
let cli: CliEnvironment;

beforeAll(async () => {
  cli = await createCliEnvironment('cliwebhooks');
}, timeoutMs);

afterAll(async () => {
  await cli?.cleanup();
}, timeoutMs);

const ok = (args: string[]) => cli.ok(args);
const endpointList = z.object({ items: z.array(webhookEndpointSchema.strict()) }).strict();
const deliveryList = z.object({ items: z.array(webhookDeliverySchema.strict()), nextCursor: z.string().nullable() }).strict();

test('add shows the secret once; list, show, update, test, deliveries, redeliver, rotate-secret and remove work within the account', async () => {
  await ok(['accounts', 'add', 'hooks-one']);
  await ok(['accounts', 'add', 'hooks-two']);
  const added = webhookEndpointWithSecretSchema.strict().parse(JSON.parse(await ok(['webhooks', 'add', 'https://hooks.example.com/in', '--account', 'hooks-one', '--events', 'run.failed,action.needed', '--json'])));
  expect(added.secret).toMatch(/^whsec_/);
  expect(added.events).toEqual(['run.failed', 'action.needed']);
  const secretBody = added.secret.slice('whsec_'.length);

  const listed = await ok(['webhooks', 'list', '--account', 'hooks-one', '--json']);
  expect(endpointList.parse(JSON.parse(listed)).items.map((e) => e.id)).toEqual([added.id]);
  expect(listed).not.toContain(secretBody);
  expect(await ok(['webhooks', 'show', added.id, '--account', 'hooks-one'])).not.toContain(secretBody);
  const shown = await ok(['webhooks', 'show', added.id, '--account', 'hooks-one', '--json']);
  expect(shown).not.toContain(secretBody);
  const { secret: _secret, ...endpoint } = added;
  expect(webhookEndpointSchema.strict().parse(JSON.parse(shown))).toEqual(endpoint);
  expect(Date.parse(endpoint.createdAt)).not.toBeNaN();

  // Another account sees nothing of it and can change nothing.
  const foreign = await cli.run(['webhooks', 'show', added.id, '--account', 'hooks-two']);
  expect(foreign.code).not.toBe(0);
  expect(foreign.stderr).toContain('no webhook');
  expect((await cli.run(['webhooks', 'remove', added.id, '--account', 'hooks-two'])).code).not.toBe(0);
  expect(JSON.parse(await ok(['webhooks', 'list', '--account', 'hooks-two', '--json']))).toEqual({ items: [] });

  // https only unless the installation allows http; no credentials in the URL.
  const plain = await cli.run(['webhooks', 'add', 'http://hooks.example.com/in', '--account', 'hooks-one']);
  expect(plain.code).not.toBe(0);
  expect(plain.stderr).toContain('https');
  expect((await cli.run(['webhooks', 'add', 'https://u:p@hooks.example.com/in', '--account', 'hooks-one'])).stderr).toContain('user name or password');
  expect((await cli.run(['webhooks', 'add', 'https://hooks.example.com/in', '--account', 'hooks-one', '--events', 'nope'])).stderr).toContain('unknown event type');

  const disabled = webhookEndpointSchema.strict().parse(JSON.parse(await ok(['webhooks', 'update', added.id, '--account', 'hooks-one', '--disable', '--json'])));
  expect(disabled).toMatchObject({ enabled: false, disabledReason: 'disabled by an administrator' });
  expect(JSON.parse(await ok(['webhooks', 'update', added.id, '--account', 'hooks-one', '--enable', '--json']))).toMatchObject({ enabled: true, failureStreak: 0 });

  expect(await ok(['webhooks', 'test', added.id, '--account', 'hooks-one'])).toMatch(/test event queued \(msg_[0-9a-f]{32}\)/);
  const tested = webhookTestAcceptedSchema.strict().parse(JSON.parse(await ok(['webhooks', 'test', added.id, '--account', 'hooks-one', '--json'])));
  expect(tested.messageId).toMatch(/^msg_[0-9a-f]{32}$/);
  const deliveries = deliveryList.parse(JSON.parse(await ok(['webhooks', 'deliveries', added.id, '--account', 'hooks-one', '--json']))).items;
  // Newest first: the --json test's delivery, then the first one.
  expect(deliveries).toEqual([
    expect.objectContaining({ endpointId: added.id, messageId: tested.messageId, eventType: 'webhook.test', status: 'pending' }),
    expect.objectContaining({ endpointId: added.id, eventType: 'webhook.test', status: 'pending' }),
  ]);
  expect((await cli.run(['webhooks', 'redeliver', added.id, deliveries[0]!.id, '--account', 'hooks-two'])).code).toBe(3);
  expect(await ok(['webhooks', 'redeliver', added.id, deliveries[0]!.id, '--account', 'hooks-one'])).toContain('queued again');
  const redelivered = webhookDeliverySchema.strict().parse(JSON.parse(await ok(['webhooks', 'redeliver', added.id, deliveries[1]!.id, '--account', 'hooks-one', '--json'])));
  expect(redelivered).toMatchObject({ id: deliveries[1]!.id, endpointId: added.id, messageId: deliveries[1]!.messageId, status: 'pending' });

  const rotated = (await ok(['webhooks', 'rotate-secret', added.id, '--account', 'hooks-one'])).trim();
  expect(rotated).toMatch(/^whsec_/);
  expect(rotated).not.toBe(added.secret);

  expect(await ok(['webhooks', 'remove', added.id, '--account', 'hooks-one'])).toContain('removed');
  expect(JSON.parse(await ok(['webhooks', 'list', '--account', 'hooks-one', '--json']))).toEqual({ items: [] });
}, timeoutMs);

test('test and redeliver --json: something named that does not exist exits 3 and prints nothing on stdout', async () => {
  await ok(['accounts', 'add', 'hooks-three']);
  const endpoint = webhookEndpointWithSecretSchema.parse(JSON.parse(await ok(['webhooks', 'add', 'https://hooks.example.com/three', '--account', 'hooks-three', '--json'])));
  const missing = randomUUID();
  const cases: [string[], RegExp][] = [
    [['webhooks', 'test', missing, '--account', 'hooks-three', '--json'], /no webhook/],
    [['webhooks', 'test', endpoint.id, '--account', 'nobody', '--json'], /no account "nobody"/],
    [['webhooks', 'redeliver', endpoint.id, missing, '--account', 'hooks-three', '--json'], /has no delivery/],
    [['webhooks', 'redeliver', missing, missing, '--account', 'hooks-three', '--json'], /has no delivery/],
  ];
  for (const [args, message] of cases) {
    const result = await cli.run(args);
    expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 3, stdout: '' });
    expect(result.stderr).toMatch(message);
  }
}, timeoutMs);
