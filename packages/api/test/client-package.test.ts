import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, cp, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createIntegration, insertMemberships, insertObjects, type ObjectWrite, pruneChanges } from '@dirsync/db';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

// @dirsync/client as another service installs it: packed with the real npm (with @dirsync/contracts
// and their run-time dependencies, packed from node_modules), installed offline into an empty
// project, used by a plain node script (no type stripping) against this API, and compiled by tsc
// as a TypeScript consumer. The README's "For other services" examples run as they are printed.

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const timeoutMs = 300_000;

let api: ApiHarness;
let work: string;
let project: string;
let accountA: string;
let keyA: string;
let keyB: string;
let integrationA: string;

function user(externalId: string): ObjectWrite {
  const attributes = JSON.stringify({ displayName: externalId });
  return { externalId, type: 'user', dn: `uid=${externalId},dc=x`, attributesJson: attributes, contentHash: attributes };
}

/** The directory of installed package `name` as seen from `from` (node_modules lookup, links resolved). */
async function installedDir(name: string, from: string): Promise<string> {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (await access(join(candidate, 'package.json')).then(() => true, () => false)) return realpath(candidate);
    if (dirname(dir) === dir) throw new Error(`${name} is not installed for ${from}`);
  }
}

/** Run-time dependencies of the packed packages, all the way down (not the workspace's own). */
async function runtimeDependencies(): Promise<string[]> {
  const found = new Map<string, string>();
  const queue = ['client', 'contracts'].map((name) => join(root, 'packages', name));
  while (queue.length > 0) {
    const dir = queue.shift() as string;
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const name of Object.keys(pkg.dependencies ?? {})) {
      if (name.startsWith('@dirsync/') || found.has(name)) continue;
      const location = await installedDir(name, dir);
      found.set(name, location);
      queue.push(location);
    }
  }
  return [...found.values()];
}

/** A fenced ```js block of the README's "For other services" section. */
async function readmeExample(index: number): Promise<string> {
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## For other services\n'));
  const end = section.indexOf('\n## ', 5);
  const blocks = [...(end === -1 ? section : section.slice(0, end)).matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1] as string);
  const block = blocks[index];
  if (block === undefined) throw new Error(`the README's "For other services" section has no example ${index}`);
  return block;
}

