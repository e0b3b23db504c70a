import { request as httpsRequest } from 'node:https';
import {
  addPendingCredential,
  createConnector,
  createIntegration,
  getIntegration,
  listAudit,
  recordRotationOutcome,
  setLegacyMigrationDeadline,
} from '@dirsync/db';
import { DirsyncApiError, type DirsyncClient } from '@dirsync/client';
import { generateCertificate } from '@dirsync/providers';
import { type EntraEmulator, startEntraEmulator } from '@dirsync/testkit';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

let api: ApiHarness;
let emulator: EntraEmulator;
let accountA: string;
let accountB: string;
let adminA: DirsyncClient;
let tokenA: string;
let readA: string;
let tokenB: string;
let connectorId: string;
let privateKeyPem: string;
let redirectUri: string;

beforeAll(async () => {
  api = await startApiHarness('api_connectors');
  emulator = await startEntraEmulator();
  accountA = await api.account('alpha');
  accountB = await api.account('beta');
  tokenA = await api.key(accountA, ['admin']);
  readA = await api.key(accountA, ['read']);
  tokenB = await api.key(accountB, ['admin']);
  adminA = api.client(tokenA);

  // A connector registered in the emulator whose redirect URI is this API's consent callback.
  redirectUri = `${api.baseUrl}/v1/consent/callback`;
  const home = emulator.createTenant({ domain: 'dirsync-platform.onmicrosoft.com' });
  const certificate = await generateCertificate({ subject: 'dirsync connector api test', validityDays: 30 });
  privateKeyPem = certificate.privateKeyPem;
  const app = emulator.registerApplication({
    homeTenantId: home.tenantId,
    displayName: 'dirsync directory sync',
    certificates: [certificate.certificatePem],
    redirectUris: [redirectUri],
  });
  const connector = await createConnector(
    api.db,
    api.ring,
    {
      name: 'primary',
      description: 'Directory sync connector (emulated Entra ID)',
      clientId: app.appId,
      applicationObjectId: app.objectId,
      homeTenantId: home.tenantId,
      redirectUri,
      authorityHost: emulator.authorityHost,
      graphBaseUrl: emulator.graphBaseUrl,
      tlsCaPem: emulator.caPem,
    },
    certificate,
  );
  connectorId = connector.id;
});

afterAll(async () => {
  await api.close();
  await emulator.close();
});

/** Opens the emulated admin-consent page as the tenant's administrator; returns where it redirects. */
function followConsentPage(url: string): Promise<URL> {
  return new Promise((resolve, reject) => {
    httpsRequest(url, { ca: emulator.caPem }, (response) => {
      response.resume();
      const location = response.headers.location;
      if (response.statusCode === 302 && location) resolve(new URL(location));
      else reject(new Error(`the consent page answered ${response.statusCode ?? '?'}`));
    })
      .on('error', reject)
      .end();
  });
}

async function entraIntegration(accountId: string, name: string, tenantId: string) {
  return createIntegration(api.db, { accountId, kind: 'entra_id', name, settings: { tenantId, connectorId } });
}

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

test('connectors are listed with thumbprints, expiry and rotation status, never key material', async () => {
  await recordRotationOutcome(api.db, connectorId, { status: 'succeeded' });
  const [listed] = await api.client(readA).listConnectors();
  expect(listed).toMatchObject({
    id: connectorId,
    name: 'primary',
    redirectUri,
    permissions: expect.arrayContaining(['User.Read.All']),
    lastRotation: { status: 'succeeded', error: null, at: expect.any(String) },
    certificates: [{ status: 'current', thumbprint: expect.stringMatching(/^[0-9A-F]{40}$/), notAfter: expect.any(String) }],
  });
  const shown = await api.client(readA).getConnector(connectorId);
  expect(shown).toEqual(listed);
  for (const answer of [listed, shown]) {
    const text = JSON.stringify(answer);
    expect(text).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
    expect(text).not.toContain(privateKeyPem.split('\n')[1]);
    expect(text).not.toMatch(/ciphertext|tlsCaPem/i);
  }
  await expectProblem(adminA.getConnector('00000000-0000-4000-8000-000000000000'), 404, 'not-found');
  expect(api.logs.join('\n')).not.toMatch(/PRIVATE KEY/);
});

