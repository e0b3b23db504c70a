import { createKeyRing, generateSecretKey } from '@dirsync/db';
import { generatedUser, slapdSettings, startSlapd, type SlapdServer } from '@dirsync/testkit';
import { type ApiHarness, startApiHarness } from './api-harness.ts';
import { startWorkerProcess, type WorkerProcess } from './worker-process.ts';

// Attribute mapping through the real API and a real `dirsync worker` process against a real
// slapd: validation on save and on preview (422 at the field's path), the preview and Test
// Connection's samples computed by the worker, a full sync after a mapping change that updates
// exactly the objects whose mapped output changed, `extra` stored and read back.

const users = 12;
const groups = 2;

let slapd: SlapdServer;
let h: ApiHarness;
let worker: WorkerProcess;
let admin: string;
let reader: string;
let stranger: string;

beforeAll(async () => {
  slapd = await startSlapd({ data: { users, groups, membersPerGroup: 3 } });
  const key = generateSecretKey();
  h = await startApiHarness('mapping', { keyRing: createKeyRing({ current: key }), controlTimeoutMs: 30_000 });
  const account = await h.account('acme');
  admin = await h.key(account, ['admin']);
  reader = await h.key(account, ['read']);
  stranger = await h.key(await h.account('other'), ['admin']);
  worker = await startWorkerProcess({ databaseUrl: h.database.url, prefix: h.prefix.prefix, secretKey: key, workerId: 'mapping-worker' });
});

afterAll(async () => {
  await worker?.stop();
  await h.close();
  await slapd.stop();
});

function settings(attributeMapping?: unknown): Record<string, unknown> {
  return slapdSettings(slapd, attributeMapping === undefined ? {} : { attributeMapping });
}

