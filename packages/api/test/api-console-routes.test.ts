import { randomUUID, X509Certificate } from 'node:crypto';
import {
  acceptConsentRedirect,
  confirmConsent,
  createConnector,
  createConsentRequest,
  createIntegration,
  getIntegration,
  hasGrantedConsent,
  listAudit,
  recordConsentVerification,
  recordRotationOutcome,
} from '@dirsync/db';
import { generateCertificate } from '@dirsync/providers';
import { jitterOffsetMs, nextDueAt } from '@dirsync/scheduler';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

// What the console needs from the API beyond the CLI's routes, over HTTP against real
// PostgreSQL and Redis (no worker: queued runs stay queued, and consents are granted with the
// repository's own steps; api-console-routes-consent.test.ts goes through the emulator).

let api: ApiHarness;
let accountA: string;
let accountB: string;
let adminA: string;
let readA: string;
let syncA: string;
let adminB: string;
let platformAdmin: string;
let platformRead: string;
let connectorId: string;

const legacyClientId = '11111111-2222-4333-8444-555555555555';

beforeAll(async () => {
  api = await startApiHarness('api_console_routes');
  accountA = await api.account('alpha');
  accountB = await api.account('beta');
  adminA = await api.key(accountA, ['admin']);
  readA = await api.key(accountA, ['read']);
  syncA = await api.key(accountA, ['read', 'sync']);
  adminB = await api.key(accountB, ['admin']);
  platformAdmin = await api.key(null, ['admin'], 'platform admin');
  platformRead = await api.key(null, ['read'], 'platform reader');
  const connector = await createConnector(
    api.db,
    api.ring,
    {
      name: 'primary',
      description: 'the platform connector',
      clientId: randomUUID(),
      applicationObjectId: randomUUID(),
      homeTenantId: randomUUID(),
      redirectUri: `${api.baseUrl}/v1/consent/callback`,
      authorityHost: 'https://login.example',
      graphBaseUrl: 'https://graph.example',
    },
    await generateCertificate({ subject: 'dirsync connector primary', validityDays: 30 }),
  );
  connectorId = connector.id;
});

afterAll(async () => {
  await api.close();
});

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function call(method: string, path: string, token: string, body?: unknown): Promise<Answer> {
  const response = await api.request(method, path, { token, ...(body === undefined ? {} : { body }) });
  const text = await response.text();
  return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), headers: response.headers };
}

/** When the scheduler (its own functions, default jitter cap) next finds `cron` of the integration due after `at`. */
function schedulerDue(id: string, crons: { deltaCron: string; fullCron: string }, cron: string, at: number): string {
  return nextDueAt({ deltaCron: cron, fullCron: cron }, new Date(at), 'UTC', jitterOffsetMs(id, crons)).toISOString();
}

/** A tenant's consent granted to `account`, through each step the callback and a worker take. */
async function grantConsent(account: string, tenantId: string): Promise<void> {
  const request = await createConsentRequest(api.db, api.ring, { accountId: account, connectorId, tenantId });
  const consented = await acceptConsentRedirect(api.db, api.ring, new URLSearchParams({ admin_consent: 'True', state: request.state }));
  if (consented.kind !== 'sign_in') throw new Error('expected the sign-in step');
  const signIn = await acceptConsentRedirect(api.db, api.ring, new URLSearchParams({ code: 'code', state: new URL(consented.url).searchParams.get('state') ?? '' }));
  const outcome = await recordConsentVerification(api.db, signIn.request.nonce, {
    ok: true,
    tenantGuid: tenantId,
    roles: ['User.Read.All', 'GroupMember.Read.All'],
    admin: { objectId: randomUUID(), tenantGuid: tenantId },
  });
  // A tenant another account already holds waits for a platform administrator's confirmation.
  if (outcome.outcome === 'confirmation_required') await confirmConsent(api.db, { accountId: account, connectorId, tenantId, actor: 'platform' });
  else expect(outcome.outcome).toBe('granted');
  expect(await hasGrantedConsent(api.db, account, connectorId, tenantId)).toBe(true);
}

