import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createConnector, createConsoleSession, createIntegration, createKeyRing, generateSecretKey, getConsent, type ConsoleGrant, type ConsoleRole } from '@dirsync/db';
import { type EntraEmulator, followEmulatorPage, registerEmulatedConnectorApp, startEntraEmulator, testAllowedNetworksSetting, testRedisUrl, waitFor } from '@dirsync/testkit';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

// The console's migration flow through the real consent round trip: a console session asks for a
// consent URL with returnTo, the tenant's administrator consents on the emulated Entra ID, a
// `dirsync worker` process checks the token, the callback sends the browser back to the console
// page with consent=granted, and the session migrates the legacy integration. Also: who may create
// connectors through a console session.

const dirsyncBin = fileURLToPath(new URL('../../../bin/dirsync', import.meta.url));
const timeoutMs = 60_000;
const cookieName = 'dirsync_session';
const consoleUrl = 'http://console.test:8080';
const legacyClientId = '11111111-2222-4333-8444-555555555555';

let api: ApiHarness;
let emulator: EntraEmulator;
let worker: ChildProcess | undefined;
let workerOutput = '';
let assetsDir: string;
let accountA: string;
let accountB: string;
let connectorId: string;

beforeAll(async () => {
  const secretKey = generateSecretKey();
  assetsDir = await mkdtemp(join(tmpdir(), 'dirsync-console-routes-'));
  await writeFile(join(assetsDir, 'index.html'), '<!doctype html><title>dirsync console</title><div id="root"></div>');
  // The worker process decrypts the connector's key with the API's key ring.
  const ring = createKeyRing({ current: secretKey });
  // No scheduler jitter here: next syncs fall on the crons' own slots.
  api = await startApiHarness('api_console_consent', { keyRing: ring, controlTimeoutMs: 30_000, console: { assetsDir, publicUrl: consoleUrl }, scheduleJitterMaxMs: 0 });
  emulator = await startEntraEmulator();
  accountA = await api.account('alpha');
  accountB = await api.account('beta');

  const redirectUri = `${api.baseUrl}/v1/consent/callback`;
  const registered = await registerEmulatedConnectorApp(emulator, { redirectUri, subject: 'dirsync connector console test' });
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
      DIRSYNC_WORKER_ID: 'console-consent-worker',
      DIRSYNC_CONSENT_PROPAGATION_WAIT_SECONDS: '2',
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
  await rm(assetsDir, { recursive: true, force: true });
}, timeoutMs);

/** A console session (as a sign-in would make) and its CSRF token. */
async function session(grants: ConsoleGrant[], platformRole: ConsoleRole | null = null): Promise<{ token: string; csrf: string }> {
  const { token } = await createConsoleSession(api.db, { subject: `user-${Math.random()}`, name: 'Console User', email: 'admin@example.com', method: 'oidc', grants, platformRole, ttlMs: 60_000 });
  const answer = await fetch(`${api.baseUrl}/console/auth/session`, { headers: { cookie: `${cookieName}=${token}` } });
  expect(answer.status).toBe(200);
  return { token, csrf: ((await answer.json()) as { csrfToken: string }).csrfToken };
}

