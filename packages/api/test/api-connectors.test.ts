import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { request as httpsRequest } from 'node:https';
import { fileURLToPath } from 'node:url';
import {
  addPendingCredential,
  confirmConsent,
  createConnector,
  createConsentRequest,
  createIntegration,
  createKeyRing,
  expireConsentRequests,
  generateSecretKey,
  getConsent,
  getIntegration,
  listAudit,
  recordRotationOutcome,
  setLegacyMigrationDeadline,
  hasGrantedConsent,
  type KeyRing,
} from '@dirsync/db';
import { DirsyncApiError, type DirsyncClient } from '@dirsync/client';
import { generateCertificate } from '@dirsync/providers';
import { type EntraEmulator, followEmulatorPage, globalAdministratorRoleId, registerEmulatedConnectorApp, startEntraEmulator, testAllowedNetworksSetting, testRedisUrl, waitFor } from '@dirsync/testkit';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

// The consent flow as deployed: this API, the emulated admin-consent page and token endpoint,
// and a `dirsync worker` process answering the callback's token check on the control queue.

const dirsyncBin = fileURLToPath(new URL('../../../bin/dirsync', import.meta.url));
const timeoutMs = 60_000;

let api: ApiHarness;
let emulator: EntraEmulator;
let worker: ChildProcess | undefined;
let workerOutput = '';
let accountA: string;
let accountB: string;
let adminA: DirsyncClient;
let adminB: DirsyncClient;
let tokenA: string;
let readA: string;
let tokenB: string;
let connectorId: string;
let privateKeyPem: string;
let redirectUri: string;
let ring: KeyRing;