test('integrations show their next syncs per mode (none when disabled) and their latest run, in the list and alone', async () => {
  const before = Date.now();
  const created = await call('POST', '/v1/integrations', adminA, { kind: 'ldap', name: 'Corp LDAP', settings: ldapSettings(), deltaCron: '*/5 * * * *', fullCron: '0 2 * * *' });
  expect(created.status).toBe(201);
  const id = created.body['id'] as string;
  const idle = (await call('POST', '/v1/integrations', adminA, { kind: 'ldap', name: 'Idle LDAP', settings: ldapSettings(), enabled: false })).body['id'] as string;
  const listed = await call('GET', '/v1/integrations', readA);
  const after = Date.now();
  const byId = new Map((listed.body['items'] as Array<Record<string, unknown>>).map((item) => [item['id'], item]));
  const mine = byId.get(id);
  expect(mine?.['lastRun']).toBeNull();
  const nextSyncs = mine?.['nextSyncs'] as { delta: string; full: string };
  // The due times the scheduler itself computes, its stable jitter included.
  const crons = { deltaCron: '*/5 * * * *', fullCron: '0 2 * * *' };
  expect([schedulerDue(id, crons, crons.deltaCron, before), schedulerDue(id, crons, crons.deltaCron, after)]).toContain(nextSyncs.delta);
  expect([schedulerDue(id, crons, crons.fullCron, before), schedulerDue(id, crons, crons.fullCron, after)]).toContain(nextSyncs.full);
  expect(Date.parse(nextSyncs.delta) - before).toBeLessThan(2 * 300_000);
  expect(byId.get(idle)?.['nextSyncs']).toEqual({ delta: null, full: null });

  const sync = await call('POST', `/v1/integrations/${id}/syncs`, syncA, { mode: 'full' });
  expect(sync.status).toBe(202);
  const runId = sync.body['runId'] as string;
  const queued = await call('GET', `/v1/integrations/${id}`, readA);
  expect(queued.body['lastRun']).toEqual({
    id: runId,
    status: 'queued',
    mode: 'full',
    dryRun: false,
    counts: expect.objectContaining({ created: 0, updated: 0, deleted: 0 }),
    queuedAt: expect.any(String),
    startedAt: null,
    finishedAt: null,
    durationMs: null,
  });

  // As a worker would leave it: finished, with counts and a duration.
  await api.db.$client`update sync_runs set status = 'succeeded', mode = 'full', created = 7, updated = 2, deleted = 1, started_at = now() - interval '3 seconds', finished_at = now(), duration_ms = 3000 where id = ${runId}`;
  const relisted = (await call('GET', '/v1/integrations', readA)).body['items'] as Array<Record<string, unknown>>;
  expect(relisted.find((item) => item['id'] === id)?.['lastRun']).toMatchObject({
    id: runId,
    status: 'succeeded',
    counts: expect.objectContaining({ created: 7, updated: 2, deleted: 1 }),
    startedAt: expect.any(String),
    finishedAt: expect.any(String),
    durationMs: 3000,
  });
  expect(relisted.find((item) => item['id'] === idle)?.['lastRun']).toBeNull();

  // Disabling it drops its next syncs at once; another account sees none of it.
  const disabled = await call('POST', `/v1/integrations/${id}/disable`, adminA);
  expect(disabled.body['nextSyncs']).toEqual({ delta: null, full: null });
  expect(disabled.body['lastRun']).toMatchObject({ id: runId });
  expect((await call('GET', '/v1/integrations', adminB)).body['items']).toEqual([]);
  expect((await call('GET', `/v1/integrations/${id}`, adminB)).status).toBe(404);
});

