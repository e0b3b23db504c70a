import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { createConnector, createIntegration, createRun, finishRun, getIntegration, listAudit, startRun, withIntegrationSecret, writeObjects } from '@dirsync/db';
import { createWebhookEndpoint, listWebhookDeliveries, recordWebhookEvent } from '@dirsync/db';
import { generateCertificate } from '@dirsync/providers';
import { allPages, DirsyncApiError, type DirsyncClient } from '@dirsync/client';
import { SYNC_QUEUE } from '@dirsync/jobs';
import { testRedisUrl } from '@dirsync/testkit';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

let api: ApiHarness;
let accountA: string;
let accountB: string;
let adminA: DirsyncClient;
let tokenA: string;
let tokenB: string;
let queue: Queue;

beforeAll(async () => {
  api = await startApiHarness('api_routes');
  accountA = await api.account('alpha');
  accountB = await api.account('beta');
  tokenA = await api.key(accountA, ['admin']);
  tokenB = await api.key(accountB, ['admin']);
  adminA = api.client(tokenA);
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: api.prefix.prefix });
});

afterAll(async () => {
  await queue.close();
  await api.close();
});

async function expectProblem(promise: Promise<unknown>, status: number, type?: string): Promise<DirsyncApiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DirsyncApiError);
  const problem = (error as DirsyncApiError).problem;
  expect(problem.status).toBe(status);
  if (type !== undefined) expect(problem.type).toBe(`/v1/problems/${type}`);
  return error as DirsyncApiError;
}

test('integrations: create, list, show, update, disable, enable, remove; the secret is never returned', async () => {
  const secret = 'create-secret-5c1f';
  const created = await adminA.createIntegration({ kind: 'ldap', name: 'head office', settings: ldapSettings(), secret, description: 'HQ', deltaCron: '*/10 * * * *' });
  expect(created).toMatchObject({ accountId: accountA, kind: 'ldap', name: 'head office', hasSecret: true, enabled: true, deltaCron: '*/10 * * * *', status: 'new' });
  // Defaults of the kind were filled in by its settings schema.
  expect(created.settings).toMatchObject({ url: 'ldaps://ldap.example.com', tls: { allowInsecure: false } });
  expect(await withIntegrationSecret(api.db, api.ring, created.id, async (s) => s)).toBe(secret);

  const listed = await adminA.listIntegrations();
  expect(listed.map((i) => i.id)).toEqual([created.id]);
  const shown = await adminA.getIntegration(created.id);
  for (const answer of [created, listed, shown]) expect(JSON.stringify(answer)).not.toContain(secret);
  expect(Object.keys(shown)).not.toEqual(expect.arrayContaining(['secretCiphertext']));

  const updated = await adminA.updateIntegration(created.id, { name: 'HQ', deleteThresholdPercent: 5 });
  expect(updated).toMatchObject({ name: 'HQ', deleteThresholdPercent: 5 });
  expect((await adminA.disableIntegration(created.id)).enabled).toBe(false);
  expect((await adminA.enableIntegration(created.id)).enabled).toBe(true);
  await adminA.removeIntegration(created.id);
  await expectProblem(adminA.getIntegration(created.id), 404, 'not-found');
  expect((await listAudit(api.db, { accountId: accountA })).map((e) => e.action)).toEqual([
    'integration.removed',
    'integration.enabled',
    'integration.disabled',
    'integration.updated',
    'integration.created',
  ]);
});

test('settings and schedules are validated for the kind; every problem is listed at once', async () => {
  const failure = await expectProblem(
    adminA.createIntegration({ kind: 'ldap', name: 'bad', settings: { url: 'http://x', users: { baseDns: [] } }, fullCron: 'every day' }),
    422,
    'invalid-configuration',
  );
  const paths = (failure.problem.errors ?? []).map((e) => e.path);
  expect(paths).toEqual(expect.arrayContaining(['settings.bindDn', 'fullCron']));
  expect(paths.length).toBeGreaterThanOrEqual(3);
  await adminA.createIntegration({ kind: 'ldap', name: 'dup', settings: ldapSettings() });
  await expectProblem(adminA.createIntegration({ kind: 'ldap', name: 'dup', settings: ldapSettings() }), 409, 'conflict');
});