beforeAll(async () => {
  // The worker process decrypts the connector's key with the API's key ring.
  const secretKey = generateSecretKey();
  ring = createKeyRing({ current: secretKey });
  api = await startApiHarness('api_connectors', { keyRing: ring, controlTimeoutMs: 30_000 });
  emulator = await startEntraEmulator();
  accountA = await api.account('alpha');
  accountB = await api.account('beta');
  tokenA = await api.key(accountA, ['admin']);
  readA = await api.key(accountA, ['read']);
  tokenB = await api.key(accountB, ['admin']);
  adminA = api.client(tokenA);
  adminB = api.client(tokenB);

  // A connector registered in the emulator whose redirect URI is this API's consent callback.
  redirectUri = `${api.baseUrl}/v1/consent/callback`;
  const registered = await registerEmulatedConnectorApp(emulator, { redirectUri, subject: 'dirsync connector api test' });
  privateKeyPem = registered.certificate.privateKeyPem;
  const connector = await createConnector(api.db, ring, { name: 'primary', description: 'Directory sync connector (emulated Entra ID)', ...registered.connector }, registered.certificate);
  connectorId = connector.id;

  const started = spawn(dirsyncBin, ['worker'], {
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: process.env['HOME'] ?? '/tmp',
      DATABASE_URL: api.database.url,
      REDIS_URL: testRedisUrl,
      DIRSYNC_QUEUE_PREFIX: api.prefix.prefix,
      DIRSYNC_SECRET_KEY: secretKey,
      DIRSYNC_METRICS_PORT: '0',
      DIRSYNC_WORKER_ID: 'consent-worker',
      // A partial consent is recorded after a short wait for permissions to propagate.
      DIRSYNC_CONSENT_PROPAGATION_WAIT_SECONDS: '2',
      // The emulator listens on loopback.
      DIRSYNC_ALLOWED_NETWORKS: testAllowedNetworksSetting,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  worker = started;
  started.stdout?.setEncoding('utf8').on('data', (text: string) => (workerOutput += text));
  started.stderr?.setEncoding('utf8').on('data', (text: string) => (workerOutput += text));
  await waitFor(
    () => {
      if (started.exitCode !== null) throw new Error(`dirsync worker exited (${started.exitCode}): ${workerOutput}`);
      return workerOutput.includes('"worker started"');
    },
    { timeoutMs: 30_000, what: 'dirsync worker to start' },
  );
}, timeoutMs);

afterAll(async () => {
  if (worker && worker.exitCode === null && worker.signalCode === null) {
    const closed = once(worker, 'close');
    worker.kill('SIGTERM');
    await closed;
  }
  await api?.close();
  await emulator?.close();
}, timeoutMs);

/**
 * The callback as a program reads it (JSON). A consent page's answer redirects to the sign-in,
 * which is followed (as the emulator's signed-in user) back to the callback.
 */
async function callback(url: URL): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { headers: { accept: 'application/json' }, redirect: 'manual' });
  const location = response.headers.get('location');
  if (response.status === 302 && location !== null) {
    expect(new URL(location).pathname).toMatch(/\/oauth2\/v2\.0\/authorize$/);
    return callback(await followEmulatorPage(emulator, location));
  }
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** The sign-in URL the callback sends a consent page's answer to. */
async function signInUrl(url: URL): Promise<URL> {
  const response = await fetch(url, { headers: { accept: 'application/json' }, redirect: 'manual' });
  expect(response.status).toBe(302);
  return new URL(response.headers.get('location') ?? '');
}

/** Consent URL of `client`'s account, approved by the tenant's administrator, then the callback. */
async function consent(client: DirsyncClient, tenantId: string): Promise<Record<string, unknown>> {
  const { url } = await client.createConsentUrl(connectorId, tenantId);
  return (await callback(await followEmulatorPage(emulator, url))).body;
}

/** A redirect typed by hand: the state of a consent URL of `client`'s account and any answer. */
async function forgedRedirect(client: DirsyncClient, tenantId: string, answer: Record<string, string>): Promise<URL> {
  const { url } = await client.createConsentUrl(connectorId, tenantId);
  const forged = new URL(redirectUri);
  for (const [name, value] of Object.entries(answer)) forged.searchParams.set(name, value);
  forged.searchParams.set('state', new URL(url).searchParams.get('state') ?? '');
  return forged;
}

function entraSettings(tenantId: string) {
  return { tenantId, connectorId };
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
    // The emulator's hosts are none of Microsoft's clouds.
    cloud: 'custom',
    authorityHost: emulator.authorityHost,
    graphBaseUrl: emulator.graphBaseUrl,
    permissions: ['User.Read.All', 'GroupMember.Read.All'],
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

test('a consent URL round trip grants consent only after a worker obtained a token carrying the permissions', async () => {
  const customer = emulator.createTenant({ domain: 'contoso.onmicrosoft.com' });
  // No integration yet: an integration may name the tenant only once the account holds its consent.
  await expectProblem(adminA.createIntegration({ kind: 'entra_id', name: 'contoso', settings: entraSettings(customer.tenantId) }), 403, 'tenant-consent-required');

  const { url } = await adminA.createConsentUrl(connectorId, customer.tenantId);
  expect(url).toMatch(new RegExp(`^${emulator.authorityHost}/${customer.tenantId}/v2\\.0/adminconsent\\?client_id=`));
  // v2-admin-consent.md: `scope` is required; `/.default` of the connector's own Graph.
  expect(new URL(url).searchParams.get('scope')).toBe(`${emulator.graphBaseUrl}/.default`);
  expect(new URL(url).searchParams.get('redirect_uri')).toBe(redirectUri);
  expect((await getConsent(api.db, accountA, connectorId, customer.tenantId))?.status).toBe('pending');

  const consented = await followEmulatorPage(emulator, url);
  expect(consented.href.startsWith(redirectUri)).toBe(true);
  // The consent page's answer sends the administrator on to sign in; nothing is granted yet.
  const signIn = await signInUrl(consented);
  expect(`${signIn.origin}${signIn.pathname}`).toBe(`${emulator.authorityHost}/${customer.tenantId}/oauth2/v2.0/authorize`);
  expect(Object.fromEntries(signIn.searchParams)).toMatchObject({ client_id: (await adminA.getConnector(connectorId)).clientId, response_type: 'code', scope: 'openid profile', redirect_uri: redirectUri });
  expect((await getConsent(api.db, accountA, connectorId, customer.tenantId))?.status).toBe('pending');
  const redirect = await followEmulatorPage(emulator, signIn.href);
  expect(redirect.searchParams.get('code')).toEqual(expect.any(String));
  const tokensBefore = emulator.requestsTo('login', '/token').filter((r) => r.tenantId === customer.tenantId).length;
  const page = await fetch(redirect);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  expect(page.headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'");
  expect(await page.text()).toMatch(/<h1>Consent granted<\/h1>[\s\S]*granted consent to primary/);
  // The worker redeemed the code and asked for the tenant's token: the grant rests on them, not
  // on any query string.
  expect(emulator.requestsTo('login', '/token').filter((r) => r.tenantId === customer.tenantId && r.status === 200)).toHaveLength(tokensBefore + 2);
  expect(await getConsent(api.db, accountA, connectorId, customer.tenantId)).toMatchObject({ status: 'granted', roles: expect.arrayContaining(['User.Read.All', 'GroupMember.Read.All']) });

  const integration = await adminA.createIntegration({ kind: 'entra_id', name: 'contoso', settings: entraSettings(customer.tenantId) });
  const tenant = (await adminA.getConnector(connectorId)).tenants.find((t) => t.integrationId === integration.id);
  expect(tenant).toMatchObject({ tenantId: customer.tenantId, consentStatus: 'granted', grantedAt: expect.any(String), error: null });
  expect((await adminA.listActions()).filter((a) => a.integrationId === integration.id)).toEqual([]);
  expect((await listAudit(api.db, { accountId: accountA })).map((e) => e.action)).toEqual(expect.arrayContaining(['connector.consent.requested', 'connector.consent.granted']));

  // The same redirect again: the state was used up.
  const replay = await fetch(redirect);
  expect(replay.status).toBe(400);
  expect(await replay.text()).toMatch(/Consent link not valid[\s\S]*already used/);
  const replayJson = await fetch(redirect, { headers: { accept: 'application/json' } });
  expect(replayJson.status).toBe(400);
  expect(replayJson.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(await replayJson.json()).toMatchObject({ type: '/v1/problems/invalid-consent-state', status: 400, detail: expect.stringMatching(/already used/) });
  // Neither the state nor the request line reached the logs.
  expect(api.logs.join('\n')).not.toContain(redirect.searchParams.get('state') ?? 'no state');
  expect(api.logs.join('\n')).not.toContain(redirect.searchParams.get('code') ?? 'no code');
  expect(api.logs.join('\n')).not.toContain(signIn.searchParams.get('state') ?? 'no state');
}, timeoutMs);

test("attack 1: another account cannot create or move an integration onto a tenant it holds no consent of", async () => {
  const customer = emulator.createTenant({ domain: 'woodgrove.onmicrosoft.com' });
  expect(await consent(adminA, customer.tenantId)).toMatchObject({ status: 'granted' });
  const mine = await adminA.createIntegration({ kind: 'entra_id', name: 'woodgrove', settings: entraSettings(customer.tenantId) });

  const refused = await expectProblem(adminB.createIntegration({ kind: 'entra_id', name: 'not mine', settings: entraSettings(customer.tenantId) }), 403, 'tenant-consent-required');
  expect(refused.problem.detail).toMatch(
    new RegExp(`^this account holds no granted consent of tenant ${customer.tenantId} to connector ${connectorId}: an Entra ID integration may use a tenant only through its own account's consent`),
  );
  expect(await adminB.listIntegrations()).toEqual([]);
  // Nor by renaming the tenant under the GUID or by editing an integration of its own.
  await expectProblem(adminB.createIntegration({ kind: 'entra_id', name: 'by domain', settings: entraSettings('woodgrove.onmicrosoft.com') }), 403, 'tenant-consent-required');
  const other = emulator.createTenant();
  await expectProblem(adminB.createIntegration({ kind: 'entra_id', name: 'own', settings: entraSettings(other.tenantId) }), 403, 'tenant-consent-required');
  // A's own integration: changing its tenant to one A has no consent of is refused too.
  await expectProblem(adminA.updateIntegration(mine.id, { settings: entraSettings(other.tenantId) }), 403, 'tenant-consent-required');
  expect((await adminA.getIntegration(mine.id)).settings).toMatchObject({ tenantId: customer.tenantId });
}, timeoutMs);

test("attack 2: a forged refusal ends only the forger's own request; A's grant and actions are untouched", async () => {
  const customer = emulator.createTenant({ domain: 'tailspin.onmicrosoft.com' });
  expect(await consent(adminA, customer.tenantId)).toMatchObject({ status: 'granted' });
  const integration = await adminA.createIntegration({ kind: 'entra_id', name: 'tailspin', settings: entraSettings(customer.tenantId) });
  const actionsBefore = await adminA.listActions();

  // B may ask for a consent URL of any tenant: it is B's own request, and answering it touches B only.
  const text = 'hijacked <script>alert(1)</script>';
  const forged = await forgedRedirect(adminB, customer.tenantId, { error: 'access_denied', error_description: text });
  const answer = await callback(forged);
  expect(answer).toMatchObject({ status: 200, body: { status: 'denied', error: 'access_denied', errorDescription: text, grantKept: false } });
  expect(await getConsent(api.db, accountA, connectorId, customer.tenantId)).toMatchObject({ status: 'granted', error: null, errorDescription: null });
  expect(await getConsent(api.db, accountB, connectorId, customer.tenantId)).toMatchObject({ status: 'denied' });
  expect((await getIntegration(api.db, integration.id))?.status).toBe('new');
  const actionsAfter = await adminA.listActions();
  expect(actionsAfter).toEqual(actionsBefore);
  expect(JSON.stringify(actionsAfter)).not.toContain('hijacked');

  // A refusal answering A's own request does not take A's grant away either.
  const own = await callback(await forgedRedirect(adminA, customer.tenantId, { error: 'access_denied', error_description: 'changed my mind' }));
  expect(own.body).toMatchObject({ status: 'denied', grantKept: true });
  expect((await getConsent(api.db, accountA, connectorId, customer.tenantId))?.status).toBe('granted');

  // admin_consent=True typed by B only leads to A's tenant's sign-in, where B is nobody; B signing
  // in as its own tenant's administrator instead proves nothing about A's tenant.
  const attacker = emulator.createTenant({ domain: 'attacker.onmicrosoft.com' });
  emulator.signInAs({ tenant: attacker.tenantId, roles: [globalAdministratorRoleId] });
  try {
    const signIn = await signInUrl(await forgedRedirect(adminB, customer.tenantId, { admin_consent: 'True', tenant: customer.tenantId }));
    await expect(followEmulatorPage(emulator, signIn.href)).rejects.toThrow(/answered 400/);
    const own = await signInUrl(await forgedRedirect(adminB, customer.tenantId, { admin_consent: 'True', tenant: customer.tenantId }));
    own.pathname = own.pathname.replace(customer.tenantId, attacker.tenantId);
    const claimed = await callback(await followEmulatorPage(emulator, own.href));
    expect(claimed.body).toMatchObject({ status: 'not_granted', errorDescription: expect.stringMatching(/signed in to tenant .* not to the tenant of the request/) });
  } finally {
    emulator.signInAs(undefined);
  }
  expect(await hasGrantedConsent(api.db, accountB, connectorId, customer.tenantId)).toBe(false);
  await expectProblem(adminB.createIntegration({ kind: 'entra_id', name: 'still not mine', settings: entraSettings(customer.tenantId) }), 403, 'tenant-consent-required');
}, timeoutMs);

test('admin_consent=True without a real consent, or with fewer permissions, grants nothing', async () => {
  const lonely = emulator.createTenant({ domain: 'lonely.onmicrosoft.com' });
  const forged = await callback(await forgedRedirect(adminA, lonely.tenantId, { admin_consent: 'True', tenant: lonely.tenantId }));
  expect(forged.body).toMatchObject({ status: 'not_granted', errorDescription: expect.stringMatching(/AADSTS700016/) });
  expect(await getConsent(api.db, accountA, connectorId, lonely.tenantId)).toMatchObject({ status: 'denied', error: 'consent_not_verified' });
  await expectProblem(adminA.createIntegration({ kind: 'entra_id', name: 'lonely', settings: entraSettings(lonely.tenantId) }), 403, 'tenant-consent-required');

  // The administrator approved users but not group members: the token lacks a required role.
  const partial = emulator.createTenant({ domain: 'partial.onmicrosoft.com' });
  emulator.setConsentDecision(partial.tenantId, 'approve', ['User.Read.All']);
  const answer = await consent(adminA, partial.tenantId);
  expect(answer).toMatchObject({ status: 'not_granted', errorDescription: expect.stringMatching(/carries User\.Read\.All; missing GroupMember\.Read\.All/) });
  expect(emulator.hasConsent(partial.tenantId, (await adminA.getConnector(connectorId)).clientId)).toBe(true);
  await expectProblem(adminA.createIntegration({ kind: 'entra_id', name: 'partial', settings: entraSettings(partial.tenantId) }), 403, 'tenant-consent-required');
}, timeoutMs);

test('a refusal is recorded with its error, shown escaped and capped; forged states are refused', async () => {
  const customer = emulator.createTenant({ domain: 'fabrikam.onmicrosoft.com' });
  expect(await consent(adminA, customer.tenantId)).toMatchObject({ status: 'granted' });
  const integration = await adminA.createIntegration({ kind: 'entra_id', name: 'fabrikam', settings: entraSettings(customer.tenantId) });
  await adminA.revokeConsent(connectorId, customer.tenantId);
  expect((await getIntegration(api.db, integration.id))?.status).toBe('needs_consent');

  emulator.setConsentDecision(customer.tenantId, 'deny');
  const { url } = await adminA.createConsentUrl(connectorId, customer.tenantId.toUpperCase());
  const redirect = await followEmulatorPage(emulator, url);
  // The v2.0 endpoint's refusal (v2-admin-consent.md): admin_consent=True beside the error.
  expect(redirect.searchParams.get('error')).toBe('consent_required');
  const refusedDescription = 'AADSTS65004: The resource owner or authorization server denied the request.';
  expect((await callback(redirect)).body).toMatchObject({ status: 'denied', connectorId, tenantId: customer.tenantId, error: 'consent_required', errorDescription: refusedDescription });
  const tenant = (await adminA.getConnector(connectorId)).tenants.find((t) => t.integrationId === integration.id);
  expect(tenant).toMatchObject({ consentStatus: 'denied', error: 'consent_required', errorDescription: refusedDescription });

  // A hostile description: control characters and markup, 5,000 characters long.
  const hostile = `\u001b[2J<script>alert(1)</script>\u202e${'x'.repeat(5000)}`;
  const shown = await fetch(await forgedRedirect(adminA, customer.tenantId, { error: 'access_denied', error_description: hostile }));
  const html = await shown.text();
  expect(html).not.toContain('<script>');
  expect(html).toContain('&#60;script&#62;');
  expect(html).not.toMatch(/[\u001b\u202e]/);
  const [action] = (await adminA.listActions()).filter((a) => a.integrationId === integration.id);
  expect(action).toMatchObject({ type: 'grant_consent', connectorId });
  // Stored without the control characters and cut to 300 characters (JSON carries it as text).
  expect(action?.detail).toMatch(/\(denied: \[2J<script>alert\(1\)<\/script> x+…\)/);
  expect(action?.detail).not.toMatch(/[\u0000-\u001f\u202e]/);
  expect(action?.detail.length).toBeLessThan(700);

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
  expect((await getConsent(api.db, accountA, connectorId, customer.tenantId))?.status).toBe('denied');
}, timeoutMs);

test('an error redirect without a state says consent was not granted and what to do, and changes no consent', async () => {
  const granted = emulator.createTenant({ domain: 'stateless-granted.onmicrosoft.com' });
  expect(await consent(adminA, granted.tenantId)).toMatchObject({ status: 'granted' });
  const refusing = emulator.createTenant({ domain: 'stateless.onmicrosoft.com' });
  const { url } = await adminA.createConsentUrl(connectorId, refusing.tenantId);
  emulator.setConsentDecision(refusing.tenantId, 'deny');
  emulator.setRealism({ consentErrorsWithoutState: true });
  try {
    const redirect = await followEmulatorPage(emulator, url);
    expect(redirect.searchParams.has('state')).toBe(false);
    const answer = await callback(redirect);
    expect(answer).toMatchObject({
      status: 200,
      body: { status: 'not_granted', recorded: false, error: 'consent_required', errorDescription: expect.stringMatching(/^AADSTS65004/), next: expect.stringMatching(/new one/) },
    });
    // The page a browser gets says the same, escaped.
    const hostile = new URL(redirectUri);
    hostile.searchParams.set('error', 'access_denied');
    hostile.searchParams.set('error_description', '<img src=x onerror=alert(1)>\u001b[2J declined');
    const page = await fetch(hostile);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toMatch(/<h1>Consent not granted<\/h1>/);
    expect(html).toContain('&#60;img src=x onerror=alert(1)&#62;');
    expect(html).not.toMatch(/<img|\u001b/);
    expect(html).toMatch(/Nothing was recorded/);
    // An error code that is not one is not echoed either.
    const odd = new URL(redirectUri);
    odd.searchParams.set('error', '<b>x</b>');
    expect((await callback(odd)).body).toMatchObject({ status: 'not_granted', error: 'invalid_response' });
  } finally {
    emulator.setRealism({ consentErrorsWithoutState: undefined });
  }
  // No account's consent moved: the granted one stays, the requested one still waits.
  expect((await getConsent(api.db, accountA, connectorId, granted.tenantId))?.status).toBe('granted');
  expect((await getConsent(api.db, accountA, connectorId, refusing.tenantId))?.status).toBe('pending');
  // Without state and without error it is still no valid consent answer.
  expect((await fetch(`${redirectUri}?admin_consent=True`)).status).toBe(400);
}, timeoutMs);

test('a consent request nobody finishes expires: its consent stops reading as pending', async () => {
  const tenant = emulator.createTenant({ domain: 'abandoned.onmicrosoft.com' });
  const request = await createConsentRequest(api.db, ring, { accountId: accountA, connectorId, tenantId: tenant.tenantId, ttlMs: 1 });
  expect((await getConsent(api.db, accountA, connectorId, tenant.tenantId))?.status).toBe('pending');
  await waitFor(async () => (await expireConsentRequests(api.db)) > 0, { what: 'the consent request to expire' });
  expect(await getConsent(api.db, accountA, connectorId, tenant.tenantId)).toMatchObject({ status: 'denied', error: 'consent_request_expired' });
  // Its link is refused when it arrives at last.
  const late = new URL(redirectUri);
  late.searchParams.set('admin_consent', 'True');
  late.searchParams.set('state', request.state);
  expect((await fetch(late)).status).toBe(400);
}, timeoutMs);

test("a tenant consented by two accounts is two consents: one account's revocation leaves the other's", async () => {
  const accountC = await api.account('gamma');
  const adminC = api.client(await api.key(accountC, ['admin']));
  const customer = emulator.createTenant({ domain: 'proseware.onmicrosoft.com' });
  expect(await consent(adminA, customer.tenantId)).toMatchObject({ status: 'granted' });
  expect(await consent(adminC, customer.tenantId)).toMatchObject({ status: 'confirmation_required' });
  await confirmConsent(api.db, { accountId: accountC, connectorId, tenantId: customer.tenantId, actor: 'platform' });
  const mine = await adminA.createIntegration({ kind: 'entra_id', name: 'proseware', settings: entraSettings(customer.tenantId) });
  const theirs = await adminC.createIntegration({ kind: 'entra_id', name: 'proseware', settings: entraSettings(customer.tenantId) });

  await adminA.revokeConsent(connectorId, customer.tenantId);
  expect((await getIntegration(api.db, mine.id))?.status).toBe('needs_consent');
  expect((await getIntegration(api.db, theirs.id))?.status).toBe('new');
  expect((await adminC.getConnector(connectorId)).tenants.find((t) => t.integrationId === theirs.id)?.consentStatus).toBe('granted');
  expect((await adminA.getConnector(connectorId)).tenants.find((t) => t.integrationId === mine.id)?.consentStatus).toBe('revoked');
  // Revoking what the account does not hold is a 404.
  await expectProblem(adminB.revokeConsent(connectorId, customer.tenantId), 404, 'not-found');
}, timeoutMs);

test('account isolation: tenants and consent of another account are neither shown nor reachable', async () => {
  const customer = emulator.createTenant({ domain: 'northwind.onmicrosoft.com' });
  expect(await consent(adminA, customer.tenantId)).toMatchObject({ status: 'granted' });
  const integration = await adminA.createIntegration({ kind: 'entra_id', name: 'northwind', settings: entraSettings(customer.tenantId) });
  // Every account may use the connector, but sees only its own tenants on it.
  const seenByB = await adminB.getConnector(connectorId);
  expect(seenByB.tenants).toEqual([]);
  expect(JSON.stringify(await adminB.listConnectors())).not.toContain(customer.tenantId);
  expect((await adminB.listActions()).some((a) => a.integrationId === integration.id)).toBe(false);
  await expectProblem(adminA.createConsentUrl('00000000-0000-4000-8000-000000000000', customer.tenantId), 404, 'not-found');
  await expectProblem(adminA.createConsentUrl(connectorId, 'not a tenant/..'), 422);
  // A platform key has no account.
  const platform = await api.key(null, ['admin'], 'platform');
  expect((await api.request('GET', '/v1/connectors', { token: platform })).status).toBe(403);
}, timeoutMs);

test('scopes: a read key reads connectors but cannot create consent URLs; the callback needs no key', async () => {
  const customer = emulator.createTenant({ domain: 'litware.onmicrosoft.com' });
  const denied = await api.request('POST', `/v1/connectors/${connectorId}/consent-url`, { token: readA, body: { tenantId: customer.tenantId } });
  expect(denied.status).toBe(403);
  expect(await denied.json()).toMatchObject({ type: '/v1/problems/insufficient-scope', requiredScope: 'admin' });
  const sync = await api.key(accountA, ['sync']);
  expect((await api.request('GET', '/v1/connectors', { token: sync })).status).toBe(403);
  expect((await api.request('GET', '/v1/connectors')).status).toBe(401);
  const invalid = await api.request('POST', `/v1/connectors/${connectorId}/consent-url`, { token: tokenA, body: { tenant: 'x' } });
  expect(invalid.status).toBe(400);
  expect(invalid.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect((await api.request('DELETE', `/v1/connectors/${connectorId}/consents/${customer.tenantId}`, { token: readA })).status).toBe(403);

  // The callback is not behind the key check: it answers on the state alone.
  const { url } = await adminA.createConsentUrl(connectorId, customer.tenantId);
  const landed = await fetch(await followEmulatorPage(emulator, url), { redirect: 'manual' });
  expect(landed.status).toBe(302);
}, timeoutMs);

/** Opens a sign-in page as a browser would: where it redirects, or the error page it shows. */
function openSignIn(url: URL | string): Promise<{ status: number; location: URL | undefined; text: string }> {
  return new Promise((resolve, reject) => {
    httpsRequest(url, { ca: emulator.caPem }, (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        const location = response.headers.location;
        resolve({ status: response.statusCode ?? 0, location: location === undefined ? undefined : new URL(location), text });
      });
    })
      .on('error', reject)
      .end();
  });
}

/** The same URL with its first path segment (the tenant) replaced. */
function withTenant(url: URL, tenantId: string): URL {
  const changed = new URL(url);
  changed.pathname = changed.pathname.replace(/^\/[^/]+\//, `/${tenantId}/`);
  return changed;
}

/**
 * An attacker's forged flow: `state` (of the attacker's own consent URL) with `admin_consent=True`
 * typed by hand; the callback's sign-in page is then opened in the attacker's own tenant, whose
 * administrator the attacker is. Returns the callback's answer to that sign-in.
 */
async function forgedSignIn(state: string, tenantId: string, attackerTenant: string): Promise<Record<string, unknown>> {
  const forged = new URL(redirectUri);
  forged.searchParams.set('admin_consent', 'True');
  forged.searchParams.set('tenant', tenantId);
  forged.searchParams.set('state', state);
  const signIn = await signInUrl(forged);
  expect(signIn.pathname).toBe(`/${tenantId}/oauth2/v2.0/authorize`);
  const signedIn = await openSignIn(withTenant(signIn, attackerTenant));
  expect(signedIn.status).toBe(302);
  return (await callback(signedIn.location ?? new URL(redirectUri))).body;
}

function stateOf(url: string): string {
  return new URL(url).searchParams.get('state') ?? '';
}

test("attack 3: B's forged answer landing before A's own reaches only the tenant's sign-in, where B proves nothing; A's consent then goes through", async () => {
  const customer = emulator.createTenant();
  const attackerHome = emulator.createTenant();
  const fromA = await adminA.createConsentUrl(connectorId, customer.tenantId);
  const fromB = await adminB.createConsentUrl(connectorId, customer.tenantId);
  // The tenant's administrator approves A's link; B learns of it and types its own answer first.
  const answeredA = await followEmulatorPage(emulator, fromA.url);
  expect(answeredA.searchParams.get('admin_consent')).toBe('True');
  const forged = new URL(redirectUri);
  forged.searchParams.set('admin_consent', 'True');
  forged.searchParams.set('tenant', customer.tenantId);
  forged.searchParams.set('state', stateOf(fromB.url));
  const signIn = await signInUrl(forged);
  expect(`${signIn.origin}${signIn.pathname}`).toBe(`${emulator.authorityHost}/${customer.tenantId}/oauth2/v2.0/authorize`);
  expect(await getConsent(api.db, accountB, connectorId, customer.tenantId)).toMatchObject({ status: 'pending' });

  // B is nobody in the tenant: its own account cannot sign in there.
  emulator.signInAs({ tenant: attackerHome.tenantId, roles: [globalAdministratorRoleId] });
  try {
    const page = await openSignIn(signIn);
    expect(page.status).toBe(400);
    expect(page.text).toMatch(/AADSTS50020/);
    expect(page.location).toBeUndefined();
  } finally {
    emulator.signInAs(undefined);
  }
  // B signs in to its own tenant instead, as its administrator, and brings that code back.
  const signedIn = await openSignIn(withTenant(signIn, attackerHome.tenantId));
  expect(signedIn.location?.searchParams.get('code')).toEqual(expect.any(String));
  const answerB = (await callback(signedIn.location ?? new URL(redirectUri))).body;
  expect(answerB).toMatchObject({ status: 'not_granted', errorDescription: expect.stringContaining(`signed in to tenant ${attackerHome.tenantId}, not to the tenant of the request`) });
  expect(await hasGrantedConsent(api.db, accountB, connectorId, customer.tenantId)).toBe(false);
  expect(await getConsent(api.db, accountB, connectorId, customer.tenantId)).toMatchObject({ status: 'denied', error: 'consent_not_verified' });
  await expectProblem(adminB.createIntegration({ kind: 'entra_id', name: 'stolen', settings: entraSettings(customer.tenantId) }), 403, 'tenant-consent-required');

  // A's administrator now signs in through A's flow: granted without anyone's confirmation.
  expect((await callback(answeredA)).body).toMatchObject({ status: 'granted', tenantGuid: customer.tenantId });
  const ada = customer.addUser({ displayName: 'Ada Lovelace', userPrincipalName: 'ada@customer.example' });
  const integration = await adminA.createIntegration({ kind: 'entra_id', name: 'landed-first', settings: entraSettings(customer.tenantId) });
  const { runId } = await adminA.requestSync(integration.id, { mode: 'full' });
  const run = await waitFor(
    async () => {
      const current = await adminA.getRun(runId);
      return current.status === 'queued' || current.status === 'running' ? undefined : current;
    },
    { timeoutMs: 30_000, what: "A's first sync of the tenant" },
  );
  expect(run.status).toBe('succeeded');
  expect((await adminA.listUsers(integration.id)).items.map((u) => u.externalId)).toContain(ada.id);
  await expectProblem(adminB.createIntegration({ kind: 'entra_id', name: 'stolen', settings: entraSettings(customer.tenantId) }), 403, 'tenant-consent-required');
}, timeoutMs);

test("attack 4: A's real flow and B's forged one racing, round after round, grant only A", async () => {
  const attackerHome = emulator.createTenant();
  for (let round = 0; round < 3; round += 1) {
    const customer = emulator.createTenant();
    const fromB = await adminB.createConsentUrl(connectorId, customer.tenantId);
    const [answerA, answerB] = await Promise.all([consent(adminA, customer.tenantId), forgedSignIn(stateOf(fromB.url), customer.tenantId, attackerHome.tenantId)]);
    expect(answerA).toMatchObject({ status: 'granted', tenantGuid: customer.tenantId });
    expect(answerB).toMatchObject({ status: 'not_granted', errorDescription: expect.stringMatching(/not to the tenant of the request/) });
    expect(await hasGrantedConsent(api.db, accountA, connectorId, customer.tenantId)).toBe(true);
    expect(await hasGrantedConsent(api.db, accountB, connectorId, customer.tenantId)).toBe(false);
    await expectProblem(adminB.createIntegration({ kind: 'entra_id', name: `race ${round}`, settings: entraSettings(customer.tenantId) }), 403, 'tenant-consent-required');
  }
  const granted = (await listAudit(api.db, { accountId: accountB })).filter((e) => e.action === 'connector.consent.granted' || e.action === 'connector.consent.admin_signed_in');
  expect(granted).toEqual([]);
}, timeoutMs);

test("attack 5: once A revoked, B's forged flow still grants nothing; A's administrator re-consents without a platform operator", async () => {
  const customer = emulator.createTenant();
  const attackerHome = emulator.createTenant();
  expect(await consent(adminA, customer.tenantId)).toMatchObject({ status: 'granted' });
  const integration = await adminA.createIntegration({ kind: 'entra_id', name: 'revoked-then-back', settings: entraSettings(customer.tenantId) });
  const revoked = await api.request('DELETE', `/v1/connectors/${connectorId}/consents/${customer.tenantId}`, { token: tokenA });
  expect(revoked.status).toBe(204);
  expect((await getIntegration(api.db, integration.id))?.status).toBe('needs_consent');

  // No other account holds the tenant now: B's forged answer must still prove nothing.
  const fromB = await adminB.createConsentUrl(connectorId, customer.tenantId);
  expect(await forgedSignIn(stateOf(fromB.url), customer.tenantId, attackerHome.tenantId)).toMatchObject({ status: 'not_granted' });
  expect(await hasGrantedConsent(api.db, accountB, connectorId, customer.tenantId)).toBe(false);
  await expectProblem(adminB.createIntegration({ kind: 'entra_id', name: 'after revoke', settings: entraSettings(customer.tenantId) }), 403, 'tenant-consent-required');

  expect(await consent(adminA, customer.tenantId)).toMatchObject({ status: 'granted', tenantGuid: customer.tenantId });
  expect(await getConsent(api.db, accountA, connectorId, customer.tenantId)).toMatchObject({ status: 'granted', revokedAt: null });
  expect((await getIntegration(api.db, integration.id))?.status).toBe('new');
}, timeoutMs);

test("a user of the tenant who is not an administrator cannot grant the consent", async () => {
  const customer = emulator.createTenant();
  // Cloud Application Administrator may not grant Graph application permissions.
  emulator.signInAs({ tenant: customer.tenantId, roles: ['158c047a-c907-4556-b7ef-446551a6b5f7'] });
  try {
    expect(await consent(adminA, customer.tenantId)).toMatchObject({
      status: 'not_granted',
      errorDescription: expect.stringMatching(/holds no directory role that can grant admin consent.*Global Administrator or Privileged Role Administrator/),
    });
  } finally {
    emulator.signInAs(undefined);
  }
  expect(await hasGrantedConsent(api.db, accountA, connectorId, customer.tenantId)).toBe(false);
  // The same tenant, its Privileged Role Administrator signing in: granted.
  emulator.signInAs({ tenant: customer.tenantId, roles: ['e8611ab8-c189-46e8-94e1-60213ab1f814'] });
  try {
    expect(await consent(adminA, customer.tenantId)).toMatchObject({ status: 'granted' });
  } finally {
    emulator.signInAs(undefined);
  }
}, timeoutMs);

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
  expect(await consent(adminA, customer.tenantId)).toMatchObject({ status: 'granted' });
  const integration = await adminA.createIntegration({ kind: 'entra_id', name: 'adatum', settings: entraSettings(customer.tenantId) });
  expect((await getIntegration(api.db, integration.id))?.status).toBe('new');

  await recordRotationOutcome(api.db, connectorId, { status: 'failed', error: 'graph: 403 Authorization_RequestDenied' });
  // Rotation normally replaces the current certificate well before it expires; this one expires soon.
  const expiring = await generateCertificate({ subject: 'dirsync connector expiring', validityDays: 2 });
  const pending = await addPendingCredential(api.db, api.ring, connectorId, expiring, null);
  const [original] = await api.db.$client<{ id: string }[]>`select id from connector_credentials where connector_id = ${connectorId} and status = 'current'`;
  await api.db.$client`update connector_credentials set status = 'previous' where connector_id = ${connectorId} and status = 'current'`;
  await api.db.$client`update connector_credentials set status = 'current' where id = ${pending.id}`;
  try {
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
  } finally {
    // The expiring certificate exists only in this database (the worker process and the
    // emulator do not know it): put the connector's real one back for whatever runs next.
    await api.db.$client`update connector_credentials set status = 'previous' where id = ${pending.id}`;
    if (original) await api.db.$client`update connector_credentials set status = 'current' where id = ${original.id}`;
    await setLegacyMigrationDeadline(api.db, null);
  }
}, timeoutMs);