test('migrate: refused in words for a blank description, an unknown connector, a non-legacy integration, or without consent', async () => {
  const tenantId = randomUUID();
  const legacy = await createIntegration(api.db, { accountId: accountA, kind: 'entra_id', name: 'Fabrikam Entra', settings: { tenantId, legacyApp: { clientId: legacyClientId } } });
  const path = `/v1/integrations/${legacy.id}/migrate`;

  const blank = await call('POST', path, adminA, { connectorId, description: '   ' });
  expect(blank.status).toBe(422);
  expect(blank.body).toMatchObject({ type: '/v1/problems/invalid-input', errors: [{ in: 'body', path: 'description', message: expect.stringMatching(/must not be blank/) }] });
  const missing = await call('POST', path, adminA, { connectorId });
  expect(missing.status).toBe(400);
  expect(missing.body['errors']).toEqual([expect.objectContaining({ in: 'body', path: 'description' })]);
  const notUuid = await call('POST', path, adminA, { connectorId: 'primary', description: 'Fabrikam users' });
  expect(notUuid.status).toBe(400);
  expect(notUuid.body['errors']).toEqual([expect.objectContaining({ path: 'connectorId', message: 'must be a uuid' })]);
  const unknown = await call('POST', path, adminA, { connectorId: randomUUID(), description: 'Fabrikam users' });
  expect(unknown.status).toBe(422);
  expect(unknown.body['errors']).toEqual([expect.objectContaining({ path: 'connectorId', message: expect.stringMatching(/^no connector/) })]);

  const noConsent = await call('POST', path, adminA, { connectorId, description: 'Fabrikam users' });
  expect(noConsent.status).toBe(409);
  expect(noConsent.body).toMatchObject({ type: '/v1/problems/tenant-consent-required', detail: expect.stringContaining(`POST /v1/connectors/${connectorId}/consent-url`) });

  const ldap = (await call('POST', '/v1/integrations', adminA, { kind: 'ldap', name: 'Not legacy', settings: ldapSettings() })).body['id'] as string;
  const notLegacy = await call('POST', `/v1/integrations/${ldap}/migrate`, adminA, { connectorId, description: 'x' });
  expect(notLegacy.status).toBe(409);
  expect(notLegacy.body).toMatchObject({ type: '/v1/problems/not-legacy-integration', detail: expect.stringMatching(/not a legacy Entra ID integration/) });

  // Scopes and accounts: an operator cannot migrate, another account's admin finds nothing.
  expect((await call('POST', path, syncA, { connectorId, description: 'Fabrikam users' })).body).toMatchObject({ status: 403, type: '/v1/problems/insufficient-scope' });
  expect((await call('POST', path, adminB, { connectorId, description: 'Fabrikam users' })).status).toBe(404);
  expect((await call('POST', path, platformAdmin, { connectorId, description: 'Fabrikam users' })).body).toMatchObject({ status: 403, type: '/v1/problems/account-required' });
  // Nothing changed.
  expect((await getIntegration(api.db, legacy.id))?.settings).toMatchObject({ legacyApp: { clientId: legacyClientId } });
});

test("migrate: with the account's granted consent, the integration moves to the connector, a full sync is queued, and the old app is named", async () => {
  const tenantId = randomUUID();
  const legacy = await createIntegration(api.db, { accountId: accountA, kind: 'entra_id', name: 'Contoso Entra', settings: { tenantId, legacyApp: { clientId: legacyClientId } } });
  // Another account's consent of the same tenant is not this account's.
  await grantConsent(accountB, tenantId);
  expect((await call('POST', `/v1/integrations/${legacy.id}/migrate`, adminA, { connectorId, description: 'Contoso users and groups' })).status).toBe(409);
  await grantConsent(accountA, tenantId);

  const migrated = await call('POST', `/v1/integrations/${legacy.id}/migrate`, adminA, { connectorId, description: '  Contoso users and groups  ' });
  expect(migrated.status).toBe(200);
  expect(migrated.body).toMatchObject({
    id: legacy.id,
    name: 'Contoso Entra',
    description: 'Contoso users and groups',
    kind: 'entra_id',
    settings: { tenantId, connectorId },
    hasSecret: false,
    legacyClientId,
    tenantId,
    sync: { runId: expect.any(String), mode: 'full', dryRun: false },
  });
  expect((migrated.body['settings'] as Record<string, unknown>)['legacyApp']).toBeUndefined();
  const runId = (migrated.body['sync'] as { runId: string }).runId;
  expect(migrated.body['lastRun']).toMatchObject({ id: runId, status: 'queued', mode: 'full' });
  const run = await call('GET', `/v1/runs/${runId}`, readA);
  expect(run.body).toMatchObject({ integrationId: legacy.id, modeRequested: 'full', status: 'queued', requestedBy: expect.stringMatching(/^api-key:admin/) });

  const audit = await listAudit(api.db, { accountId: accountA });
  expect(audit.find((event) => event.action === 'integration.migrated_to_connector' && event.integrationId === legacy.id)).toMatchObject({
    actor: expect.stringMatching(/^api-key:admin/),
    details: expect.objectContaining({ connectorId, legacyClientId }),
  });
  // The prompt to migrate is gone; the reminder to delete the old app registration is there.
  const actions = (await call('GET', '/v1/actions', readA)).body['items'] as Array<Record<string, unknown>>;
  const ofIt = actions.filter((action) => action['integrationId'] === legacy.id).map((action) => action['type']);
  expect(ofIt).toContain('delete_old_app_registration');
  expect(ofIt).not.toContain('legacy_integration');

  const again = await call('POST', `/v1/integrations/${legacy.id}/migrate`, adminA, { connectorId, description: 'again' });
  expect(again.status).toBe(409);
  expect(again.body['type']).toBe('/v1/problems/not-legacy-integration');
});

