import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createConsoleSession, createConsoleSignInLink, createRun, finishRun, startRun, type ConsoleGrant, type ConsoleRole } from '@dirsync/db';
import { startOidcProvider, type TestOidcProvider } from '@dirsync/testkit';
import { safeReturnTo } from '../src/console/index.ts';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

// An attacker's view of the console's sign-in: a signed-in user of account A trying to reach
// account B or a higher role, a page of another site driving the user's browser (it can send
// top-level GETs and simple form POSTs, never custom headers), and whoever can put a URL in
// front of a signed-in user. Every answer here comes from a real API server on PostgreSQL and
// Redis, with a real OpenID Connect provider.

const consoleUrl = 'http://console.test:8080';
const cookieName = 'dirsync_session';
const clientId = 'dirsync-console';
const zeroUuid = '00000000-0000-4000-8000-000000000000';

let assetsDir: string;
let idp: TestOidcProvider;
let api: ApiHarness;
let accountA: string;
let accountB: string;
let adminKeyA: string;
let adminKeyB: string;
let integrationA: string;
let integrationB: string;
let runB: string;
let connectorId: string;

beforeAll(async () => {
  assetsDir = await mkdtemp(join(tmpdir(), 'dirsync-console-attack-'));
  await mkdir(join(assetsDir, 'assets'));
  await writeFile(join(assetsDir, 'index.html'), '<!doctype html><title>dirsync console</title><div id="root"></div>');
  await writeFile(join(assetsDir, 'assets', 'index-abc123.js'), 'console.log("app")');
  await writeFile(join(assetsDir, 'assets', 'index-abc123.js.map'), '{"version":3,"sources":["../src/main.tsx"],"mappings":""}');
  await writeFile(join(assetsDir, 'assets', 'index-abc123.css'), 'body{}');
  await writeFile(join(assetsDir, 'assets', '.env'), 'SECRET=dotfile');
  await writeFile(join(assetsDir, '.env'), 'SECRET=top-dotfile');
  await mkdir(join(assetsDir, 'assets', 'nested'));
  await writeFile(join(assetsDir, 'assets', 'nested', 'x.js'), 'nested');
  idp = await startOidcProvider({
    clients: [{ clientId, redirectUris: [`${consoleUrl}/console/auth/callback`] }],
    users: { mallory: { name: 'Mallory', email: 'mallory@example.com', roles: ['attack-a-1:viewer'] } },
  });
  api = await startApiHarness('console_attack', { console: { assetsDir, publicUrl: consoleUrl, oidc: { issuer: idp.issuer, clientId } } });
  accountA = await api.account('attack-a');
  accountB = await api.account('attack-b');
  adminKeyA = await api.key(accountA, ['admin']);
  adminKeyB = await api.key(accountB, ['admin']);
  integrationA = (await api.client(adminKeyA).createIntegration({ kind: 'ldap', name: 'a-ldap', settings: ldapSettings(), enabled: false })).id;
  integrationB = (await api.client(adminKeyB).createIntegration({ kind: 'ldap', name: 'b-ldap', settings: ldapSettings(), enabled: false })).id;
  const run = await createRun(api.db, { integrationId: integrationB, modeRequested: 'full', trigger: 'manual' });
  await startRun(api.db, run.id, { mode: 'full', workerId: 'attack-test' });
  await finishRun(api.db, run.id, { status: 'blocked', wouldDelete: 5 });
  runB = run.id;
  const platformAdmin = await api.key(null, ['admin'], 'platform admin');
  const connector = await api.request('POST', '/v1/connectors', {
    token: platformAdmin,
    body: { name: 'attack connector', description: 'a connector to ask consent of', clientId: randomUUID(), objectId: randomUUID(), homeTenant: randomUUID() },
  });
  expect(connector.status).toBe(201);
  connectorId = ((await connector.json()) as { id: string }).id;
});

afterAll(async () => {
  await api?.close();
  await idp?.close();
  await rm(assetsDir, { recursive: true, force: true });
});

async function sessionFor(grants: ConsoleGrant[], platformRole: ConsoleRole | null = null, ttlMs = 300_000): Promise<string> {
  const { token } = await createConsoleSession(api.db, { subject: `attacker-${Math.random()}`, name: 'Attacker', email: 'attacker@example.com', method: 'oidc', grants, platformRole, ttlMs });
  return token;
}