async function json<T = Record<string, unknown>>(response: Response, status: number): Promise<T> {
  const text = await response.text();
  if (response.status !== status) throw new Error(`expected ${status}, got ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

async function createIntegration(name: string, attributeMapping?: unknown): Promise<string> {
  const body = { kind: 'ldap', name, settings: settings(attributeMapping), secret: slapd.readerPassword };
  return (await json<{ id: string }>(await h.request('POST', '/v1/integrations', { token: admin, body }), 201)).id;
}

interface Run {
  id: string;
  status: string;
  counts: Record<string, number>;
}

async function fullSync(id: string): Promise<Run> {
  const answer = await json<{ run: Run }>(await h.request('POST', `/v1/integrations/${id}/syncs`, { token: admin, body: { mode: 'full', wait: 120 } }), 200);
  return answer.run;
}

interface Sample {
  type: string;
  externalId: string;
  dn: string | null;
  attributes: Record<string, unknown>;
  extra: Record<string, unknown>;
}

const mapping = {
  user: {
    mail: { from: 'mail', transform: [{ op: 'regex', pattern: '^([^@]+)@' }, { op: 'first' }] },
    title: { from: 'title', transform: [{ op: 'lower' }, { op: 'first' }] },
  },
  extra: { user: { employee: { from: 'employeeNumber', transform: [{ op: 'regex', pattern: '^1(\\d+)$' }, { op: 'first' }] }, allMail: { from: 'mail', transform: [{ op: 'join', separator: ';' }] } } },
};

test('a mapping that breaks the rules is refused on save with each problem at its path (422)', async () => {
  const bad = {
    user: { externalId: { from: 'uid' }, mail: { from: 'mail;binary' }, cn: { from: 'cn', transform: [{ op: 'regex', pattern: '(a+)+$' }] } },
  };
  const refused = await json<{ errors: { path: string; message: string }[] }>(
    await h.request('POST', '/v1/integrations', { token: admin, body: { kind: 'ldap', name: 'bad', settings: settings(bad), secret: 'x' } }),
    422,
  );
  const paths = refused.errors.map((e) => e.path).sort();
  expect(paths).toEqual(['settings.attributeMapping.user.cn.transform[0].pattern', 'settings.attributeMapping.user.externalId', 'settings.attributeMapping.user.mail.from']);
  expect(refused.errors.find((e) => e.path.endsWith('externalId'))?.message).toMatch(/structural/);
  expect(refused.errors.find((e) => e.path.endsWith('pattern'))?.message).toMatch(/nests quantifiers/);

  const id = await createIntegration('patched');
  const patched = await json<{ errors: { path: string }[] }>(
    await h.request('PATCH', `/v1/integrations/${id}`, { token: admin, body: { settings: settings({ group: { members: { from: 'member' } } }) } }),
    422,
  );
  expect(patched.errors.map((e) => e.path)).toEqual(['settings.attributeMapping.group.members']);
});

test('preview: an unsaved mapping is applied by the worker to real entries and nothing is stored', async () => {
  const id = await createIntegration('preview');
  const result = await json<{ samples: Sample[]; problems: unknown[] }>(
    await h.request('POST', `/v1/integrations/${id}/preview`, { token: admin, body: { limit: 3, attributeMapping: mapping } }),
    200,
  );
  expect(result.problems).toEqual([]);
  expect(result.samples).toHaveLength(3);
  for (const sample of result.samples) {
    expect(sample.type).toBe('user');
    const uid = sample.attributes['uid'] as string;
    const index = Number(/(\d+)$/.exec(uid)?.[1]);
    const source = generatedUser(index);
    const mails = source['mail'] as string[];
    expect(sample.attributes['mail']).toBe(uid);
    expect(sample.attributes['title']).toBe((source['title'] as string).toLowerCase());
    expect(sample.extra).toEqual({ employee: String(source['employeeNumber']).slice(1), allMail: mails.join(';') });
    expect(sample.dn).toBe(`uid=${uid},ou=people,${slapd.suffix}`.toLowerCase());
    expect(sample.attributes['extra']).toBeUndefined();
  }

  // Without a mapping in the body: the stored (default) one.
  const plain = await json<{ samples: Sample[] }>(await h.request('POST', `/v1/integrations/${id}/preview`, { token: admin, body: {} }), 200);
  expect(plain.samples).toHaveLength(5);
  expect(plain.samples[0]?.attributes['mail']).toMatch(/@example\.org$/);
  expect(plain.samples[0]?.extra).toEqual({});

  // An invalid unsaved mapping: 422 at its path, nothing asked of the worker.
  const refused = await json<{ errors: { path: string }[] }>(
    await h.request('POST', `/v1/integrations/${id}/preview`, { token: admin, body: { attributeMapping: { user: { mail: { from: 'm@il' } } } } }),
    422,
  );
  expect(refused.errors.map((e) => e.path)).toEqual(['attributeMapping.user.mail.from']);
  expect((await h.request('POST', `/v1/integrations/${id}/preview`, { token: admin, body: { limit: 21 } })).status).toBe(400);

  // The stored settings did not change.
  const stored = await json<{ settings: Record<string, unknown> }>(await h.request('GET', `/v1/integrations/${id}`, { token: admin }), 200);
  expect(stored.settings['attributeMapping']).toBeUndefined();

  // Another account's key sees no such integration; a read key may not make workers read the directory.
  expect((await h.request('POST', `/v1/integrations/${id}/preview`, { token: stranger, body: {} })).status).toBe(404);
  expect((await h.request('POST', `/v1/integrations/${id}/preview`, { token: reader, body: {} })).status).toBe(403);
});

test('Test Connection shows a few samples mapped with the stored mapping', async () => {
  const id = await createIntegration('tested', mapping);
  const report = await json<{ ok: boolean; samples?: Sample[] }>(await h.request('POST', `/v1/integrations/${id}/test-connection`, { token: admin }), 200);
  expect(report.ok).toBe(true);
  expect(report.samples).toHaveLength(3);
  for (const sample of report.samples ?? []) expect(Object.keys(sample.extra).sort()).toEqual(['allMail', 'employee']);
});

test('a mapping change takes effect at the next full sync, which updates exactly the objects whose output changed; extra is stored and read back', async () => {
  const id = await createIntegration('synced');
  const first = await fullSync(id);
  expect(first).toMatchObject({ status: 'succeeded', counts: expect.objectContaining({ created: users + groups }) });

  // Only users whose employeeNumber ends in 0 or 5 get the extra: the others map as before.
  const narrow = { extra: { user: { tagged: { from: 'employeeNumber', transform: [{ op: 'regex', pattern: '[05]$' }, { op: 'first' }] } } } };
  await json(await h.request('PATCH', `/v1/integrations/${id}`, { token: admin, body: { settings: settings(narrow) } }), 200);
  const affected = Array.from({ length: users }, (_, i) => generatedUser(i)).filter((u) => /[05]$/.test(String(u['employeeNumber'])));
  expect(affected.length).toBeGreaterThan(0);
  expect(affected.length).toBeLessThan(users);

  const second = await fullSync(id);
  expect(second).toMatchObject({ status: 'succeeded', counts: expect.objectContaining({ created: 0, updated: affected.length, deleted: 0 }) });
  const changes = await json<{ items: { externalId: string; change: string; type: string }[] }>(await h.request('GET', `/v1/runs/${second.id}/changes?limit=100`, { token: reader }), 200);
  expect(changes.items).toHaveLength(affected.length);
  expect(changes.items.every((c) => c.change === 'updated' && c.type === 'user')).toBe(true);

  const listed = await json<{ items: { externalId: string; attributes: Record<string, unknown> }[] }>(await h.request('GET', `/v1/integrations/${id}/users?limit=100`, { token: reader }), 200);
  const tagged = listed.items.filter((u) => u.attributes['extra'] !== undefined);
  expect(tagged.map((u) => u.externalId).sort()).toEqual(changes.items.map((c) => c.externalId).sort());
  for (const user of tagged) expect(user.attributes['extra']).toEqual({ tagged: String(user.attributes['employeeNumber']).slice(-1) });

  // The same mapping again changes nothing.
  const third = await fullSync(id);
  expect(third.counts).toMatchObject({ created: 0, updated: 0, deleted: 0 });
});