test('consent-url returnTo: only a path under /console/; hostile values are refused by field and nothing is requested', async () => {
  const tenantId = randomUUID();
  const accepted = await call('POST', `/v1/connectors/${connectorId}/consent-url`, adminA, { tenantId, returnTo: '/console/connectors?migrate=abc' });
  expect(accepted.status).toBe(200);
  expect(accepted.body['url']).toEqual(expect.stringContaining('adminconsent'));
  const requested = () => listAudit(api.db, { accountId: accountA }).then((events) => events.filter((event) => event.action === 'connector.consent.requested').length);
  const before = await requested();
  const hostile = [
    '//evil.example',
    '//evil.example/console/',
    '/console/\\evil.example',
    '/console//evil.example',
    'https://evil.example/console/',
    'javascript:alert(1)',
    '/v1/integrations',
    '/console',
    '/console/../v1/integrations',
    '/console/%2e%2e/v1/integrations',
    '/console/%2F%2Fevil.example',
    '/console/connectors#fragment',
    '/console/connectors\r\nSet-Cookie: x=1',
    '/console/ connectors',
    'console/connectors',
    '',
  ];
  for (const returnTo of hostile) {
    const refused = await call('POST', `/v1/connectors/${connectorId}/consent-url`, adminA, { tenantId, returnTo });
    expect([returnTo, refused.status]).toEqual([returnTo, 422]);
    expect(refused.body).toMatchObject({ type: '/v1/problems/invalid-input', errors: [{ in: 'body', path: 'returnTo', message: expect.any(String) }] });
  }
  expect(await requested()).toBe(before);
  expect((await call('POST', `/v1/connectors/${connectorId}/consent-url`, adminA, { tenantId, returnTo: 'x'.repeat(2001) })).status).toBe(400);
  // Asking for a consent URL stays an admin's: a read key is refused whatever returnTo says.
  expect((await call('POST', `/v1/connectors/${connectorId}/consent-url`, readA, { tenantId, returnTo: '/console/connectors' })).status).toBe(403);
});

test('the consent callback sends the browser back to returnTo with consent=failed and the reason; without returnTo it shows its own page', async () => {
  const tenantId = randomUUID();
  const stateOf = async (body: Record<string, unknown>) => {
    const answer = await call('POST', `/v1/connectors/${connectorId}/consent-url`, adminA, { tenantId, ...body });
    return new URL(answer.body['url'] as string).searchParams.get('state') ?? '';
  };
  const withReturn = await stateOf({ returnTo: '/console/connectors?migrate=abc&consent=stale' });
  const refusal = new URL(`${api.baseUrl}/v1/consent/callback`);
  refusal.searchParams.set('error', 'access_denied');
  refusal.searchParams.set('error_description', 'AADSTS65004: User declined to consent to access the app.');
  refusal.searchParams.set('state', withReturn);
  const back = await fetch(refusal, { redirect: 'manual', headers: { accept: 'text/html' } });
  expect(back.status).toBe(303);
  const location = back.headers.get('location') ?? '';
  expect(location.startsWith('/console/connectors?')).toBe(true);
  const query = new URL(location, api.baseUrl).searchParams;
  expect(query.get('migrate')).toBe('abc');
  expect(query.getAll('consent')).toEqual(['failed']);
  expect(query.get('tenant')).toBe(tenantId);
  expect(query.get('reason')).toMatch(/^access_denied: AADSTS65004: User declined/);
  // The state was used up on the way: the same answer again names no request, and no page.
  const replay = await fetch(refusal, { redirect: 'manual', headers: { accept: 'text/html' } });
  expect(replay.headers.get('location')).toBeNull();
  expect(await replay.text()).toMatch(/cannot be matched to a consent request/);

  const plain = await stateOf({});
  refusal.searchParams.set('state', plain);
  const page = await fetch(refusal, { redirect: 'manual', headers: { accept: 'text/html' } });
  expect(page.status).toBe(200);
  expect(page.headers.get('location')).toBeNull();
  expect(await page.text()).toMatch(/<h1>Consent not granted<\/h1>/);
});