async function node(script: string, env: Record<string, string>): Promise<Record<string, unknown>> {
  const { stdout } = await exec(process.execPath, ['--no-experimental-strip-types', script], { cwd: project, env: { ...process.env, ...env }, timeout: 60_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

beforeAll(async () => {
  api = await startApiHarness('client_package');
  accountA = await api.account('alpha');
  keyA = await api.key(accountA, ['admin']);
  keyB = await api.key(await api.account('beta'), ['admin']);
  integrationA = (await createIntegration(api.db, { accountId: accountA, kind: 'ldap', name: 'packed', settings: ldapSettings() })).id;

  work = await mkdtemp(join(tmpdir(), 'dirsync-client-package-'));
  const tarballs = join(work, 'tarballs');
  // The documented command: builds and packs @dirsync/contracts and @dirsync/client.
  const { stdout: packOutput } = await exec(process.execPath, [join(root, 'packages/client/scripts/pack.ts'), tarballs], { cwd: root });
  const packed = packOutput
    .trim()
    .split('\n')
    .map((line) => line.slice(line.indexOf(': ') + 2));
  expect(packed.map((file) => file.slice(tarballs.length + 1))).toEqual(['dirsync-contracts-0.1.0.tgz', 'dirsync-client-0.1.0.tgz']);
  for (const dir of await runtimeDependencies()) {
    // A copy (links resolved): npm does not pack a directory inside pnpm's store as it is.
    const copy = join(work, 'sources', String(packed.length));
    await cp(dir, copy, { recursive: true, dereference: true });
    const { stdout } = await exec('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tarballs], { cwd: copy });
    packed.push(join(tarballs, (JSON.parse(stdout) as Array<{ filename: string }>)[0]?.filename ?? ''));
  }
  project = join(work, 'consumer');
  await mkdir(project);
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // Offline, with a cache of its own: everything installed comes from the tarballs above.
  await exec('npm', ['install', '--offline', '--no-audit', '--no-fund', '--cache', join(work, 'npm-cache'), ...packed], { cwd: project });
  await writeFile(join(project, 'follow-directory.mjs'), await readmeExample(0));
  await writeFile(join(project, 'webhook-receiver.mjs'), await readmeExample(1));
}, timeoutMs);

afterAll(async () => {
  await api?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

const consumer = `
import { allPages, createDirsyncClient, CursorExpiredError, DirsyncApiError } from '@dirsync/client';
import { followDirectory } from './follow-directory.mjs';

const client = createDirsyncClient({ baseUrl: process.env.BASE_URL, apiKey: process.env.API_KEY });
const saved = [];
const store = { load: async () => process.env.STORED_CURSOR || undefined, save: async (cursor) => { saved.push(cursor); } };
const applied = [];
let resyncs = 0;
let listed = [];
const replica = {
  apply: async (entry) => applied.push(entry.type === 'membership.changed' ? entry.type + ' ' + entry.groupExternalId + ' +' + entry.added.join(',') : entry.type + ' ' + entry.externalId),
  resync: async (c) => {
    resyncs += 1;
    listed = [];
    for (const integration of await c.listIntegrations()) {
      for await (const object of allPages((cursor) => c.listUsers(integration.id, cursor === undefined ? {} : { cursor }))) listed.push(object.externalId);
    }
  },
};
await followDirectory(client, store, replica, { stopWhenCaughtUp: true, limit: 2 });
const missing = await client.getIntegration('${randomUUID()}').then(() => 'found', (error) => error instanceof DirsyncApiError && !(error instanceof CursorExpiredError) ? error.status : String(error));
process.stdout.write(JSON.stringify({ applied, saved, resyncs, listed: listed.sort(), missing, integrations: (await client.listIntegrations()).map((i) => i.name) }));
`;

test('a plain node consumer of the packed client follows the feed with the README example, resumes and resyncs on 410', async () => {
  await writeFile(join(project, 'consumer.mjs'), consumer);
  const run = randomUUID();
  await insertObjects(api.db, integrationA, run, [user('ann'), user('bob'), { ...user('staff'), type: 'group', dn: 'cn=staff,dc=x' }]);
  await insertMemberships(api.db, integrationA, run, [{ groupExternalId: 'staff', memberExternalIds: ['ann', 'bob'], membersHash: 'h' }]);
  const env = { BASE_URL: api.baseUrl, API_KEY: keyA };

  // A new consumer: lists read once, then the feed from the head (nothing after it yet).
  const fresh = await node('consumer.mjs', env);
  expect(fresh).toMatchObject({ resyncs: 1, listed: ['ann', 'bob'], applied: [], saved: ['4'], missing: 404, integrations: ['packed'] });

  // Resuming from a stored cursor: every entry after it, pages of two, the cursor saved per page.
  const feed = (await (await api.request('GET', '/v1/changes?after=0', { token: keyA })).json()) as { items: Array<{ type: string; externalId?: string }> };
  const objects = feed.items.filter((entry) => entry.type === 'object.created').map((entry) => `object.created ${entry.externalId ?? ''}`);
  expect([...objects].sort()).toEqual(['object.created ann', 'object.created bob', 'object.created staff']);
  const resumed = await node('consumer.mjs', { ...env, STORED_CURSOR: '1' });
  expect(resumed).toMatchObject({ resyncs: 0, applied: [...objects.slice(1), 'membership.changed staff +ann,bob'], saved: ['3', '4'] });

  // Another account's key sees none of it.
  const other = await node('consumer.mjs', { BASE_URL: api.baseUrl, API_KEY: keyB });
  expect(other).toMatchObject({ resyncs: 1, listed: [], applied: [], saved: ['0'], integrations: [] });

  // History older than the stored cursor pruned: 410, the lists read again, then on from its head.
  await insertObjects(api.db, integrationA, randomUUID(), [user('cy')]);
  await api.db.$client`update change_batches set published_at = now() - interval '30 days' where account_id = ${accountA}`;
  while ((await pruneChanges(api.db, { hours: 168 })) > 0);
  await insertObjects(api.db, integrationA, randomUUID(), [user('dee')]);
  const expired = await node('consumer.mjs', { ...env, STORED_CURSOR: '1' });
  expect(expired).toMatchObject({ resyncs: 1, listed: ['ann', 'bob', 'cy', 'dee'], saved: ['6'], applied: [] });
}, timeoutMs);

test("the README's webhook receiver accepts a signed delivery once verified and refuses a tampered one", async () => {
  const script = `
import { Webhook } from 'standardwebhooks';
import { webhookReceiver } from './webhook-receiver.mjs';

const secret = 'whsec_' + Buffer.from('a-receiver-secret-of-32-bytes!!!').toString('base64');
const handled = [];
const server = webhookReceiver(secret, async (event, id) => { handled.push({ id, type: event.type, data: event.data }); });
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = 'http://127.0.0.1:' + server.address().port + '/';
const body = JSON.stringify({ type: 'objects.changed', timestamp: new Date().toISOString(), data: { integrationId: '${integrationA}', count: 2 } });
const post = async (payload, signedBody = payload, key = secret) => {
  const id = 'msg_' + handled.length + '_' + payload.length;
  const timestamp = new Date();
  const headers = { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)), 'webhook-signature': new Webhook(key).sign(id, timestamp, signedBody) };
  return (await fetch(url, { method: 'POST', headers, body: payload })).status;
};
const statuses = {
  signed: await post(body),
  tampered: await post(body.replace('"count":2', '"count":3'), body),
  otherSecret: await post(body, body, 'whsec_' + Buffer.from('another-secret-of-32-bytes-long!').toString('base64')),
  notAnEvent: await post(JSON.stringify({ hello: 'world' })),
};
server.close();
process.stdout.write(JSON.stringify({ statuses, handled }));
`;
  await writeFile(join(project, 'receiver.mjs'), script);
  const result = await node('receiver.mjs', {});
  expect(result).toEqual({
    statuses: { signed: 204, tampered: 401, otherSecret: 401, notAnEvent: 401 },
    handled: [{ id: expect.stringMatching(/^msg_0_/), type: 'objects.changed', data: { integrationId: integrationA, count: 2 } }],
  });
}, timeoutMs);

test("webhook endpoints are managed through the packed client, and another account's key sees none", async () => {
  const script = `
import { createDirsyncClient, DirsyncApiError } from '@dirsync/client';

const a = createDirsyncClient({ baseUrl: process.env.BASE_URL, apiKey: process.env.API_KEY });
const b = createDirsyncClient({ baseUrl: process.env.BASE_URL, apiKey: process.env.OTHER_KEY });
const statusOf = (promise) => promise.then(() => 'ok', (error) => (error instanceof DirsyncApiError ? error.status : String(error)));
const created = await a.createWebhook({ url: 'https://hooks.example.com/dirsync', events: ['run.failed', 'objects.changed'], description: 'replica' });
const listed = (await a.listWebhooks()).map((endpoint) => endpoint.id);
const disabled = await a.updateWebhook(created.id, { enabled: false });
const rotated = await a.rotateWebhookSecret(created.id);
const shown = await a.getWebhook(created.id);
const otherAccount = { get: await statusOf(b.getWebhook(created.id)), list: (await b.listWebhooks()).length, remove: await statusOf(b.deleteWebhook(created.id)) };
const refused = await statusOf(a.createWebhook({ url: 'ftp://hooks.example.com/', events: ['*'] }));
await a.deleteWebhook(created.id);
const gone = await statusOf(a.getWebhook(created.id));
process.stdout.write(JSON.stringify({
  created: { id: created.id, secret: created.secret, events: created.events, enabled: created.enabled },
  listed, disabled: disabled.enabled, rotated: rotated.secret, shownKeys: Object.keys(shown), otherAccount, refused, gone,
}));
`;
  await writeFile(join(project, 'webhooks.mjs'), script);
  const result = await node('webhooks.mjs', { BASE_URL: api.baseUrl, API_KEY: keyA, OTHER_KEY: keyB });
  const created = result['created'] as { id: string; secret: string; events: string[]; enabled: boolean };
  expect(created).toMatchObject({ events: ['run.failed', 'objects.changed'], enabled: true, secret: expect.stringMatching(/^whsec_/) });
  expect(result).toMatchObject({ listed: [created.id], disabled: false, otherAccount: { get: 404, list: 0, remove: 404 }, refused: 422, gone: 404 });
  expect(result['rotated']).toEqual(expect.stringMatching(/^whsec_/));
  expect(result['rotated']).not.toBe(created.secret);
  // The secret is shown at creation and rotation only.
  expect(result['shownKeys']).not.toContain('secret');
}, timeoutMs);

test('a TypeScript consumer compiles against the installed declarations, and a wrong field does not', async () => {
  const source = `
import { createDirsyncClient, CursorExpiredError, followChanges, verifyWebhook, type ChangeEntry, type Integration, type WebhookEvent } from '@dirsync/client';

const client = createDirsyncClient({ baseUrl: 'http://dirsync.example', apiKey: 'dsk_example' });

export async function consume(): Promise<number> {
  const integrations: Integration[] = await client.listIntegrations();
  const kinds: Array<'ldap' | 'active_directory' | 'domino' | 'entra_id'> = integrations.map((i) => i.kind);
  let seen = kinds.length;
  try {
    for await (const page of followChanges(client, { after: '0', stopWhenCaughtUp: true })) {
      for (const entry of page.items) {
        const change: ChangeEntry = entry;
        if (change.type === 'membership.changed') seen += change.added.length - change.removed.length;
        else if (change.type === 'object.deleted') seen -= 1;
        else seen += change.object.deleted ? 0 : 1;
      }
    }
  } catch (error) {
    if (error instanceof CursorExpiredError) return Number(error.head);
    throw error;
  }
  const run = await client.requestSync(integrations[0]?.id ?? '', { mode: 'full', wait: 30 });
  return seen + (run.run?.counts.membershipsAdded ?? 0);
}

export function received(secret: string, headers: Record<string, string>, body: string): WebhookEvent['type'] {
  return verifyWebhook(secret, headers, body).type;
}
`;
  await writeFile(join(project, 'consumer.ts'), source);
  await writeFile(join(project, 'wrong.ts'), `import { createDirsyncClient } from '@dirsync/client';\nawait createDirsyncClient({ baseUrl: 'x', apiKey: 'y' }).requestSync('id', { mode: 'incremental' });\n`);
  const tsconfig = (files: string[]) =>
    JSON.stringify({ compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2024', 'dom'], types: [], noEmit: true, exactOptionalPropertyTypes: true }, files });
  const tsc = join(root, 'node_modules/typescript/bin/tsc');
  await writeFile(join(project, 'tsconfig.json'), tsconfig(['consumer.ts']));
  await exec(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project }).catch((error: { stdout?: string }) => {
    throw new Error(`the consumer does not compile against the installed declarations:\n${error.stdout ?? String(error)}`);
  });
  await writeFile(join(project, 'tsconfig.json'), tsconfig(['wrong.ts']));
  const wrong = await exec(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project }).then(() => '', (error: { stdout?: string }) => error.stdout ?? '');
  expect(wrong).toMatch(/wrong\.ts.*'"incremental"' is not assignable/s);
}, timeoutMs);