test('a consent URL round trip through the emulated consent page grants consent, and it shows', async () => {
  const customer = emulator.createTenant({ domain: 'contoso.onmicrosoft.com' });
  const integration = await entraIntegration(accountA, 'contoso', customer.tenantId);
  expect((await adminA.getConnector(connectorId)).tenants).toEqual([expect.objectContaining({ integrationId: integration.id, consentStatus: 'none' })]);
  expect((await adminA.listActions()).filter((a) => a.integrationId === integration.id).map((a) => a.type)).toEqual(['grant_consent']);

  const { url } = await adminA.createConsentUrl(connectorId, customer.tenantId);
  expect(url).toMatch(new RegExp(`^${emulator.authorityHost}/${customer.tenantId}/adminconsent\\?client_id=`));
  expect(new URL(url).searchParams.get('redirect_uri')).toBe(redirectUri);
  expect((await adminA.getConnector(connectorId)).tenants[0]?.consentStatus).toBe('pending');

  const redirect = await followConsentPage(url);
  expect(redirect.href.startsWith(redirectUri)).toBe(true);
  const page = await fetch(redirect);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  expect(page.headers.get('content-security-policy')).toBe("default-src 'none'");
  expect(await page.text()).toMatch(/<h1>Consent granted<\/h1>[\s\S]*granted consent to primary/);

  const tenant = (await adminA.getConnector(connectorId)).tenants.find((t) => t.integrationId === integration.id);
  expect(tenant).toMatchObject({ tenantId: customer.tenantId, consentStatus: 'granted', grantedAt: expect.any(String), error: null });
  expect((await adminA.listActions()).filter((a) => a.integrationId === integration.id)).toEqual([]);
  expect((await listAudit(api.db, { accountId: accountA })).map((e) => e.action)).toContain('connector.consent.requested');

  // The same redirect again: the state was used up.
  const replay = await fetch(redirect);
  expect(replay.status).toBe(400);
  expect(await replay.text()).toMatch(/Consent link not valid[\s\S]*already used/);
  const replayJson = await fetch(redirect, { headers: { accept: 'application/json' } });
  expect(replayJson.status).toBe(400);
  expect(replayJson.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(await replayJson.json()).toMatchObject({ type: '/v1/problems/invalid-consent-state', status: 400 });
  // Neither the state nor the request line reached the logs.
  expect(api.logs.join('\n')).not.toContain(redirect.searchParams.get('state') ?? 'no state');
});

test('a refused consent is recorded with its error; a forged state is refused', async () => {
  const customer = emulator.createTenant({ domain: 'fabrikam.onmicrosoft.com' });
  emulator.setConsentDecision(customer.tenantId, 'deny');
  const integration = await entraIntegration(accountA, 'fabrikam', customer.tenantId);
  const { url } = await adminA.createConsentUrl(connectorId, customer.tenantId.toUpperCase());
  const redirect = await followConsentPage(url);
  expect(redirect.searchParams.get('error')).toBe('access_denied');

  const answer = await fetch(redirect, { headers: { accept: 'application/json' } });
  expect(answer.status).toBe(200);
  expect(await answer.json()).toMatchObject({ status: 'denied', connectorId, tenantId: customer.tenantId, error: 'access_denied', errorDescription: expect.stringMatching(/AADSTS65004/) });
  const tenant = (await adminA.getConnector(connectorId)).tenants.find((t) => t.integrationId === integration.id);
  expect(tenant).toMatchObject({ consentStatus: 'denied', error: 'access_denied', errorDescription: expect.stringMatching(/declined/) });
  const [action] = (await adminA.listActions()).filter((a) => a.integrationId === integration.id);
  expect(action).toMatchObject({ type: 'grant_consent', connectorId, detail: expect.stringMatching(/denied: AADSTS65004/) });

  // A state this installation did not sign, and one whose ciphertext was altered.
  const forged = new URL(redirectUri);
  forged.searchParams.set('admin_consent', 'True');
  forged.searchParams.set('tenant', customer.tenantId);
  forged.searchParams.set('state', 'k1.Zm9yZ2Vk');
  expect((await fetch(forged)).status).toBe(400);
  const { url: second } = await adminA.createConsentUrl(connectorId, customer.tenantId);
  const state = new URL(second).searchParams.get('state') ?? '';
  forged.searchParams.set('state', `${state.slice(0, -2)}${state.endsWith('AA') ? 'BB' : 'AA'}`);
  expect((await fetch(forged)).status).toBe(400);
  expect((await fetch(`${redirectUri}?admin_consent=True`)).status).toBe(400);
  expect((await adminA.getConnector(connectorId)).tenants.find((t) => t.integrationId === integration.id)?.consentStatus).toBe('denied');

  // The error description is shown escaped, never as markup.
  const { url: third } = await adminA.createConsentUrl(connectorId, customer.tenantId);
  const hostile = new URL(redirectUri);
  hostile.searchParams.set('error', 'access_denied');
  hostile.searchParams.set('error_description', '<script>alert(1)</script>');
  hostile.searchParams.set('state', new URL(third).searchParams.get('state') ?? '');
  const html = await (await fetch(hostile)).text();
  expect(html).not.toContain('<script>');
  expect(html).toContain('&#60;script&#62;');
});

test('account isolation: tenants and consent of another account are neither shown nor reachable', async () => {
  const customer = emulator.createTenant({ domain: 'northwind.onmicrosoft.com' });
  const integration = await entraIntegration(accountA, 'northwind', customer.tenantId);
  const adminB = api.client(tokenB);
  // Every account may use the connector, but sees only its own tenants on it.
  const seenByB = await adminB.getConnector(connectorId);
  expect(seenByB.tenants).toEqual([]);
  expect(JSON.stringify(await adminB.listConnectors())).not.toContain(customer.tenantId);
  expect((await adminB.listActions()).some((a) => a.integrationId === integration.id)).toBe(false);
  // B cannot ask for a consent URL for A's tenant (it reads as absent), nor for an unknown one.
  await expectProblem(adminB.createConsentUrl(connectorId, customer.tenantId), 404, 'not-found');
  await expectProblem(adminA.createConsentUrl(connectorId, 'unknown.onmicrosoft.com'), 404, 'not-found');
  await expectProblem(adminA.createConsentUrl('00000000-0000-4000-8000-000000000000', customer.tenantId), 404, 'not-found');
  // A platform key has no account.
  const platform = await api.key(null, ['admin'], 'platform');
  expect((await api.request('GET', '/v1/connectors', { token: platform })).status).toBe(403);
});

test('scopes: a read key reads connectors but cannot create consent URLs; the callback needs no key', async () => {
  const customer = emulator.createTenant({ domain: 'litware.onmicrosoft.com' });
  await entraIntegration(accountA, 'litware', customer.tenantId);
  const denied = await api.request('POST', `/v1/connectors/${connectorId}/consent-url`, { token: readA, body: { tenantId: customer.tenantId } });
  expect(denied.status).toBe(403);
  expect(await denied.json()).toMatchObject({ type: '/v1/problems/insufficient-scope', requiredScope: 'admin' });
  const sync = await api.key(accountA, ['sync']);
  expect((await api.request('GET', '/v1/connectors', { token: sync })).status).toBe(403);
  expect((await api.request('GET', '/v1/connectors')).status).toBe(401);
  const invalid = await api.request('POST', `/v1/connectors/${connectorId}/consent-url`, { token: tokenA, body: { tenant: 'x' } });
  expect(invalid.status).toBe(400);
  expect(invalid.headers.get('content-type')).toMatch(/^application\/problem\+json/);

  // The callback is not behind the key check: it answers on the state alone.
  const { url } = await adminA.createConsentUrl(connectorId, customer.tenantId);
  const landed = await fetch(await followConsentPage(url));
  expect(landed.status).toBe(200);
});

test('actions include the legacy deadline, failed rotations and expiring certificates of the connectors the account uses', async () => {
  const legacy = await createIntegration(api.db, {
    accountId: accountA,
    kind: 'entra_id',
    name: 'legacy tenant',
    settings: { tenantId: 'legacy.onmicrosoft.com', legacyApp: { clientId: '11111111-2222-4333-8444-555555555555' } },
  });
  const deadline = new Date(Date.now() + 10 * 24 * 3600_000);
  await setLegacyMigrationDeadline(api.db, deadline);
  const customer = emulator.createTenant({ domain: 'adatum.onmicrosoft.com' });
  const integration = await entraIntegration(accountA, 'adatum', customer.tenantId);
  const { url } = await adminA.createConsentUrl(connectorId, customer.tenantId);
  await fetch(await followConsentPage(url));
  expect((await getIntegration(api.db, integration.id))?.status).toBe('new');

  await recordRotationOutcome(api.db, connectorId, { status: 'failed', error: 'graph: 403 Authorization_RequestDenied' });
  // Rotation normally replaces the current certificate well before it expires; this one expires soon.
  const expiring = await generateCertificate({ subject: 'dirsync connector expiring', validityDays: 2 });
  const pending = await addPendingCredential(api.db, api.ring, connectorId, expiring, null);
  await api.db.$client`update connector_credentials set status = 'previous' where connector_id = ${connectorId} and status = 'current'`;
  await api.db.$client`update connector_credentials set status = 'current' where id = ${pending.id}`;

  const actions = await adminA.listActions();
  expect(actions.find((a) => a.integrationId === legacy.id)).toMatchObject({
    type: 'legacy_integration',
    deadline: deadline.toISOString(),
    overdue: false,
    detail: expect.stringContaining(`before ${deadline.toISOString()}`),
  });
  const mine = actions.filter((a) => a.integrationId === integration.id);
  expect(mine.map((a) => a.type).sort()).toEqual(['certificate_expiring', 'connector_rotation_failed']);
  expect(mine.find((a) => a.type === 'connector_rotation_failed')).toMatchObject({ connectorId, detail: expect.stringMatching(/Authorization_RequestDenied/) });

  // Account B has no integration on the connector: none of this is its business.
  const actionsB = await api.client(tokenB).listActions();
  expect(actionsB).toEqual([]);
  // The connector shows the failed rotation and the new certificate.
  const connector = await adminA.getConnector(connectorId);
  expect(connector.lastRotation).toMatchObject({ status: 'failed', error: expect.stringMatching(/Authorization_RequestDenied/) });
  expect(connector.certificates.map((c) => c.status)).toEqual(['current', 'previous']);
  await setLegacyMigrationDeadline(api.db, null);
});