test('connectors show the next rotation, failed rotations since the last success, and the current thumbprint', async () => {
  const before = Date.now();
  const shown = await call('GET', `/v1/connectors/${connectorId}`, readA);
  const certificates = shown.body['certificates'] as Array<{ status: string; thumbprint: string }>;
  expect(shown.body).toMatchObject({ rotationCron: '0 3 * * *', rotationFailures: 0, currentThumbprint: certificates.find((c) => c.status === 'current')?.thumbprint });
  expect(shown.body['currentThumbprint']).toMatch(/^[0-9A-F]{40}$/);
  const next = Date.parse(shown.body['nextRotationAt'] as string);
  expect(new Date(next).toISOString()).toMatch(/T03:00:00\.000Z$/);
  expect(next).toBeGreaterThan(before);
  expect(next - before).toBeLessThanOrEqual(24 * 3600_000);

  await recordRotationOutcome(api.db, connectorId, { status: 'failed', error: 'graph answered 500' });
  await recordRotationOutcome(api.db, connectorId, { status: 'failed', error: 'graph answered 503' });
  const failing = ((await call('GET', '/v1/connectors', readA)).body['items'] as Array<Record<string, unknown>>).find((c) => c['id'] === connectorId);
  expect(failing).toMatchObject({ rotationFailures: 2, lastRotation: { status: 'failed', error: 'graph answered 503' } });
  await recordRotationOutcome(api.db, connectorId, { status: 'succeeded' });
  expect((await call('GET', `/v1/connectors/${connectorId}`, readA)).body).toMatchObject({ rotationFailures: 0, lastRotation: { status: 'succeeded' } });
});

test('POST /v1/connectors: a platform administrator creates one and gets the public certificate to upload; duplicates are 409', async () => {
  const clientId = randomUUID().toUpperCase();
  const body = { name: 'Contoso connector', description: 'Directory sync for Contoso', clientId, objectId: randomUUID(), homeTenant: randomUUID() };
  const created = await call('POST', '/v1/connectors', platformAdmin, body);
  expect(created.status).toBe(201);
  const id = created.body['id'] as string;
  expect(created.headers.get('location')).toBe(`/v1/connectors/${id}`);
  expect(created.body).toMatchObject({
    name: 'Contoso connector',
    description: 'Directory sync for Contoso',
    clientId: clientId.toLowerCase(),
    cloud: 'global',
    authorityHost: 'https://login.microsoftonline.com',
    graphBaseUrl: 'https://graph.microsoft.com',
    // No redirect URI given: this API's own callback, as the request reached it.
    redirectUri: `${api.baseUrl}/v1/consent/callback`,
    rotationFailures: 0,
    tenants: [],
  });
  const pem = created.body['certificatePem'] as string;
  expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
  expect(JSON.stringify(created.body)).not.toMatch(/PRIVATE KEY/);
  // The PEM is the current certificate's: its thumbprint is the one shown.
  expect(new X509Certificate(pem).fingerprint.replaceAll(':', '')).toBe(created.body['currentThumbprint']);
  // Every account sees it from now on.
  expect((await call('GET', `/v1/connectors/${id}`, readA)).body).toMatchObject({ id, name: 'Contoso connector', currentThumbprint: created.body['currentThumbprint'] });
  expect((await listAudit(api.db, {})).find((event) => event.action === 'connector.created' && (event.details as Record<string, unknown>)['connectorId'] === id)).toMatchObject({
    actor: expect.stringMatching(/^api-key:platform admin/),
  });

  const sameName = await call('POST', '/v1/connectors', platformAdmin, { ...body, clientId: randomUUID() });
  expect(sameName.status).toBe(409);
  expect(sameName.body['detail']).toMatch(/named "Contoso connector" already exists/);
  const sameClient = await call('POST', '/v1/connectors', platformAdmin, { ...body, name: 'Another' });
  expect(sameClient.status).toBe(409);
  expect(sameClient.body['detail']).toMatch(/client id\) already exists/);

  const usgov = await call('POST', '/v1/connectors', platformAdmin, {
    ...body,
    name: 'Gov connector',
    clientId: randomUUID(),
    cloud: 'usgov',
    redirectUri: 'https://dirsync.example/v1/consent/callback',
    rotationCron: '30 4 * * 1',
    certificateValidityDays: 90,
  });
  expect(usgov.status).toBe(201);
  expect(usgov.body).toMatchObject({ cloud: 'usgov', authorityHost: 'https://login.microsoftonline.us', graphBaseUrl: 'https://graph.microsoft.us', rotationCron: '30 4 * * 1', certificateValidityDays: 90 });
  expect(api.logs.join('\n')).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
});