/** Uses a one-time link as its confirmation page's form does: a form POST from the console's origin. */
function useLink(token: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${api.baseUrl}/console/auth/link`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: consoleUrl, ...headers },
    body: new URLSearchParams({ token }).toString(),
  });
}

function withSession(token: string, headers: Record<string, string> = {}): Record<string, string> {
  return { cookie: `${cookieName}=${token}`, ...headers };
}

async function csrfOf(token: string): Promise<string> {
  const response = await fetch(`${api.baseUrl}/console/auth/session`, { headers: withSession(token) });
  expect(response.status).toBe(200);
  return ((await response.json()) as { csrfToken: string }).csrfToken;
}

async function problemType(response: Response): Promise<string> {
  const body = (await response.json()) as { type?: string };
  return body.type ?? '';
}

function setCookieOf(response: Response, name = cookieName): string | undefined {
  for (const header of response.headers.getSetCookie()) {
    const pair = header.split(';')[0] ?? '';
    const eq = pair.indexOf('=');
    if (pair.slice(0, eq) === name) return decodeURIComponent(pair.slice(eq + 1));
  }
  return undefined;
}

/** Every state-changing /v1 route the server registered, with its parameters filled in. */
function changingRoutes(): Array<{ method: string; path: string }> {
  const seen = new Set<string>();
  const routes: Array<{ method: string; path: string }> = [];
  for (const route of api.server.routes) {
    if (!route.url.startsWith('/v1/') || !['POST', 'PUT', 'PATCH', 'DELETE'].includes(route.method)) continue;
    const path = route.url.replace(/:id\b/g, integrationA).replace(/:tenantId\b/g, zeroUuid).replace(/:[A-Za-z]+/g, zeroUuid);
    const key = `${route.method} ${path}`;
    if (seen.has(key)) continue;
    seen.add(key);
    routes.push({ method: route.method, path });
  }
  return routes;
}

/** A request sent exactly as written (fetch would normalise the path, or join repeated headers its own way). */
function raw(method: string, path: string, headers: Array<[string, string]>, body?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const { hostname, port } = new URL(api.baseUrl);
  return new Promise((resolve, reject) => {
    // Raw header lists get no Host of their own, which HTTP/1.1 requires.
    const request = httpRequest({ host: hostname, port, path, method, headers: [['host', `${hostname}:${port}`], ...headers].flat() }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

async function integrationExists(id: string, key: string): Promise<boolean> {
  return (await api.request('GET', `/v1/integrations/${id}`, { token: key })).status === 200;
}

describe('CSRF', () => {
  test('every state-changing /v1 route refuses a session change without the CSRF token, before doing anything', async () => {
    const admin = await sessionFor([{ accountId: accountA, role: 'admin' }], 'admin');
    const routes = changingRoutes();
    // The console's own routes are among them: a registration table that lost one would show here.
    expect(routes.map((route) => `${route.method} ${route.path.replace(integrationA, ':id')}`)).toEqual(
      expect.arrayContaining(['POST /v1/integrations', 'DELETE /v1/integrations/:id', 'PUT /v1/integrations/:id/secret', 'POST /v1/integrations/:id/migrate', 'POST /v1/connectors']),
    );
    for (const { method, path } of routes) {
      const json = await fetch(`${api.baseUrl}${path}`, { method, headers: withSession(admin, { 'content-type': 'application/json', 'x-dirsync-account': accountA }), body: '{}' });
      expect({ route: `${method} ${path}`, status: json.status, type: await problemType(json) }).toEqual({ route: `${method} ${path}`, status: 403, type: '/v1/problems/csrf-token-invalid' });
      // What a cross-site <form> can send without a preflight: a POST, no custom header, a simple body.
      if (method !== 'POST') continue;
      for (const [type, body] of [
        ['application/x-www-form-urlencoded', 'name=evil&enabled=true'],
        ['text/plain', '{"name":"evil"}'],
        ['multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--\r\n'],
      ] as const) {
        const form = await fetch(`${api.baseUrl}${path}`, { method: 'POST', headers: withSession(admin, { 'content-type': type, origin: 'https://evil.example' }), body });
        expect({ route: `${method} ${path}`, type, status: form.status }).toEqual({ route: `${method} ${path}`, type, status: 403 });
      }
    }
    expect(await integrationExists(integrationA, adminKeyA)).toBe(true);
  });

  test('origins: "null", another site, another port and another scheme are refused even with the right token', async () => {
    const operator = await sessionFor([{ accountId: accountA, role: 'operator' }]);
    const csrf = await csrfOf(operator);
    const url = `${api.baseUrl}/v1/integrations/${integrationA}/test-connection`;
    for (const origin of ['null', 'https://evil.example', 'http://console.test:8081', 'https://console.test:8080', 'http://console.test:8080.evil.example', 'http://evil.console.test:8080']) {
      const answer = await fetch(url, { method: 'POST', headers: withSession(operator, { 'x-csrf-token': csrf, origin }) });
      expect({ origin, status: answer.status, type: await problemType(answer) }).toEqual({ origin, status: 403, type: '/v1/problems/origin-not-allowed' });
    }
  });

  test('another session\'s token, a token of a signed-out session, or a token sent twice do not pass', async () => {
    const victim = await sessionFor([{ accountId: accountA, role: 'admin' }]);
    const attacker = await sessionFor([{ accountId: accountA, role: 'viewer' }]);
    const attackerCsrf = await csrfOf(attacker);
    const victimCsrf = await csrfOf(victim);
    const url = `${api.baseUrl}/v1/integrations/${integrationA}/enable`;
    expect((await fetch(url, { method: 'POST', headers: withSession(victim, { 'x-csrf-token': attackerCsrf }) })).status).toBe(403);
    // Repeated headers arrive joined (or as a list): never accepted.
    const twice = await raw('POST', `/v1/integrations/${integrationA}/enable`, [['cookie', `${cookieName}=${victim}`], ['x-csrf-token', victimCsrf], ['x-csrf-token', victimCsrf]]);
    expect(twice.status).toBe(403);
    // Base64url is case-sensitive: a token in other case is another token.
    const swapped = victimCsrf.replace(/[a-z]/, (c) => c.toUpperCase());
    if (swapped !== victimCsrf) expect((await fetch(url, { method: 'POST', headers: withSession(victim, { 'x-csrf-token': swapped }) })).status).toBe(403);
    expect((await fetch(url, { method: 'POST', headers: withSession(victim, { 'x-csrf-token': '' }) })).status).toBe(403);
    expect(await api.client(adminKeyA).getIntegration(integrationA)).toMatchObject({ enabled: false });
  });

  test('method override headers and parameters do not turn a safe request into a change', async () => {
    const admin = await sessionFor([{ accountId: accountA, role: 'admin' }]);
    for (const header of ['x-http-method-override', 'x-http-method', 'x-method-override']) {
      const answer = await fetch(`${api.baseUrl}/v1/integrations/${integrationA}?_method=DELETE`, { headers: withSession(admin, { [header]: 'DELETE' }) });
      expect(answer.status).toBe(200);
      const post = await fetch(`${api.baseUrl}/v1/integrations/${integrationA}/enable?_method=GET`, { method: 'POST', headers: withSession(admin, { [header]: 'GET' }) });
      expect(post.status).toBe(403);
    }
    expect(await integrationExists(integrationA, adminKeyA)).toBe(true);
    expect(await api.client(adminKeyA).getIntegration(integrationA)).toMatchObject({ enabled: false });
  });

  test('sign-out: no token, another session\'s token, origin "null" or another site leave the session alive', async () => {
    const victim = await sessionFor([{ accountId: accountA, role: 'viewer' }]);
    const other = await csrfOf(await sessionFor([{ accountId: accountA, role: 'viewer' }]));
    const csrf = await csrfOf(victim);
    const logout = (headers: Record<string, string>, body?: string) => fetch(`${api.baseUrl}/console/auth/logout`, { method: 'POST', headers: withSession(victim, headers), ...(body === undefined ? {} : { body }) });
    expect((await logout({})).status).toBe(403);
    // A form's body is refused as such (415) or for want of the token (403): never signed out.
    expect([403, 415]).toContain((await logout({ 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' }, 'a=b')).status);
    expect([403, 415]).toContain((await logout({ 'content-type': 'text/plain' }, 'x')).status);
    expect((await logout({ 'x-csrf-token': other })).status).toBe(403);
    expect((await logout({ 'x-csrf-token': csrf, origin: 'null' })).status).toBe(403);
    expect((await logout({ 'x-csrf-token': csrf, origin: 'https://evil.example' })).status).toBe(403);
    // A top-level GET (a link, an <img>) is the SPA's page, not a sign-out.
    const get = await fetch(`${api.baseUrl}/console/auth/logout`, { headers: withSession(victim) });
    expect(setCookieOf(get)).toBeUndefined();
    expect((await fetch(`${api.baseUrl}/console/auth/session`, { headers: withSession(victim) })).status).toBe(200);
  });

  test('no cross-origin reads: the session answer (with its CSRF token) and /v1 carry no CORS grant', async () => {
    const token = await sessionFor([{ accountId: accountA, role: 'viewer' }]);
    for (const path of ['/console/auth/session', '/v1/integrations']) {
      const answer = await fetch(`${api.baseUrl}${path}`, { headers: withSession(token, { origin: 'https://evil.example' }) });
      expect(answer.headers.get('access-control-allow-origin')).toBeNull();
      expect(answer.headers.get('access-control-allow-credentials')).toBeNull();
      const preflight = await fetch(`${api.baseUrl}${path}`, {
        method: 'OPTIONS',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-csrf-token' },
      });
      expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    }
  });
});

describe('accounts and roles', () => {
  test('X-Dirsync-Account: another account, unknown, malformed, repeated or comma-joined values are refused', async () => {
    const viewerA = await sessionFor([{ accountId: accountA, role: 'viewer' }]);
    const refused = [accountB, zeroUuid, '*', 'platform', 'null', 'attack-a-1', accountA.toUpperCase(), ` ${accountA}`, `${accountA} `, `${accountA},${accountB}`, `${accountA}, ${accountB}`, `${accountA}x`, `{${accountA}}`, `'${accountA}'`];
    for (const value of refused) {
      const answer = await raw('GET', '/v1/integrations', [['cookie', `${cookieName}=${viewerA}`], ['x-dirsync-account', value]]);
      // Node trims header values: a padded uuid is the uuid itself and stays on account A.
      if (value.trim() === accountA) {
        expect(answer.status).toBe(200);
        expect(answer.body).not.toContain(integrationB);
        continue;
      }
      expect({ value, status: answer.status }).toEqual({ value, status: 403 });
    }
    const repeated = await raw('GET', '/v1/integrations', [['cookie', `${cookieName}=${viewerA}`], ['x-dirsync-account', accountA], ['x-dirsync-account', accountB]]);
    expect(repeated.status).toBe(403);
    const repeatedSame = await raw('GET', '/v1/integrations', [['cookie', `${cookieName}=${viewerA}`], ['x-dirsync-account', accountB], ['x-dirsync-account', accountA]]);
    expect(repeatedSame.status).toBe(403);
  });

  test('ids of account B\'s integration, run, objects and consents are not found with account A selected', async () => {
    const both = await sessionFor([{ accountId: accountA, role: 'admin' }]);
    const csrf = await csrfOf(both);
    const headers = withSession(both, { 'x-dirsync-account': accountA, 'x-csrf-token': csrf, 'content-type': 'application/json' });
    const reads = [
      `/v1/integrations/${integrationB}`,
      `/v1/runs/${runB}`,
      `/v1/runs/${runB}/changes`,
      `/v1/runs/${runB}/issues`,
      `/v1/integrations/${integrationB}/users`,
      `/v1/integrations/${integrationB}/groups`,
      `/v1/integrations/${integrationB}/memberships`,
    ];
    for (const path of reads) {
      const answer = await fetch(`${api.baseUrl}${path}`, { headers });
      const text = await answer.text();
      expect({ path, status: answer.status, leaks: /b-ldap|blocked/.test(text) }).toEqual({ path, status: 404, leaks: false });
    }
    const filtered = await fetch(`${api.baseUrl}/v1/runs?integrationId=${integrationB}`, { headers });
    expect(filtered.status).toBe(200);
    expect(((await filtered.json()) as { items: unknown[] }).items).toEqual([]);
    const changes: Array<[string, string, unknown]> = [
      ['POST', `/v1/runs/${runB}/approve`, undefined],
      ['POST', `/v1/integrations/${integrationB}/syncs`, {}],
      ['POST', `/v1/integrations/${integrationB}/enable`, undefined],
      ['PATCH', `/v1/integrations/${integrationB}`, { name: 'pwned' }],
      ['PUT', `/v1/integrations/${integrationB}/secret`, { secret: 'x' }],
      ['DELETE', `/v1/integrations/${integrationB}`, undefined],
      ['DELETE', `/v1/connectors/${connectorId}/consents/${zeroUuid}`, undefined],
      ['POST', `/v1/integrations/${integrationB}/migrate`, { connectorId: zeroUuid, description: 'x' }],
    ];
    for (const [method, path, body] of changes) {
      const answer = await fetch(`${api.baseUrl}${path}`, { method, headers: body === undefined ? withSession(both, { 'x-dirsync-account': accountA, 'x-csrf-token': csrf }) : headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      expect({ method, path, status: answer.status }).toEqual({ method, path, status: 404 });
    }
    expect(await api.client(adminKeyB).getIntegration(integrationB)).toMatchObject({ name: 'b-ldap', enabled: false });
    expect(await api.client(adminKeyB).getRun(runB)).toMatchObject({ status: 'blocked' });
  });

  test('a viewer cannot sync or change; an operator cannot set secrets, migrate, delete, approve or create connectors', async () => {
    const viewer = await sessionFor([{ accountId: accountA, role: 'viewer' }]);
    const operator = await sessionFor([{ accountId: accountA, role: 'operator' }]);
    const attempts: Array<[string, string, unknown, ConsoleRole[]]> = [
      ['POST', `/v1/integrations/${integrationA}/syncs`, {}, ['viewer']],
      ['POST', `/v1/integrations/${integrationA}/test-connection`, undefined, ['viewer']],
      ['POST', `/v1/integrations/${integrationA}/enable`, undefined, ['viewer', 'operator']],
      ['PATCH', `/v1/integrations/${integrationA}`, { name: 'renamed' }, ['viewer', 'operator']],
      ['PUT', `/v1/integrations/${integrationA}/secret`, { secret: 'hunter2' }, ['viewer', 'operator']],
      ['POST', `/v1/integrations/${integrationA}/migrate`, { connectorId: zeroUuid, description: 'x' }, ['viewer', 'operator']],
      ['DELETE', `/v1/integrations/${integrationA}`, undefined, ['viewer', 'operator']],
      ['POST', '/v1/integrations', { kind: 'ldap', name: 'evil', settings: ldapSettings() }, ['viewer', 'operator']],
      ['POST', `/v1/connectors/${zeroUuid}/consent-url`, { tenantId: 'contoso.onmicrosoft.com' }, ['viewer', 'operator']],
      ['DELETE', `/v1/connectors/${zeroUuid}/consents/${zeroUuid}`, undefined, ['viewer', 'operator']],
      ['POST', `/v1/runs/${zeroUuid}/approve`, undefined, ['viewer', 'operator']],
      [
        'POST',
        '/v1/connectors',
        { name: 'evil', description: 'evil', clientId: zeroUuid, objectId: zeroUuid, homeTenant: zeroUuid },
        ['viewer', 'operator'],
      ],
    ];
    for (const [role, token] of [['viewer', viewer], ['operator', operator]] as const) {
      const csrf = await csrfOf(token);
      for (const [method, path, body, refusedFor] of attempts) {
        if (!refusedFor.includes(role)) continue;
        const answer = await fetch(`${api.baseUrl}${path}`, {
          method,
          headers: withSession(token, { 'x-csrf-token': csrf, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }),
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        expect({ role, method, path, status: answer.status, type: await problemType(answer) }).toEqual({ role, method, path, status: 403, type: '/v1/problems/insufficient-scope' });
      }
    }
    expect(await api.client(adminKeyA).getIntegration(integrationA)).toMatchObject({ name: 'a-ldap', enabled: false });
  });

  test('connectors are created by platform admins only: an account admin, a platform viewer or operator is refused', async () => {
    const body = JSON.stringify({ name: 'evil-connector', description: 'evil', clientId: zeroUuid, objectId: zeroUuid, homeTenant: zeroUuid });
    for (const [grants, platform] of [
      [[{ accountId: accountA, role: 'admin' }], null],
      [[{ accountId: accountA, role: 'admin' }], 'viewer'],
      [[{ accountId: accountA, role: 'admin' }], 'operator'],
    ] as Array<[ConsoleGrant[], ConsoleRole | null]>) {
      const token = await sessionFor(grants, platform);
      const answer = await fetch(`${api.baseUrl}/v1/connectors`, { method: 'POST', headers: withSession(token, { 'x-csrf-token': await csrfOf(token), 'content-type': 'application/json', 'x-dirsync-account': accountA }), body });
      expect({ platform, status: answer.status }).toEqual({ platform, status: 403 });
    }
    const listed = await api.request('GET', '/v1/connectors', { token: adminKeyA });
    expect(await listed.text()).not.toContain('evil-connector');
  });

  test('a key and a cookie together: the key decides, so a viewer key does not borrow an admin session', async () => {
    const viewerKey = await api.key(accountA, ['read']);
    const admin = await sessionFor([{ accountId: accountA, role: 'admin' }]);
    const csrf = await csrfOf(admin);
    const answer = await fetch(`${api.baseUrl}/v1/integrations/${integrationA}/enable`, { method: 'POST', headers: withSession(admin, { authorization: `Bearer ${viewerKey}`, 'x-csrf-token': csrf }) });
    expect(answer.status).toBe(403);
    expect(await problemType(answer)).toBe('/v1/problems/insufficient-scope');
    // A key of account B with the session of account A (and A named): B's key sees only B.
    const crossed = await fetch(`${api.baseUrl}/v1/integrations`, { headers: withSession(admin, { authorization: `Bearer ${adminKeyB}`, 'x-dirsync-account': accountA }) });
    expect(crossed.status).toBe(200);
    const ids = ((await crossed.json()) as { items: Array<{ id: string }> }).items.map((item) => item.id);
    expect(ids).toEqual([integrationB]);
  });
});

describe('sessions', () => {
  test('fixation: a cookie planted before sign-in is not adopted, and a planted valid session ends at sign-in', async () => {
    const planted = `dcs_${'P'.repeat(43)}`;
    const { token } = await createConsoleSignInLink(api.db, { accountId: accountA, role: 'admin' });
    const signIn = await useLink(token, withSession(planted));
    expect(signIn.status).toBe(303);
    const issued = setCookieOf(signIn);
    expect(issued).toMatch(/^dcs_[A-Za-z0-9_-]{43}$/);
    expect(issued).not.toBe(planted);
    expect((await fetch(`${api.baseUrl}/console/auth/session`, { headers: withSession(planted) })).status).toBe(401);

    // The attacker's own valid viewer session, planted in the victim's browser, ends there.
    const attackers = await sessionFor([{ accountId: accountA, role: 'viewer' }]);
    const link = await createConsoleSignInLink(api.db, { accountId: accountA, role: 'admin' });
    const victimSignIn = await useLink(link.token, withSession(attackers));
    expect(setCookieOf(victimSignIn)).not.toBe(attackers);
    expect((await fetch(`${api.baseUrl}/console/auth/session`, { headers: withSession(attackers) })).status).toBe(401);
  });

  test('fixation through OpenID Connect: the session a browser held before the callback ends, a new cookie is issued', async () => {
    const planted = await sessionFor([{ accountId: accountA, role: 'viewer' }]);
    const browser = oidcBrowser();
    browser.cookies.set(cookieName, planted);
    const login = await browser.get('/console/auth/login');
    const back = await idp.signIn(new URL(login.headers.get('location') ?? ''), 'mallory');
    const callback = await browser.get(`${back.pathname}${back.search}`);
    expect(callback.status).toBe(303);
    expect(browser.cookies.get(cookieName)).toMatch(/^dcs_/);
    expect(browser.cookies.get(cookieName)).not.toBe(planted);
    expect((await fetch(`${api.baseUrl}/console/auth/session`, { headers: withSession(planted) })).status).toBe(401);
  });

  test('sign-out ends the session on the server: the old cookie and its CSRF token are worthless afterwards', async () => {
    const { token } = await createConsoleSignInLink(api.db, { accountId: accountA, role: 'admin' });
    const cookie = setCookieOf(await useLink(token)) ?? '';
    const csrf = await csrfOf(cookie);
    expect((await fetch(`${api.baseUrl}/console/auth/logout`, { method: 'POST', headers: withSession(cookie, { 'x-csrf-token': csrf, origin: consoleUrl }) })).status).toBe(204);
    const replay = await fetch(`${api.baseUrl}/v1/integrations/${integrationA}/enable`, { method: 'POST', headers: withSession(cookie, { 'x-csrf-token': csrf }) });
    expect(replay.status).toBe(401);
    expect((await fetch(`${api.baseUrl}/console/auth/session`, { headers: withSession(cookie) })).status).toBe(401);
    // The link that made it does not sign in again either.
    expect((await useLink(token)).status).toBe(410);
  });

  test('an expired session is refused everywhere', async () => {
    const token = await sessionFor([{ accountId: accountA, role: 'admin' }], null, 1);
    // Expiry is the database's clock: wait until a read says so.
    let status = 200;
    while (status === 200) status = (await fetch(`${api.baseUrl}/console/auth/session`, { headers: withSession(token) })).status;
    expect(status).toBe(401);
    expect((await fetch(`${api.baseUrl}/v1/integrations`, { headers: withSession(token) })).status).toBe(401);
  });

  test('a link token in a malformed or oversized form, or in the cookie, signs nobody in', async () => {
    const { token } = await createConsoleSignInLink(api.db, { accountId: accountA, role: 'admin' });
    for (const attempt of [`${token}x`, token.slice(0, -1), token.toUpperCase(), `${token}%00`, 'x'.repeat(10_000), '']) {
      const answer = await useLink(attempt);
      expect({ attempt: attempt.slice(0, 60), status: answer.status, cookie: setCookieOf(answer) }).toEqual({ attempt: attempt.slice(0, 60), status: expect.any(Number), cookie: undefined });
      expect(answer.status).toBeGreaterThanOrEqual(400);
    }
    // The link token is not a session token.
    expect((await fetch(`${api.baseUrl}/console/auth/session`, { headers: withSession(token) })).status).toBe(401);
    // And it still works once, for its owner.
    expect((await useLink(token)).status).toBe(303);
  });

  test('sign-in answers and the session are never cached, and no page hands its URL on as a referrer', async () => {
    const token = await sessionFor([{ accountId: accountA, role: 'viewer' }]);
    for (const headers of [withSession(token), {}]) {
      const session = await fetch(`${api.baseUrl}/console/auth/session`, { headers });
      expect(session.headers.get('cache-control')).toBe('no-store');
      expect(session.headers.get('referrer-policy')).toBe('no-referrer');
    }
    const link = await fetch(`${api.baseUrl}/console/auth/link?token=dcl_${'Z'.repeat(43)}`, { redirect: 'manual' });
    expect(link.headers.get('cache-control')).toBe('no-store');
    expect(link.headers.get('referrer-policy')).toBe('no-referrer');
    for (const path of ['/console/', '/console/connectors?consent=granted', '/console/assets/index-abc123.js']) {
      expect((await fetch(`${api.baseUrl}${path}`)).headers.get('referrer-policy')).toBe('no-referrer');
    }
  });

  test('account data answered to a session is not kept in the browser\'s cache (shared computers, after sign-out)', async () => {
    const token = await sessionFor([{ accountId: accountA, role: 'admin' }]);
    for (const path of ['/v1/integrations', `/v1/integrations/${integrationA}`, '/v1/actions', '/v1/connectors']) {
      const answer = await fetch(`${api.baseUrl}${path}`, { headers: withSession(token) });
      expect({ path, status: answer.status, cache: answer.headers.get('cache-control') }).toEqual({ path, status: 200, cache: expect.stringMatching(/no-store/) });
    }
    // Refusals too: a 403 names the account that was asked for.
    const refused = await fetch(`${api.baseUrl}/v1/integrations`, { headers: withSession(token, { 'x-dirsync-account': accountB }) });
    expect(refused.status).toBe(403);
    expect(refused.headers.get('cache-control')).toMatch(/no-store/);
  });

  test('no secret in the logs: link token, session cookie, CSRF token, authorization code and state', async () => {
    const before = api.logs.length;
    const { token } = await createConsoleSignInLink(api.db, { accountId: accountA, role: 'viewer' });
    const cookie = setCookieOf(await useLink(token)) ?? '';
    const csrf = await csrfOf(cookie);
    await useLink(token);
    await fetch(`${api.baseUrl}/v1/integrations/${integrationA}/syncs`, { method: 'POST', headers: withSession(cookie, { 'x-csrf-token': csrf, 'content-type': 'application/json' }), body: '{}' });
    await fetch(`${api.baseUrl}/console/auth/logout`, { method: 'POST', headers: withSession(cookie, { 'x-csrf-token': `${csrf}x` }) });
    await fetch(`${api.baseUrl}/v1/integrations`, { headers: withSession(`${cookie}`, { 'x-dirsync-account': 'garbage' }) });
    const browser = oidcBrowser();
    const login = await browser.get('/console/auth/login');
    const back = await idp.signIn(new URL(login.headers.get('location') ?? ''), 'mallory');
    const path = `${back.pathname}${back.search}`;
    await browser.get(path);
    await browser.get(path);
    const logged = api.logs.slice(before).join('\n');
    expect(logged).toMatch(/one-time console link refused/);
    for (const secret of [token, token.slice(4), cookie, cookie.slice(4), csrf, back.searchParams.get('code') ?? 'no code', back.searchParams.get('state') ?? 'no state', browser.cookies.get('dirsync_session') ?? 'no session']) {
      expect(logged).not.toContain(secret);
    }
  });
});

/** A cookie jar on the console's site, as a browser keeps it. */
function oidcBrowser(): { cookies: Map<string, string>; get(path: string): Promise<Response> } {
  const cookies = new Map<string, string>();
  return {
    cookies,
    async get(path) {
      const cookie = [...cookies].map(([name, value]) => `${name}=${value}`).join('; ');
      const response = await fetch(`${api.baseUrl}${path}`, { redirect: 'manual', headers: cookie ? { cookie } : {} });
      for (const header of response.headers.getSetCookie()) {
        const pair = header.split(';')[0] ?? '';
        const eq = pair.indexOf('=');
        if (pair.slice(eq + 1) === '') cookies.delete(pair.slice(0, eq));
        else cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
      }
      return response;
    },
  };
}

const hostileReturns = [
  '//evil.example/',
  '/\\evil.example',
  '/%2f%2fevil.example',
  '/%5cevil.example',
  'https://evil.example/console/',
  'javascript:alert(1)//console/',
  '/console/../v1/integrations',
  '/console/%2e%2e/v1/integrations',
  '/console/%2E%2E%2Fv1',
  '/console/..%2f..%2fv1',
  '/console/\\evil.example',
  '/console/\t/evil',
  '/console/\n//evil.example',
  '/console/\r\nSet-Cookie: x=1',
  '/console//evil.example',
  '/console/\u2215\u2215evil.example',
  '/console/\uff0f\uff0fevil.example',
  '/console/@evil.example',
  ' /console/',
  '\t//evil.example',
  '/CONSOLE/',
  '/console',
];

describe('redirects', () => {
  test('returnTo of the sign-in never leaves /console/ of this site', () => {
    for (const value of hostileReturns) {
      const target = safeReturnTo(value);
      const resolved = new URL(target, consoleUrl);
      expect({ value, origin: resolved.origin, underConsole: resolved.pathname.startsWith('/console/') }).toEqual({ value, origin: consoleUrl, underConsole: true });
      expect(target.startsWith('//') || target.startsWith('/\\') || /[\u0000-\u001f]/.test(target)).toBe(false);
    }
  });

  test('through a real sign-in, a hostile returnTo lands on the console\'s home', async () => {
    for (const value of ['//evil.example/', '/console/../v1/integrations', '/console/%2e%2e/v1', '/\\evil.example', 'https://evil.example/console/']) {
      const browser = oidcBrowser();
      const login = await browser.get(`/console/auth/login?returnTo=${encodeURIComponent(value)}`);
      expect(login.status).toBe(302);
      const back = await idp.signIn(new URL(login.headers.get('location') ?? ''), 'mallory');
      const callback = await browser.get(`${back.pathname}${back.search}`);
      expect({ value, status: callback.status, location: callback.headers.get('location') }).toEqual({ value, status: 303, location: '/console/' });
    }
  });

  test('the identity provider\'s error cannot redirect anywhere, and its words are escaped', async () => {
    const browser = oidcBrowser();
    const login = await browser.get('/console/auth/login?returnTo=/console/connectors');
    const state = new URL(login.headers.get('location') ?? '').searchParams.get('state') ?? '';
    const answer = await browser.get(`/console/auth/callback?state=${state}&error=access_denied&error_description=${encodeURIComponent('<script>window.__pwned=1</script><a href="https://evil.example">')}`);
    expect(answer.status).toBe(403);
    expect(answer.headers.get('location')).toBeNull();
    const html = await answer.text();
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('<a href="https://evil.example">');
    expect(answer.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
  });

  test('the consent callback reflects a crafted error description only as escaped text, with no script allowed', async () => {
    const crafted = encodeURIComponent('<script>window.__pwned=1</script><img src=x onerror=alert(1)>');
    const answer = await fetch(`${api.baseUrl}/v1/consent/callback?error=access_denied&error_description=${crafted}&state=forged`, { redirect: 'manual', headers: { accept: 'text/html' } });
    expect(answer.headers.get('location')).toBeNull();
    expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
    expect(answer.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    const html = await answer.text();
    expect(html).not.toMatch(/<script>|<img/);
    expect(html).toContain('&#60;script&#62;');
  });

  test('consent-url refuses a returnTo that could leave the console', async () => {
    const admin = await sessionFor([{ accountId: accountA, role: 'admin' }]);
    const csrf = await csrfOf(admin);
    for (const returnTo of hostileReturns) {
      const answer = await fetch(`${api.baseUrl}/v1/connectors/${connectorId}/consent-url`, {
        method: 'POST',
        headers: withSession(admin, { 'x-csrf-token': csrf, 'content-type': 'application/json' }),
        body: JSON.stringify({ tenantId: 'contoso.onmicrosoft.com', returnTo }),
      });
      // Refused (422), or a path that stays on the console once resolved.
      if (answer.status === 200) {
        const resolved = new URL(returnTo, consoleUrl);
        expect({ returnTo, origin: resolved.origin, path: resolved.pathname.startsWith('/console/') && !returnTo.includes('//') }).toEqual({ returnTo, origin: consoleUrl, path: true });
      } else {
        expect({ returnTo, status: answer.status }).toEqual({ returnTo, status: 422 });
      }
    }
    const accepted = await fetch(`${api.baseUrl}/v1/connectors/${connectorId}/consent-url`, {
      method: 'POST',
      headers: withSession(admin, { 'x-csrf-token': csrf, 'content-type': 'application/json' }),
      body: JSON.stringify({ tenantId: 'contoso.onmicrosoft.com', returnTo: '/console/connectors' }),
    });
    expect(accepted.status).toBe(200);
  });
});

describe('static files', () => {
  test('dot files, directories and traversal are not served; the SPA page or 404 instead', async () => {
    const attempts = [
      '/console/.env',
      '/console/assets/.env',
      '/console/assets/',
      '/console/assets',
      '/console/assets/nested',
      '/console/assets/nested/',
      '/console/assets/%2eenv',
      '/console/assets/nested/..%2f.env',
      '/console/assets/./.env',
      '/console/%2e%2e/%2e%2e/etc/passwd',
      '/console/assets/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd',
      '/console/assets/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd',
      '/console/index.html/..%2f.env',
    ];
    for (const path of attempts) {
      const answer = await raw('GET', path, []);
      expect({ path, leak: /SECRET=|root:/.test(answer.body) }).toEqual({ path, leak: false });
      expect({ path, listing: /index-abc123|nested/.test(answer.body) && !answer.body.includes('<div id="root">') }).toEqual({ path, listing: false });
      expect({ path, status: answer.status }).toEqual({ path, status: expect.any(Number) });
      expect([200, 400, 404]).toContain(answer.status);
      if (answer.status === 200) expect(answer.body).toContain('<div id="root">');
      if (answer.status !== 400) expect(answer.headers['x-content-type-options']).toBe('nosniff');
    }
    // A nested asset is still served (the directory is not a listing).
    expect((await raw('GET', '/console/assets/nested/x.js', [])).body).toBe('nested');
  });

  test('types, nosniff and framing: scripts as JavaScript, maps as JSON, pages never framed', async () => {
    const expectations: Array<[string, RegExp]> = [
      ['/console/assets/index-abc123.js', /^(text|application)\/javascript/],
      ['/console/assets/index-abc123.css', /^text\/css/],
      ['/console/assets/index-abc123.js.map', /^application\/json/],
      ['/console/', /^text\/html/],
    ];
    for (const [path, type] of expectations) {
      const answer = await fetch(`${api.baseUrl}${path}`);
      expect({ path, status: answer.status, type: answer.headers.get('content-type') }).toEqual({ path, status: 200, type: expect.stringMatching(type) });
      expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
      expect(answer.headers.get('x-frame-options')).toBe('DENY');
    }
    for (const path of ['/console/', '/console/integrations/x', '/console/auth/link?token=x', '/console/auth/callback']) {
      const answer = await fetch(`${api.baseUrl}${path}`, { redirect: 'manual' });
      expect({ path, csp: answer.headers.get('content-security-policy') }).toEqual({ path, csp: expect.stringMatching(/frame-ancestors 'none'/) });
      expect(answer.headers.get('content-security-policy')).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    }
  });
});