test('sync requests are deduplicated while one waits; a full request upgrades a waiting delta', async () => {
  const integration = await adminA.createIntegration({ kind: 'ldap', name: 'syncs', settings: ldapSettings() });
  const first = await adminA.requestSync(integration.id);
  expect(first).toMatchObject({ mode: 'delta', dryRun: false, deduplicated: false, upgraded: false });
  const again = await adminA.requestSync(integration.id, { mode: 'delta' });
  expect(again).toMatchObject({ runId: first.runId, jobId: first.jobId, deduplicated: true });
  const full = await adminA.requestSync(integration.id, { mode: 'full' });
  expect(full).toMatchObject({ runId: first.runId, mode: 'full', deduplicated: true, upgraded: true });
  const dry = await adminA.requestSync(integration.id, { mode: 'full', dryRun: true });
  expect(dry.runId).not.toBe(first.runId);
  // Sync jobs carry a priority, so waiting ones sit in BullMQ's prioritized set.
  expect(await queue.getJobCounts('waiting', 'prioritized')).toEqual({ waiting: 0, prioritized: 2 });

  const run = await adminA.getRun(first.runId);
  expect(run).toMatchObject({ status: 'queued', trigger: 'api', requestedBy: expect.stringMatching(/^api-key:admin/), integrationId: integration.id });
  const runs = await adminA.listRuns({ integrationId: integration.id });
  expect(runs.items.map((r) => r.id).sort()).toEqual([first.runId, dry.runId].sort());

  await adminA.disableIntegration(integration.id);
  await expectProblem(adminA.requestSync(integration.id), 409, 'integration-disabled');
});

test("enable with a first sync: one request enables the integration, queues the sync and covers the slots begun", async () => {
  const integration = await adminA.createIntegration({ kind: 'ldap', name: 'first sync', settings: ldapSettings(), enabled: false });
  const reader = api.client(await api.key(accountA, ['read']));
  await expectProblem(reader.enableIntegration(integration.id, { sync: 'full' }), 403, 'insufficient-scope');
  const bad = await api.request('POST', `/v1/integrations/${integration.id}/enable`, { token: tokenA, body: { sync: 'sometimes', dryRun: true } });
  expect(bad.status).toBe(400);
  // Only a full: a first delta would leave the full slot to the scheduler, which then reads the directory again.
  const delta = await api.request('POST', `/v1/integrations/${integration.id}/enable`, { token: tokenA, body: { sync: 'delta' } });
  expect(delta.status).toBe(400);
  expect((await adminA.getIntegration(integration.id)).enabled).toBe(false);
  const jobsOfIt = async () => (await queue.getJobs(['waiting', 'prioritized'])).filter((job) => (job.data as { integrationId?: string }).integrationId === integration.id);
  expect(await jobsOfIt()).toEqual([]);

  const enabled = await adminA.enableIntegration(integration.id, { sync: 'full' });
  expect(enabled).toMatchObject({ id: integration.id, enabled: true, sync: { mode: 'full', dryRun: false, deduplicated: false } });
  const runId = enabled.sync?.runId ?? '';
  expect(await adminA.getRun(runId)).toMatchObject({ status: 'queued', trigger: 'api', modeRequested: 'full', integrationId: integration.id });
  expect((await jobsOfIt()).map((job) => [job.id, job.data])).toEqual([[enabled.sync?.jobId, expect.objectContaining({ mode: 'full', trigger: 'api' })]]);
  // The latest full and delta slots count as done, so the scheduler queues no full of its own.
  const [slots] = await api.db.$client<{ full: Date | null; delta: Date | null }[]>`
    select full_scheduled_for as full, delta_scheduled_for as delta from integrations where id = ${integration.id}`;
  expect(slots?.full).not.toBeNull();
  expect(slots?.delta).not.toBeNull();
  expect((await listAudit(api.db, { accountId: accountA, integrationId: integration.id })).map((e) => e.action)).toEqual(['integration.enabled', 'integration.created']);

  // Without `sync`, enabling queues nothing and says so.
  await adminA.disableIntegration(integration.id);
  expect(await adminA.enableIntegration(integration.id)).toMatchObject({ enabled: true, sync: null });
  expect(await jobsOfIt()).toHaveLength(1);
});

test('Test Connection and a new secret need a worker: without one the answer is 504 and nothing changes', async () => {
  const integration = await adminA.createIntegration({ kind: 'ldap', name: 'no-worker', settings: ldapSettings(), secret: 'old-secret-1' });
  const timeout = await expectProblem(adminA.testConnection(integration.id), 504, 'worker-timeout');
  expect(timeout.problem.detail).toMatch(/no worker took the request/);
  await expectProblem(adminA.setSecret(integration.id, 'new-secret-2'), 504, 'worker-timeout');
  expect(await withIntegrationSecret(api.db, api.ring, integration.id, async (s) => s)).toBe('old-secret-1');
  const [left] = await api.db.$client<{ n: number }[]>`select count(*)::int as n from integration_secret_candidates`;
  expect(left?.n).toBe(0);
});

