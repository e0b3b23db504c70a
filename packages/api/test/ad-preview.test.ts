import { createKeyRing, generateSecretKey } from '@dirsync/db';
import { type SharedSamba, sharedSamba } from '@dirsync/testkit';
import { type ApiHarness, startApiHarness } from './api-harness.ts';
import { startWorkerProcess, type WorkerProcess } from './worker-process.ts';

// An Active Directory integration's mapping previewed through the real API by a `dirsync worker`
// process reading the run's Samba DC: the mapping reads attributes the default one does not, and
// refuses the sources that hold references.

let dc: SharedSamba;
let h: ApiHarness;
let worker: WorkerProcess;
let admin: string;

beforeAll(async () => {
  dc = await sharedSamba();
  const key = generateSecretKey();
  h = await startApiHarness('ad_preview', { keyRing: createKeyRing({ current: key }), controlTimeoutMs: 60_000 });
  admin = await h.key(await h.account('acme'), ['admin']);
  worker = await startWorkerProcess({ databaseUrl: h.database.url, prefix: h.prefix.prefix, secretKey: key, workerId: 'ad-preview-worker' });
});

afterAll(async () => {
  await worker?.stop();
  await h?.close();
  await dc?.release();
});

interface Sample {
  type: string;
  attributes: Record<string, unknown>;
  extra: Record<string, unknown>;
}

test('preview of an Active Directory integration with an unsaved mapping', async () => {
  const settings = {
    url: dc.ldapsUrl,
    bindDn: dc.reader.dn,
    tls: { caPem: dc.caPem, serverName: dc.dnsHostName },
    baseDns: [dc.seed.ouDn],
    objectTypes: ['user'],
  };
  const created = await h.request('POST', '/v1/integrations', { token: admin, body: { kind: 'active_directory', name: 'dc', settings, secret: dc.reader.password } });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: string };

  const attributeMapping = {
    user: { title: { from: 'title', transform: [{ op: 'lower' }, { op: 'first' }] } },
    extra: { user: { boss: { from: 'manager', transform: [{ op: 'regex', pattern: '^CN=([^,]+)' }, { op: 'first' }] }, created: { from: 'uSNCreated' } } },
  };
  const answer = await h.request('POST', `/v1/integrations/${id}/preview`, { token: admin, body: { limit: 10, attributeMapping } });
  expect(answer.status).toBe(200);
  const { samples, problems } = (await answer.json()) as { samples: Sample[]; problems: unknown[] };
  expect(problems).toEqual([]);
  expect(samples).toHaveLength(10);
  for (const sample of samples) {
    expect(sample.type).toBe('user');
    if (sample.attributes['title'] !== undefined) expect(sample.attributes['title']).toBe(String(sample.attributes['title']).toLowerCase());
    expect(sample.extra['created']).toMatch(/^\d+$/);
    if (sample.attributes['manager'] !== undefined) expect(sample.extra['boss']).toMatch(/^Seed User \d+$/);
    else expect(sample.extra['boss']).toBeUndefined();
  }
  expect(samples.some((s) => s.extra['boss'] !== undefined)).toBe(true);

  const refused = await h.request('POST', `/v1/integrations/${id}/preview`, { token: admin, body: { attributeMapping: { extra: { user: { groups: { from: 'memberOf' } } } } } });
  expect(refused.status).toBe(422);
  expect(((await refused.json()) as { errors: { path: string }[] }).errors.map((e) => e.path)).toEqual(['attributeMapping.extra.user.groups.from']);
});