/** A request of the console page: cookie, CSRF token, and the account it acts on. */
async function consoleCall(who: { token: string; csrf: string }, method: string, path: string, body?: unknown, account?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { cookie: `${cookieName}=${who.token}`, 'x-csrf-token': who.csrf, origin: consoleUrl };
  if (account !== undefined) headers['x-dirsync-account'] = account;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${api.baseUrl}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await response.text();
  return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

/** What a browser does from a consent URL until the callback's last answer (not followed). */
async function consentInBrowser(url: string): Promise<Response> {
  const consented = await followEmulatorPage(emulator, url);
  const toSignIn = await fetch(consented, { redirect: 'manual', headers: { accept: 'text/html' } });
  expect(toSignIn.status).toBe(302);
  const signedIn = await followEmulatorPage(emulator, toSignIn.headers.get('location') ?? '');
  return fetch(signedIn, { redirect: 'manual', headers: { accept: 'text/html' } });
}

test('Migrate now: consent through returnTo comes back to the console with consent=granted, then the session migrates the integration', async () => {
  const customer = emulator.createTenant({ domain: 'fabrikam.onmicrosoft.com' });
  const legacy = await createIntegration(api.db, {
    accountId: accountA,
    kind: 'entra_id',
    name: 'Fabrikam Entra',
    settings: { tenantId: customer.tenantId, legacyApp: { clientId: legacyClientId } },
  });
  const admin = await session([{ accountId: accountA, role: 'admin' }, { accountId: accountB, role: 'viewer' }]);
  const returnTo = `/console/connectors?migrate=${legacy.id}`;

  // Before the consent: refused in words.
  const early = await consoleCall(admin, 'POST', `/v1/integrations/${legacy.id}/migrate`, { connectorId, description: 'Fabrikam users' }, accountA);
  expect(early).toMatchObject({ status: 409, body: { type: '/v1/problems/tenant-consent-required' } });

  const consentUrl = await consoleCall(admin, 'POST', `/v1/connectors/${connectorId}/consent-url`, { tenantId: customer.tenantId, returnTo }, accountA);
  expect(consentUrl.status).toBe(200);
  const back = await consentInBrowser(consentUrl.body['url'] as string);
  expect(back.status).toBe(303);
  const location = new URL(back.headers.get('location') ?? '', consoleUrl);
  expect(location.pathname).toBe('/console/connectors');
  expect(Object.fromEntries(location.searchParams)).toEqual({ migrate: legacy.id, consent: 'granted', tenant: customer.tenantId });
  expect(await getConsent(api.db, accountA, connectorId, customer.tenantId)).toMatchObject({ status: 'granted' });

  // With the account as a viewer, the same session may not migrate; the other account cannot see it.
  expect((await consoleCall(admin, 'POST', `/v1/integrations/${legacy.id}/migrate`, { connectorId, description: 'Fabrikam users' }, accountB)).status).toBe(403);
  const operator = await session([{ accountId: accountA, role: 'operator' }]);
  expect((await consoleCall(operator, 'POST', `/v1/integrations/${legacy.id}/migrate`, { connectorId, description: 'Fabrikam users' })).status).toBe(403);
  const blank = await consoleCall(admin, 'POST', `/v1/integrations/${legacy.id}/migrate`, { connectorId, description: '' }, accountA);
  expect(blank).toMatchObject({ status: 422, body: { errors: [{ path: 'description' }] } });

  const migrated = await consoleCall(admin, 'POST', `/v1/integrations/${legacy.id}/migrate`, { connectorId, description: 'Fabrikam users' }, accountA);
  expect(migrated.status).toBe(200);
  expect(migrated.body).toMatchObject({
    name: 'Fabrikam Entra',
    description: 'Fabrikam users',
    settings: { connectorId, tenantId: customer.tenantId },
    legacyClientId,
    tenantId: customer.tenantId,
    sync: { mode: 'full', runId: expect.any(String) },
  });
  const runId = (migrated.body['sync'] as { runId: string }).runId;
  const run = await consoleCall(admin, 'GET', `/v1/runs/${runId}`, undefined, accountA);
  expect(run.body).toMatchObject({ modeRequested: 'full', requestedBy: expect.stringMatching(/^console:admin@example\.com/) });
  const actions = (await consoleCall(admin, 'GET', '/v1/actions', undefined, accountA)).body['items'] as Array<{ type: string; integrationId: string; detail: string }>;
  expect(actions.filter((a) => a.integrationId === legacy.id).map((a) => a.type)).toEqual(['delete_old_app_registration']);
  expect(actions.find((a) => a.integrationId === legacy.id)?.detail).toContain(legacyClientId);
}, timeoutMs);

test('a consent that is not granted comes back to the console with consent=failed and the reason', async () => {
  const customer = emulator.createTenant({ domain: 'northwind.onmicrosoft.com' });
  const admin = await session([{ accountId: accountA, role: 'admin' }]);
  const consentUrl = await consoleCall(admin, 'POST', `/v1/connectors/${connectorId}/consent-url`, { tenantId: customer.tenantId, returnTo: '/console/connectors' });
  expect(consentUrl.status).toBe(200);
  // A Cloud Application Administrator signs in: that role may not grant Graph application permissions.
  emulator.signInAs({ tenant: customer.tenantId, roles: ['158c047a-c907-4556-b7ef-446551a6b5f7'] });
  try {
    const back = await consentInBrowser(consentUrl.body['url'] as string);
    expect(back.status).toBe(303);
    const location = new URL(back.headers.get('location') ?? '', consoleUrl);
    expect(location.pathname).toBe('/console/connectors');
    expect(location.searchParams.get('consent')).toBe('failed');
    expect(location.searchParams.get('tenant')).toBe(customer.tenantId);
    expect(location.searchParams.get('reason')).toMatch(/^not_granted: .*holds no directory role that can grant admin consent/);
  } finally {
    emulator.signInAs(undefined);
  }
  expect((await getConsent(api.db, accountA, connectorId, customer.tenantId))?.status).not.toBe('granted');
}, timeoutMs);

test('console sessions: only a platform admin creates connectors, whatever account it acts on', async () => {
  const body = () => ({ name: `Session connector ${Math.random()}`, description: 'made in the console', clientId: randomUUID(), objectId: randomUUID(), homeTenant: randomUUID() });
  const accountAdmin = await session([{ accountId: accountA, role: 'admin' }]);
  expect((await consoleCall(accountAdmin, 'POST', '/v1/connectors', body())).body).toMatchObject({ status: 403, type: '/v1/problems/platform-required' });
  const platformViewer = await session([{ accountId: accountA, role: 'admin' }], 'viewer');
  expect((await consoleCall(platformViewer, 'POST', '/v1/connectors', body(), accountA)).body).toMatchObject({ status: 403, type: '/v1/problems/platform-required' });
  const platformAdmin = await session([], 'admin');
  const created = await consoleCall(platformAdmin, 'POST', '/v1/connectors', body(), accountB);
  expect(created.status).toBe(201);
  expect(created.body['certificatePem']).toMatch(/^-----BEGIN CERTIFICATE-----/);
  // Without the CSRF token the change is refused before anything is made.
  const forged = await fetch(`${api.baseUrl}/v1/connectors`, {
    method: 'POST',
    headers: { cookie: `${cookieName}=${platformAdmin.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body()),
  });
  expect(forged.status).toBe(403);
  expect(((await forged.json()) as { type: string }).type).toBe('/v1/problems/csrf-token-invalid');
}, timeoutMs);

/** The next time `*\/5 * * * *` fires strictly after `at`. */
const nextFiveMinutes = (at: number) => new Date((Math.floor(at / 300_000) + 1) * 300_000).toISOString();
/** The next 02:00 UTC strictly after `at`. */
function nextTwoAm(at: number): string {
  const day = new Date(at);
  const candidate = Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), 2);
  return new Date(candidate > at ? candidate : candidate + 24 * 3600_000).toISOString();
}

test('with the scheduler jitter turned off, next syncs are the crons\' own next slots', async () => {
  const admin = await session([{ accountId: accountB, role: 'admin' }]);
  const before = Date.now();
  const created = await consoleCall(admin, 'POST', '/v1/integrations', { kind: 'ldap', name: 'Unjittered', settings: ldapSettings(), deltaCron: '*/5 * * * *', fullCron: '0 2 * * *' });
  const after = Date.now();
  expect(created.status).toBe(201);
  const nextSyncs = created.body['nextSyncs'] as { delta: string; full: string };
  expect([nextFiveMinutes(before), nextFiveMinutes(after)]).toContain(nextSyncs.delta);
  expect([nextTwoAm(before), nextTwoAm(after)]).toContain(nextSyncs.full);
});