test('runs: filters, pages, changed objects, issues and approval of a blocked run', async () => {
  const integration = await adminA.createIntegration({ kind: 'ldap', name: 'runs', settings: ldapSettings(), enabled: false });
  const runId = randomUUID();
  await createRun(api.db, { id: runId, integrationId: integration.id, modeRequested: 'full', trigger: 'schedule' });
  await startRun(api.db, runId, { mode: 'full', workerId: 'w1' });
  const rows = Array.from({ length: 5 }, (_, i) => ({
    externalId: `u${i}`,
    type: 'user',
    dn: `uid=u${i},ou=people,dc=example,dc=org`,
    attributesJson: JSON.stringify({ uid: `u${i}` }),
    contentHash: `h${i}`,
  }));
  await writeObjects(api.db, integration.id, runId, rows);
  const issues = Array.from({ length: 3 }, (_, i) => ({ externalId: `bad${i}`, reason: `no entryUUID ${i}` }));
  await finishRun(api.db, runId, { status: 'blocked', fetched: 5, created: 5, wouldDelete: 700, issues });

  const shown = await adminA.getRun(runId);
  expect(shown).toMatchObject({ status: 'blocked', counts: expect.objectContaining({ created: 5, wouldDelete: 700 }), issueCount: 3 });
  const changes = [];
  for await (const change of allPages((cursor) => adminA.listRunChanges(runId, { limit: 2, ...(cursor ? { cursor } : {}) }))) changes.push(change);
  expect(changes.map((c) => [c.externalId, c.change])).toEqual(rows.map((r) => [r.externalId, 'created']));
  const firstIssues = await adminA.listRunIssues(runId, { limit: 2 });
  expect(firstIssues.items).toEqual(issues.slice(0, 2));
  expect((await adminA.listRunIssues(runId, { limit: 2, cursor: firstIssues.nextCursor ?? '' })).items).toEqual(issues.slice(2));
  await expectProblem(adminA.listRunIssues(runId, { cursor: 'garbage' }), 400, 'invalid-cursor');

  expect((await adminA.listRuns({ status: 'blocked' })).items.map((r) => r.id)).toEqual([runId]);
  const page1 = await adminA.listRuns({ limit: 1 });
  expect(page1.items).toHaveLength(1);
  expect(page1.nextCursor).not.toBeNull();

  await api.db.$client`update integrations set status = 'blocked', last_run_id = ${runId} where id = ${integration.id}`;
  const actions = (await adminA.listActions()).filter((a) => a.integrationId === integration.id);
  expect(actions.map((a) => [a.type, a.runId])).toEqual([
    ['missing_secret', null],
    ['blocked_run', runId],
  ]);
  const approved = await adminA.approveRun(runId);
  expect(approved.approvedBy).toMatch(/^api-key:admin/);
  await expectProblem(adminA.approveRun(runId), 409, 'invalid-state');
});

test('synced users, groups and memberships are paged; updatedSince is a feed that includes deletions', async () => {
  const integration = await adminA.createIntegration({ kind: 'ldap', name: 'data', settings: ldapSettings(), enabled: false });
  const runId = randomUUID();
  await createRun(api.db, { id: runId, integrationId: integration.id, modeRequested: 'full', trigger: 'schedule' });
  const write = (externalId: string, type: string) => ({ externalId, type, dn: null, attributesJson: JSON.stringify({ name: externalId }), contentHash: externalId });
  await writeObjects(api.db, integration.id, runId, [write('a', 'user'), write('b', 'user'), write('c', 'user'), write('g', 'group')]);
  await api.db.$client`insert into memberships (integration_id, group_external_id, member_external_id) values (${integration.id}, 'g', 'a'), (${integration.id}, 'g', 'b')`;

  const users = await adminA.listUsers(integration.id, { limit: 2 });
  expect(users.items.map((u) => u.externalId)).toEqual(['a', 'b']);
  const rest = await adminA.listUsers(integration.id, { limit: 2, cursor: users.nextCursor ?? '' });
  expect(rest).toEqual({ items: [expect.objectContaining({ externalId: 'c', attributes: { name: 'c' }, deleted: false })], nextCursor: null });
  expect((await adminA.listGroups(integration.id)).items.map((g) => g.externalId)).toEqual(['g']);
  expect((await adminA.listMemberships(integration.id)).items.map((m) => `${m.groupExternalId}>${m.memberExternalId}`)).toEqual(['g>a', 'g>b']);

  const [{ now } = { now: '' }] = await api.db.$client<{ now: string }[]>`select to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as now`;
  await api.db.$client`update directory_objects set deleted_at = clock_timestamp(), updated_at = clock_timestamp() where integration_id = ${integration.id} and external_id = 'b'`;
  await api.db.$client`update memberships set deleted_at = clock_timestamp(), updated_at = clock_timestamp() where integration_id = ${integration.id} and member_external_id = 'b'`;
  expect((await adminA.listUsers(integration.id)).items.map((u) => u.externalId)).toEqual(['a', 'c']);
  const feed = await adminA.listUsers(integration.id, { updatedSince: now });
  expect(feed.items).toEqual([expect.objectContaining({ externalId: 'b', deleted: true, deletedAt: expect.any(String) })]);
  expect((await adminA.listMemberships(integration.id, { updatedSince: now })).items).toEqual([
    expect.objectContaining({ memberExternalId: 'b', deleted: true }),
  ]);
  expect((await adminA.listUsers(integration.id, { includeDeleted: true })).items).toHaveLength(3);
});

