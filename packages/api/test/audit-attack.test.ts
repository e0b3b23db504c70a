import { auditPageSchema } from '@dirsync/contracts';
import { createIntegration, recordAudit } from '@dirsync/db';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

// GET /v1/audit as the holder of another account's admin key: filters and cursors naming the
// victim's objects, LIKE wildcards, oversized filters, secrets in details.

let api: ApiHarness;
let victim: string;
let attacker: string;
let victimKey: string;
let attackerKey: string;
let victimIntegration: string;

beforeAll(async () => {
  api = await startApiHarness('api_audit_attack');
  victim = await api.account('victim');
  attacker = await api.account('attacker');
  victimKey = await api.key(victim, ['admin'], 'victim-admin');
  attackerKey = await api.key(attacker, ['admin'], 'attacker-admin');
  victimIntegration = (await createIntegration(api.db, { accountId: victim, kind: 'ldap', name: 'victim-ldap', settings: ldapSettings() })).id;
  // Older than every event of the victim: a victim's cursor positions the attacker before it.
  await recordAudit(api.db, { accountId: attacker, actor: 'api-key:early (2)', action: 'webhook.created' });
  for (let i = 0; i < 3; i++) {
    await recordAudit(api.db, { accountId: victim, integrationId: victimIntegration, actor: `api-key:ops_%${i} (1)`, action: 'integration.updated', details: { i, bindPassword: 'Victim-S3cret', nested: { apiKey: 'k-123' } } });
  }
  await recordAudit(api.db, { integrationId: victimIntegration, actor: 'worker:w1', action: 'connector.credential.rotated' });
  await recordAudit(api.db, { accountId: attacker, actor: 'api-key:mine (2)', action: 'integration.updated' });
});

afterAll(async () => {
  await api?.close();
});

async function page(query: string, token: string) {
  const response = await api.request('GET', `/v1/audit${query}`, { token });
  const body = (await response.json()) as Record<string, unknown>;
  return { status: response.status, body };
}

test('the victim’s cursor, integration and actor filters give the attacker none of the victim’s events', async () => {
  const first = await page('?limit=1', victimKey);
  const cursor = auditPageSchema.parse(first.body).nextCursor;
  expect(cursor).not.toBeNull();
  const withVictimCursor = await page(`?cursor=${encodeURIComponent(cursor!)}`, attackerKey);
  expect(withVictimCursor.status).toBe(200);
  expect(auditPageSchema.parse(withVictimCursor.body).items.map((e) => e.actor)).toEqual(['api-key:early (2)']);
  expect(auditPageSchema.parse((await page(`?integrationId=${victimIntegration}`, attackerKey)).body).items).toEqual([]);
  expect(auditPageSchema.parse((await page('?actor=ops', attackerKey)).body).items).toEqual([]);
  expect(auditPageSchema.parse((await page('?action=connector.*', attackerKey)).body).items).toEqual([]);
  expect(auditPageSchema.parse((await page('?action=integration.*', attackerKey)).body).items.map((e) => e.actor)).toEqual(['api-key:mine (2)']);
});

test('% and _ in actor are literal text, not wildcards', async () => {
  expect(auditPageSchema.parse((await page('?actor=%25', victimKey)).body).items).toHaveLength(3);
  expect(auditPageSchema.parse((await page('?actor=ops_%251', victimKey)).body).items.map((e) => e.details['i'])).toEqual([1]);
  expect(auditPageSchema.parse((await page('?actor=o_s', victimKey)).body).items).toEqual([]);
  expect(auditPageSchema.parse((await page('?actor=%25%25', victimKey)).body).items).toEqual([]);
});

test('oversized filters are 400 problems, and a prefix is only taken as .*', async () => {
  expect((await page(`?actor=${'a'.repeat(201)}`, victimKey)).status).toBe(400);
  expect((await page(`?action=${'a'.repeat(201)}`, victimKey)).status).toBe(400);
  expect((await page(`?cursor=${'a'.repeat(501)}`, victimKey)).status).toBe(400);
  expect((await page('?action=integration%25', victimKey)).status).toBe(400);
  expect((await page('?action=integration*', victimKey)).status).toBe(400);
  expect(auditPageSchema.parse((await page('?action=integration', victimKey)).body).items).toEqual([]);
});

test('secrets copied into details are stored and served redacted', async () => {
  const items = auditPageSchema.parse((await page('?action=integration.updated', victimKey)).body).items;
  expect(items).toHaveLength(3);
  const text = JSON.stringify(items);
  expect(text).not.toContain('Victim-S3cret');
  expect(text).not.toContain('k-123');
});