test('POST /v1/connectors: validation errors by field, and only platform administrators', async () => {
  const valid = { name: 'Validated', description: 'a description', clientId: randomUUID(), objectId: randomUUID(), homeTenant: randomUUID() };
  const blank = await call('POST', '/v1/connectors', platformAdmin, { ...valid, name: ' ', description: '' });
  expect(blank.status).toBe(422);
  expect(blank.body['errors']).toEqual([
    { in: 'body', path: 'name', message: 'must not be blank' },
    { in: 'body', path: 'description', message: 'must not be blank' },
  ]);
  const missing = await call('POST', '/v1/connectors', platformAdmin, { name: 'Validated', clientId: valid.clientId, objectId: valid.objectId, homeTenant: valid.homeTenant });
  expect(missing.status).toBe(400);
  expect(missing.body['errors']).toEqual([expect.objectContaining({ path: 'description' })]);
  const notGuid = await call('POST', '/v1/connectors', platformAdmin, { ...valid, clientId: 'my-app', homeTenant: 'contoso.onmicrosoft.com' });
  expect(notGuid.status).toBe(400);
  expect((notGuid.body['errors'] as Array<{ path: string; message: string }>).map((e) => [e.path, e.message])).toEqual([
    ['clientId', expect.stringMatching(/must be a GUID/)],
    ['homeTenant', expect.stringMatching(/must be a GUID/)],
  ]);
  expect((await call('POST', '/v1/connectors', platformAdmin, { ...valid, cloud: 'mars' })).body['errors']).toEqual([expect.objectContaining({ path: 'cloud' })]);
  const insecure = await call('POST', '/v1/connectors', platformAdmin, { ...valid, redirectUri: 'http://dirsync.example/v1/consent/callback' });
  expect(insecure.status).toBe(422);
  expect(insecure.body['errors']).toEqual([expect.objectContaining({ path: 'redirectUri', message: expect.stringMatching(/https:\/\//) })]);
  const badCron = await call('POST', '/v1/connectors', platformAdmin, { ...valid, rotationCron: 'every day' });
  expect(badCron.status).toBe(422);
  expect(badCron.body['errors']).toEqual([expect.objectContaining({ path: 'rotationCron' })]);
  expect((await call('POST', '/v1/connectors', platformAdmin, { ...valid, certificateValidityDays: 1 })).status).toBe(400);

  // Account keys, even admins, are refused; so is a platform key without the admin scope.
  const accountAdmin = await call('POST', '/v1/connectors', adminA, valid);
  expect(accountAdmin.status).toBe(403);
  expect(accountAdmin.body['type']).toBe('/v1/problems/platform-required');
  expect((await call('POST', '/v1/connectors', platformRead, valid)).body).toMatchObject({ status: 403, type: '/v1/problems/insufficient-scope' });
  expect((await api.request('POST', '/v1/connectors', { body: valid })).status).toBe(401);
  expect(((await call('GET', '/v1/connectors', readA)).body['items'] as Array<{ name: string }>).map((c) => c.name)).not.toContain('Validated');
});