test("account isolation: a key never sees or touches another account's data, on every route", async () => {
  const integration = await adminA.createIntegration({ kind: 'ldap', name: 'isolated', settings: ldapSettings(), secret: 'iso-secret-7', enabled: true });
  const job = await adminA.requestSync(integration.id, { mode: 'full' });
  const runId = job.runId;
  await api.db.$client`update sync_runs set status = 'blocked', would_delete = 9 where id = ${runId}`;
  const i = integration.id;
  // Connectors are shared by every account; A's tenant on one must stay A's.
  const certificate = await generateCertificate({ subject: 'dirsync connector', validityDays: 30 });
  const connector = await createConnector(
    api.db,
    api.ring,
    { name: 'shared', description: 'shared connector', clientId: randomUUID(), applicationObjectId: randomUUID(), homeTenantId: randomUUID(), redirectUri: `${api.baseUrl}/v1/consent/callback` },
    certificate,
  );
  await createIntegration(api.db, { accountId: accountA, kind: 'entra_id', name: 'isolated entra', settings: { tenantId: 'isolated.onmicrosoft.com', connectorId: connector.id } });
  const { endpoint: hook } = await createWebhookEndpoint(api.db, api.ring, { accountId: accountA, url: 'https://isolated.example.com/hook', events: ['*'] });
  await recordWebhookEvent(api.db, { accountId: accountA, type: 'webhook.test', endpointId: hook.id, data: {} });
  const hookDelivery = (await listWebhookDeliveries(api.db, accountA, hook.id, { limit: 1 }))?.items[0]?.id ?? '';
  // Every operation of the OpenAPI document, called with account B's admin key on A's resources.
  const calls: Record<string, { method: string; path: string; body?: unknown }> = {
    getIntegration: { method: 'GET', path: `/v1/integrations/${i}` },
    updateIntegration: { method: 'PATCH', path: `/v1/integrations/${i}`, body: { name: 'stolen' } },
    disableIntegration: { method: 'POST', path: `/v1/integrations/${i}/disable` },
    enableIntegration: { method: 'POST', path: `/v1/integrations/${i}/enable`, body: { sync: 'full' } },
    removeIntegration: { method: 'DELETE', path: `/v1/integrations/${i}` },
    setSecret: { method: 'PUT', path: `/v1/integrations/${i}/secret`, body: { secret: 'attacker-secret' } },
    testConnection: { method: 'POST', path: `/v1/integrations/${i}/test-connection` },
    previewMapping: { method: 'POST', path: `/v1/integrations/${i}/preview`, body: { attributeMapping: { extra: { user: { x: { from: 'cn' } } } } } },
    requestSync: { method: 'POST', path: `/v1/integrations/${i}/syncs`, body: { mode: 'full' } },
    getRun: { method: 'GET', path: `/v1/runs/${runId}` },
    listRunChanges: { method: 'GET', path: `/v1/runs/${runId}/changes` },
    listRunIssues: { method: 'GET', path: `/v1/runs/${runId}/issues` },
    approveRun: { method: 'POST', path: `/v1/runs/${runId}/approve` },
    listUsers: { method: 'GET', path: `/v1/integrations/${i}/users` },
    listGroups: { method: 'GET', path: `/v1/integrations/${i}/groups` },
    listMemberships: { method: 'GET', path: `/v1/integrations/${i}/memberships` },
    revokeConsent: { method: 'DELETE', path: `/v1/connectors/${connector.id}/consents/isolated.onmicrosoft.com` },
    migrateIntegration: { method: 'POST', path: `/v1/integrations/${i}/migrate`, body: { connectorId: connector.id, description: 'stolen' } },
    getWebhook: { method: 'GET', path: `/v1/webhooks/${hook.id}` },
    updateWebhook: { method: 'PATCH', path: `/v1/webhooks/${hook.id}`, body: { enabled: false } },
    deleteWebhook: { method: 'DELETE', path: `/v1/webhooks/${hook.id}` },
    rotateWebhookSecret: { method: 'POST', path: `/v1/webhooks/${hook.id}/rotate-secret` },
    listWebhookDeliveries: { method: 'GET', path: `/v1/webhooks/${hook.id}/deliveries` },
    redeliverWebhook: { method: 'POST', path: `/v1/webhooks/${hook.id}/deliveries/${hookDelivery}/redeliver` },
    testWebhook: { method: 'POST', path: `/v1/webhooks/${hook.id}/test` },
  };
  // Shared by every account: B sees them, but nothing of A's on them.
  const shared: Record<string, string> = { listConnectors: '/v1/connectors', getConnector: `/v1/connectors/${connector.id}` };
  const lists: Record<string, string> = {
    // B may ask for a consent URL of any tenant: the consent would be B's own, never A's (below).
    createConsentUrl: '',
    listIntegrations: '/v1/integrations',
    listRuns: `/v1/runs?integrationId=${i}`,
    listAudit: `/v1/audit?integrationId=${i}`,
    listActions: '/v1/actions',
    createIntegration: '',
    // Platform administrators only: refused to every account key (api-console-routes.test.ts).
    createConnector: '',
    // The caller's own account's feed, whatever the cursor (api-changes.test.ts).
    listChanges: '',
    getChangeHead: '',
    // The caller's own account's endpoints (api-webhooks.test.ts).
    listWebhooks: '/v1/webhooks',
    createWebhook: '',
  };
  const document = (await (await api.request('GET', '/v1/openapi.json')).json()) as { paths: Record<string, Record<string, { operationId: string }>> };
  const operations = Object.values(document.paths).flatMap((methods) => Object.values(methods).map((op) => op.operationId));
  expect(operations.filter((op) => !(op in calls) && !(op in lists) && !(op in shared))).toEqual([]);
  for (const [operation, path] of Object.entries(shared)) {
    const response = await api.request('GET', path, { token: tokenB });
    expect([operation, response.status]).toEqual([operation, 200]);
    expect(await response.text()).not.toContain('isolated');
  }

  for (const [operation, call] of Object.entries(calls)) {
    const response = await api.request(call.method, call.path, { token: tokenB, ...(call.body === undefined ? {} : { body: call.body }) });
    expect([operation, response.status]).toEqual([operation, 404]);
    // The problem's `instance` repeats the caller's own path; nothing else may name A's data.
    const text = (await response.text()).replace(call.path, '');
    expect(text).not.toContain('isolated');
  }
  for (const [operation, path] of Object.entries(lists)) {
    if (path === '') continue;
    const response = await api.request('GET', path, { token: tokenB });
    expect([operation, response.status]).toEqual([operation, 200]);
    expect((await response.json()) as unknown).toEqual({ items: [], ...(operation === 'listRuns' || operation === 'listAudit' ? { nextCursor: null } : {}) });
  }
  // createIntegration always acts on the key's own account, whatever the body says.
  const created = await api.client(tokenB).createIntegration({ kind: 'ldap', name: 'isolated', settings: ldapSettings() });
  expect(created.accountId).toBe(accountB);
  // A consent URL for A's tenant is B's own request; an integration of B on that tenant is refused.
  const consentUrl = await api.request('POST', `/v1/connectors/${connector.id}/consent-url`, { token: tokenB, body: { tenantId: 'isolated.onmicrosoft.com' } });
  expect(consentUrl.status).toBe(200);
  const onTenant = await api.request('POST', '/v1/integrations', { token: tokenB, body: { kind: 'entra_id', name: 'entra of A', settings: { tenantId: 'isolated.onmicrosoft.com', connectorId: connector.id } } });
  expect(onTenant.status).toBe(403);
  expect(await onTenant.json()).toMatchObject({ type: '/v1/problems/tenant-consent-required' });

  // Nothing of A's changed.
  const after = await getIntegration(api.db, i);
  expect(after).toMatchObject({ name: 'isolated', enabled: true });
  expect(await withIntegrationSecret(api.db, api.ring, i, async (s) => s)).toBe('iso-secret-7');
  expect((await adminA.getRun(runId)).approvedAt).toBeNull();
  expect(await queue.getJobCounts('waiting')).toMatchObject({ waiting: expect.any(Number) });
  expect((await adminA.listRuns({ integrationId: i })).items).toHaveLength(1);
});
