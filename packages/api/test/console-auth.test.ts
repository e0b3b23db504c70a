import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { close, createConsoleSession, createConsoleSignInLink, listAudit, type ConsoleGrant, type ConsoleRole } from '@dirsync/db';
import { consoleContentSecurityPolicy } from '../src/index.ts';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

let api: ApiHarness;
let assetsDir: string;
let accountA: string;
let accountB: string;
let adminKeyA: string;
let adminKeyB: string;

const cookieName = 'dirsync_session';
const consoleUrl = 'http://console.test:8080';

beforeAll(async () => {
  assetsDir = await mkdtemp(join(tmpdir(), 'dirsync-console-assets-'));
  await mkdir(join(assetsDir, 'assets'));
  await writeFile(join(assetsDir, 'index.html'), '<!doctype html><title>dirsync console</title><div id="root"></div>');
  await writeFile(join(assetsDir, 'assets', 'app-1234.js'), 'console.log("app")');
  await writeFile(join(assetsDir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  // A file beside the assets directory that no URL may reach.
  await writeFile(join(assetsDir, '..', `${assetsDir.split('/').pop() ?? 'x'}-secret.txt`), 'top secret');
  api = await startApiHarness('console_auth', { console: { assetsDir, publicUrl: consoleUrl } });
  accountA = await api.account('alpha');
  accountB = await api.account('beta');
  adminKeyA = await api.key(accountA, ['admin']);
  adminKeyB = await api.key(accountB, ['admin']);
});

afterAll(async () => {
  await api.close();
  await rm(join(assetsDir, '..', `${assetsDir.split('/').pop() ?? 'x'}-secret.txt`), { force: true });
  await rm(assetsDir, { recursive: true, force: true });
});

/** The value of the session cookie a response sets, with its attributes. */
function sessionCookieOf(response: Response, name = cookieName): { value: string; attributes: string[] } | undefined {
  for (const header of response.headers.getSetCookie()) {
    const [pair = '', ...attributes] = header.split(';').map((part) => part.trim());
    const eq = pair.indexOf('=');
    if (pair.slice(0, eq) === name) return { value: decodeURIComponent(pair.slice(eq + 1)), attributes };
  }
  return undefined;
}

async function sessionFor(grants: ConsoleGrant[], platformRole: ConsoleRole | null = null): Promise<string> {
  const { token } = await createConsoleSession(api.db, { subject: `user-${Math.random()}`, name: 'Test User', email: 'user@example.com', method: 'oidc', grants, platformRole, ttlMs: 60_000 });
  return token;
}

async function csrfOf(token: string): Promise<string> {
  const response = await fetch(`${api.baseUrl}/console/auth/session`, { headers: { cookie: `${cookieName}=${token}` } });
  expect(response.status).toBe(200);
  return ((await response.json()) as { csrfToken: string }).csrfToken;
}

function withSession(token: string, headers: Record<string, string> = {}): Record<string, string> {
  return { cookie: `${cookieName}=${token}`, ...headers };
}

async function integrationOf(adminKey: string, name: string, enabled = true): Promise<string> {
  return (await api.client(adminKey).createIntegration({ kind: 'ldap', name, settings: ldapSettings(), enabled })).id;
}

/** Uses a one-time link as its confirmation page's form does: a form POST from the console's origin. */
function useLink(token: string, headers: Record<string, string> = {}, target: { baseUrl: string; origin: string } = { baseUrl: api.baseUrl, origin: consoleUrl }): Promise<Response> {
  return fetch(`${target.baseUrl}/console/auth/link`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: target.origin, ...headers },
    body: new URLSearchParams({ token }).toString(),
  });
}

describe('one-time links', () => {
  test('opening a link asks first and uses nothing; its form signs in once: a session cookie with the right flags, the session shows its account and role', async () => {
    const { token, link } = await createConsoleSignInLink(api.db, { accountId: accountA, role: 'operator' });
    for (let i = 0; i < 2; i++) {
      const page = await fetch(`${api.baseUrl}/console/auth/link?token=${token}`, { redirect: 'manual' });
      expect(page.status).toBe(200);
      expect(sessionCookieOf(page)).toBeUndefined();
      expect(page.headers.get('cache-control')).toBe('no-store');
      expect(page.headers.get('referrer-policy')).toBe('no-referrer');
      expect(page.headers.get('content-security-policy')).toMatch(/form-action 'self'/);
      expect(page.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
      const html = await page.text();
      expect(html).toMatch(/Sign in to dirsync as operator of alpha-\d+\?/);
      expect(html).toContain('<form method="post" action="/console/auth/link">');
      expect(html).toContain(`<input type="hidden" name="token" value="${token}">`);
      expect(html).toContain('<button type="submit">Continue</button>');
    }
    expect((await listAudit(api.db, { accountId: accountA })).filter((event) => event.details['linkId'] === link.id)).toEqual([]);

    const first = await useLink(token);
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/console/');
    expect(first.headers.get('referrer-policy')).toBe('no-referrer');
    const cookie = sessionCookieOf(first);
    expect(cookie?.value).toMatch(/^dcs_/);
    expect(cookie?.attributes).toEqual(expect.arrayContaining(['HttpOnly', 'SameSite=Lax', 'Path=/']));
    expect(cookie?.attributes).not.toContain('Secure');

    const session = await fetch(`${api.baseUrl}/console/auth/session`, { headers: withSession(cookie!.value) });
    expect(session.status).toBe(200);
    const body = (await session.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ accounts: [{ id: accountA, name: expect.stringMatching(/^alpha/), role: 'operator' }], platform: null, csrfToken: expect.any(String) });

    const second = await useLink(token);
    expect(second.status).toBe(410);
    expect(second.headers.get('content-type')).toMatch(/^text\/html/);
    const audit = await listAudit(api.db, { accountId: accountA });
    expect(audit.filter((event) => event.action === 'console.sign_in_link.used' && event.details['linkId'] === link.id)).toEqual([expect.objectContaining({ actor: expect.stringMatching(/^console:one-time link \(session [0-9a-f]{8}\)$/) })]);
    expect(sessionCookieOf(second)).toBeUndefined();
    expect(await second.text()).toMatch(/This sign-in link is not valid any more/);
    // Opened again once used: the same words, no form.
    const reopened = await fetch(`${api.baseUrl}/console/auth/link?token=${token}`, { redirect: 'manual' });
    expect(reopened.status).toBe(410);
    const reopenedHtml = await reopened.text();
    expect(reopenedHtml).toMatch(/This sign-in link is not valid any more/);
    expect(reopenedHtml).not.toContain('<form');
  });

  test('an expired, used or unknown link is refused in the same words, opened or posted, and the page tells nothing more', async () => {
    const { token, link } = await createConsoleSignInLink(api.db, { accountId: accountA, role: 'viewer', ttlMs: 1 });
    // The link's expiry is the database's clock: wait until that time has passed here too.
    while (Date.now() <= link.expiresAt.getTime() + 5) await new Promise((resolve) => setImmediate(resolve));
    const used = await createConsoleSignInLink(api.db, { accountId: accountA, role: 'viewer' });
    expect((await useLink(used.token)).status).toBe(303);
    const pages: string[] = [];
    for (const attempt of [token, used.token, `dcl_${'A'.repeat(43)}`, 'garbage']) {
      const opened = await fetch(`${api.baseUrl}/console/auth/link?token=${encodeURIComponent(attempt)}`, { redirect: 'manual' });
      const posted = await useLink(attempt);
      for (const answer of [opened, posted]) {
        expect({ attempt, status: answer.status, cookie: sessionCookieOf(answer) }).toEqual({ attempt, status: 410, cookie: undefined });
        pages.push(await answer.text());
      }
    }
    expect(pages[0]).toMatch(/This sign-in link is not valid any more/);
    expect(new Set(pages).size).toBe(1);
  });

  test('a link posted from another site (login CSRF) is refused and stays unused', async () => {
    const { token } = await createConsoleSignInLink(api.db, { accountId: accountA, role: 'admin' });
    const attempts: Array<Record<string, string>> = [
      { origin: 'http://evil.test' },
      { origin: 'http://console.test:8081' },
      { origin: 'null', 'sec-fetch-site': 'cross-site' },
      { origin: 'null', 'sec-fetch-site': 'same-site' },
      { origin: 'null' },
      { origin: '', 'sec-fetch-site': 'cross-site' },
    ];
    for (const headers of attempts) {
      const answer = await fetch(`${api.baseUrl}/console/auth/link`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams({ token }).toString(),
      });
      expect({ headers, status: answer.status, cookie: sessionCookieOf(answer) }).toEqual({ headers, status: 403, cookie: undefined });
      expect(await answer.text()).toMatch(/not sent from the dirsync console, so the link was not used/);
    }
    // Still usable by its owner: the page asks, and the console's own form signs in.
    expect((await fetch(`${api.baseUrl}/console/auth/link?token=${token}`)).status).toBe(200);
    const signIn = await useLink(token, { origin: 'null', 'sec-fetch-site': 'same-origin' });
    expect(signIn.status).toBe(303);
    expect(sessionCookieOf(signIn)?.value).toMatch(/^dcs_/);
  });

  test('a POST that is not the confirmation form is refused in words and uses nothing', async () => {
    const { token } = await createConsoleSignInLink(api.db, { accountId: accountA, role: 'admin' });
    const json = await fetch(`${api.baseUrl}/console/auth/link`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/json', origin: consoleUrl }, body: JSON.stringify({ token }) });
    expect(json.status).toBe(400);
    expect(json.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await json.text()).toMatch(/not the sign-in form/);
    const other = await fetch(`${api.baseUrl}/console/auth/link`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'text/csv', origin: consoleUrl }, body: `token,${token}` });
    expect(other.status).toBe(415);
    expect(await other.text()).toMatch(/not the sign-in form/);
    const huge = await useLink(`${token}${'x'.repeat(5000)}`);
    expect(huge.status).toBe(413);
    expect(await huge.text()).toMatch(/not the sign-in form/);
    expect((await useLink(token)).status).toBe(303);
  });

  test('of concurrent uses of one link exactly one gets a session', async () => {
    const { token } = await createConsoleSignInLink(api.db, { accountId: accountB, role: 'admin' });
    const answers = await Promise.all(Array.from({ length: 8 }, () => useLink(token)));
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses).toEqual([303, 410, 410, 410, 410, 410, 410, 410]);
    expect(answers.filter((answer) => sessionCookieOf(answer) !== undefined)).toHaveLength(1);
  });
});

describe('sessions on /v1', () => {
  test('a signed-out request is 401 as before; an unknown cookie is 401 too', async () => {
    expect((await fetch(`${api.baseUrl}/v1/integrations`)).status).toBe(401);
    const stale = await fetch(`${api.baseUrl}/v1/integrations`, { headers: withSession(`dcs_${'B'.repeat(43)}`) });
    expect(stale.status).toBe(401);
    expect(((await stale.json()) as { detail: string }).detail).toMatch(/sign in again/);
  });

  test('a request with a key is judged by the key alone, whatever cookie it carries', async () => {
    const viewerOfB = await sessionFor([{ accountId: accountB, role: 'viewer' }]);
    const list = await fetch(`${api.baseUrl}/v1/integrations`, { headers: withSession(viewerOfB, { authorization: `Bearer ${adminKeyA}` }) });
    expect(list.status).toBe(200);
    const bad = await fetch(`${api.baseUrl}/v1/integrations`, { headers: withSession(viewerOfB, { authorization: 'Bearer nope' }) });
    expect(bad.status).toBe(401);
  });

  test('CSRF: a change with the cookie needs the session\'s X-CSRF-Token and, with an Origin, the console\'s origin', async () => {
    const integrationId = await integrationOf(adminKeyA, 'csrf-target');
    const operator = await sessionFor([{ accountId: accountA, role: 'operator' }]);
    const csrf = await csrfOf(operator);
    const url = `${api.baseUrl}/v1/integrations/${integrationId}/syncs`;
    const json = { 'content-type': 'application/json' };

    const missing = await fetch(url, { method: 'POST', headers: withSession(operator, json), body: '{}' });
    expect(missing.status).toBe(403);
    expect(await missing.json()).toMatchObject({ type: '/v1/problems/csrf-token-invalid' });
    const wrong = await fetch(url, { method: 'POST', headers: withSession(operator, { ...json, 'x-csrf-token': `${csrf.slice(0, -1)}${csrf.endsWith('A') ? 'B' : 'A'}` }), body: '{}' });
    expect(wrong.status).toBe(403);
    expect(await wrong.json()).toMatchObject({ type: '/v1/problems/csrf-token-invalid' });
    // Another session's token is no better.
    const other = await csrfOf(await sessionFor([{ accountId: accountA, role: 'operator' }]));
    expect((await fetch(url, { method: 'POST', headers: withSession(operator, { ...json, 'x-csrf-token': other }), body: '{}' })).status).toBe(403);
    const crossOrigin = await fetch(url, { method: 'POST', headers: withSession(operator, { ...json, 'x-csrf-token': csrf, origin: 'https://evil.example' }), body: '{}' });
    expect(crossOrigin.status).toBe(403);
    expect(await crossOrigin.json()).toMatchObject({ type: '/v1/problems/origin-not-allowed' });

    const accepted = await fetch(url, { method: 'POST', headers: withSession(operator, { ...json, 'x-csrf-token': csrf, origin: consoleUrl }), body: '{}' });
    expect(accepted.status).toBe(202);
    const run = (await accepted.json()) as { runId: string };
    // The run names the console user as who asked for it.
    const detail = await api.client(adminKeyA).getRun(run.runId);
    expect(detail.requestedBy).toMatch(/^console:user@example\.com \(session [0-9a-f]{8}\)$/);
  });

  test('account isolation: roles map to scopes, and a session acts only on its own accounts', async () => {
    const integrationA = await integrationOf(adminKeyA, 'iso-a');
    const integrationB = await integrationOf(adminKeyB, 'iso-b');
    const viewerA = await sessionFor([{ accountId: accountA, role: 'viewer' }]);
    const viewerCsrf = await csrfOf(viewerA);

    const own = await fetch(`${api.baseUrl}/v1/integrations`, { headers: withSession(viewerA) });
    expect(own.status).toBe(200);
    const names = ((await own.json()) as { items: Array<{ id: string }> }).items.map((item) => item.id);
    expect(names).toContain(integrationA);
    expect(names).not.toContain(integrationB);

    const foreign = await fetch(`${api.baseUrl}/v1/integrations`, { headers: withSession(viewerA, { 'x-dirsync-account': accountB }) });
    expect(foreign.status).toBe(403);
    expect(await foreign.json()).toMatchObject({ type: '/v1/problems/account-not-granted' });
    expect((await fetch(`${api.baseUrl}/v1/integrations/${integrationB}`, { headers: withSession(viewerA) })).status).toBe(404);

    const viewerSync = await fetch(`${api.baseUrl}/v1/integrations/${integrationA}/syncs`, {
      method: 'POST',
      headers: withSession(viewerA, { 'content-type': 'application/json', 'x-csrf-token': viewerCsrf }),
      body: '{}',
    });
    expect(viewerSync.status).toBe(403);
    expect(await viewerSync.json()).toMatchObject({ type: '/v1/problems/insufficient-scope', requiredScope: 'sync' });

    // A user with roles on both accounts must say which one; each account gets its own role.
    const both = await sessionFor([
      { accountId: accountA, role: 'operator' },
      { accountId: accountB, role: 'viewer' },
    ]);
    const bothCsrf = await csrfOf(both);
    const ambiguous = await fetch(`${api.baseUrl}/v1/integrations`, { headers: withSession(both) });
    expect(ambiguous.status).toBe(400);
    expect(await ambiguous.json()).toMatchObject({ type: '/v1/problems/account-required' });
    const syncOn = (integrationId: string, accountId: string, token: string, csrf: string) =>
      fetch(`${api.baseUrl}/v1/integrations/${integrationId}/syncs`, {
        method: 'POST',
        headers: withSession(token, { 'content-type': 'application/json', 'x-csrf-token': csrf, 'x-dirsync-account': accountId }),
        body: '{}',
      });
    expect((await syncOn(integrationA, accountA, both, bothCsrf)).status).toBe(202);
    expect((await syncOn(integrationB, accountB, both, bothCsrf)).status).toBe(403);
    // An account's header cannot reach another account's integration.
    expect((await syncOn(integrationB, accountA, both, bothCsrf)).status).toBe(404);

    // A platform operator acts on every account.
    const platform = await sessionFor([], 'operator');
    const platformCsrf = await csrfOf(platform);
    expect((await syncOn(integrationA, accountA, platform, platformCsrf)).status).toBe(202);
    expect((await syncOn(integrationB, accountB, platform, platformCsrf)).status).toBe(202);
    const unknownAccount = await fetch(`${api.baseUrl}/v1/integrations`, { headers: withSession(platform, { 'x-dirsync-account': '00000000-0000-4000-8000-000000000000' }) });
    expect(unknownAccount.status).toBe(403);
    const listed = (await (await fetch(`${api.baseUrl}/console/auth/session`, { headers: withSession(platform) })).json()) as { accounts: Array<{ id: string; role: string }>; platform: unknown };
    expect(listed.platform).toEqual({ role: 'operator' });
    expect(listed.accounts).toEqual(expect.arrayContaining([expect.objectContaining({ id: accountA, role: 'operator' }), expect.objectContaining({ id: accountB, role: 'operator' })]));
  });

  test('audit events name the console user and the session', async () => {
    const integrationId = await integrationOf(adminKeyA, 'audited', false);
    const admin = await sessionFor([{ accountId: accountA, role: 'admin' }]);
    const csrf = await csrfOf(admin);
    const enabled = await fetch(`${api.baseUrl}/v1/integrations/${integrationId}/enable`, { method: 'POST', headers: withSession(admin, { 'x-csrf-token': csrf }) });
    expect(enabled.status).toBe(200);
    const events = await listAudit(api.db, { integrationId });
    expect(events.map((event) => event.actor)).toContainEqual(expect.stringMatching(/^console:user@example\.com \(session [0-9a-f]{8}\)$/));
  });

  test('signing out needs the CSRF token, ends the session and clears the cookie', async () => {
    const token = await sessionFor([{ accountId: accountA, role: 'viewer' }]);
    const csrf = await csrfOf(token);
    expect((await fetch(`${api.baseUrl}/console/auth/logout`, { method: 'POST', headers: withSession(token) })).status).toBe(403);
    const out = await fetch(`${api.baseUrl}/console/auth/logout`, { method: 'POST', headers: withSession(token, { 'x-csrf-token': csrf }) });
    expect(out.status).toBe(204);
    expect(sessionCookieOf(out)?.value).toBe('');
    expect((await fetch(`${api.baseUrl}/console/auth/session`, { headers: withSession(token) })).status).toBe(401);
    expect((await fetch(`${api.baseUrl}/v1/integrations`, { headers: withSession(token) })).status).toBe(401);
  });

  test('without an identity provider the console offers no OpenID Connect sign-in', async () => {
    expect(await (await fetch(`${api.baseUrl}/console/auth/config`)).json()).toEqual({ oidc: false });
    const login = await fetch(`${api.baseUrl}/console/auth/login`, { redirect: 'manual' });
    expect(login.status).toBe(404);
    expect(await login.text()).toMatch(/dirsync console login/);
  });
});

describe('over https', () => {
  let secure: ApiHarness;
  beforeAll(async () => {
    secure = await startApiHarness('console_auth_https', { console: { assetsDir, publicUrl: 'https://dirsync.example.com' } });
  });
  afterAll(async () => {
    await secure?.close();
  });

  test('the session cookie is __Host- prefixed and Secure; the old session ends at a new sign-in', async () => {
    const account = await secure.account('secure');
    const target = { baseUrl: secure.baseUrl, origin: 'https://dirsync.example.com' };
    const first = await useLink((await createConsoleSignInLink(secure.db, { accountId: account, role: 'viewer' })).token, {}, target);
    expect(sessionCookieOf(first, cookieName)).toBeUndefined();
    const cookie = sessionCookieOf(first, '__Host-dirsync_session');
    expect(cookie?.attributes).toEqual(expect.arrayContaining(['HttpOnly', 'SameSite=Lax', 'Path=/', 'Secure']));
    expect(cookie?.attributes.some((attribute) => attribute.startsWith('Domain'))).toBe(false);
    // The plain name is not read when the console is served over https.
    expect((await fetch(`${secure.baseUrl}/console/auth/session`, { headers: { cookie: `${cookieName}=${cookie?.value ?? ''}` } })).status).toBe(401);
    const hostCookie = `__Host-dirsync_session=${cookie?.value ?? ''}`;
    expect((await fetch(`${secure.baseUrl}/console/auth/session`, { headers: { cookie: hostCookie } })).status).toBe(200);

    const second = await useLink((await createConsoleSignInLink(secure.db, { accountId: account, role: 'admin' })).token, { cookie: hostCookie }, target);
    expect(second.status).toBe(303);
    expect(sessionCookieOf(second, '__Host-dirsync_session')?.value).not.toBe(cookie?.value);
    expect((await fetch(`${secure.baseUrl}/console/auth/session`, { headers: { cookie: hostCookie } })).status).toBe(401);
  });
});

/** A GET sent exactly as written (fetch would normalise `..` away). */
function rawGet(path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const { hostname, port } = new URL(api.baseUrl);
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: hostname, port, path, method: 'GET' }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

describe('static files', () => {
  test('console pages are index.html with the CSP; assets are served; /console redirects', async () => {
    for (const path of ['/console/', '/console/integrations/abc', '/console/runs/1/deep/link']) {
      const page = await fetch(`${api.baseUrl}${path}`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(page.headers.get('content-security-policy')).toBe(consoleContentSecurityPolicy);
      expect(page.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
      expect(await page.text()).toContain('<div id="root">');
    }
    const asset = await fetch(`${api.baseUrl}/console/assets/app-1234.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toMatch(/javascript/);
    expect(await asset.text()).toBe('console.log("app")');
    expect((await fetch(`${api.baseUrl}/console/favicon.svg`)).headers.get('content-type')).toMatch(/^image\/svg/);
    expect((await fetch(`${api.baseUrl}/console/assets/missing.js`)).status).toBe(404);
    const bare = await fetch(`${api.baseUrl}/console`, { redirect: 'manual' });
    expect(bare.status).toBe(302);
    expect(bare.headers.get('location')).toBe('/console/');
  });

  test('no path escapes the assets directory', async () => {
    const secretName = `${assetsDir.split('/').pop() ?? ''}-secret.txt`;
    const attempts = [
      '/console/..%2f..%2fetc/passwd',
      '/console/..%2F..%2F..%2Fetc%2Fpasswd',
      '/console/assets/..%2f..%2fetc/passwd',
      '/console/assets/..%2F..%2F..%2F..%2Fetc%2Fpasswd',
      '/console/assets/%2e%2e/%2e%2e/etc/passwd',
      '/console/assets/..%5c..%5cetc%5cpasswd',
      '/console/assets/%252e%252e%252f%252e%252e%252fetc%252fpasswd',
      `/console/assets/..%2f..%2f${secretName}`,
      `/console/..%2f${secretName}`,
      '/console/assets/../../../etc/passwd',
      '/console/assets/..%00/passwd',
      '/console/%2fetc%2fpasswd',
      '/console/assets/%2fetc%2fpasswd',
    ];
    for (const path of attempts) {
      const answer = await rawGet(path);
      expect(answer.body).not.toMatch(/root:/);
      expect(answer.body).not.toContain('top secret');
      // Either the SPA's page (a history route), or a refusal: never another file.
      if (answer.status === 200) expect(answer.body).toContain('<div id="root">');
      else expect([400, 404]).toContain(answer.status);
    }
  });
});

test('no secret reaches the logs: cookie, link token, CSRF token', async () => {
  const before = api.logs.length;
  const { token } = await createConsoleSignInLink(api.db, { accountId: accountA, role: 'admin' });
  const opened = await fetch(`${api.baseUrl}/console/auth/link?token=${token}`, { redirect: 'manual' });
  expect(opened.status).toBe(200);
  const signIn = await useLink(token);
  const cookie = sessionCookieOf(signIn)!.value;
  const csrf = await csrfOf(cookie);
  const integrationId = await integrationOf(adminKeyA, 'logged');
  await fetch(`${api.baseUrl}/v1/integrations/${integrationId}/syncs`, { method: 'POST', headers: withSession(cookie, { 'content-type': 'application/json', 'x-csrf-token': csrf }), body: '{}' });
  await fetch(`${api.baseUrl}/v1/integrations/${integrationId}/syncs`, { method: 'POST', headers: withSession(cookie, { 'content-type': 'application/json', 'x-csrf-token': 'wrong' }), body: '{}' });
  await useLink(token);
  await fetch(`${api.baseUrl}/console/auth/link?token=${token}`, { redirect: 'manual' });
  const logged = api.logs.slice(before).join('\n');
  expect(logged).toMatch(/one-time console link refused/);
  for (const secret of [token, cookie, csrf]) expect(logged).not.toContain(secret);
});

test('a sign-in route answers a failure of the database with a page in words', async () => {
  const broken = await startApiHarness('console_auth_down', { console: { assetsDir, publicUrl: consoleUrl } });
  try {
    await close(broken.db);
    const answer = await fetch(`${broken.baseUrl}/console/auth/link?token=dcl_${'C'.repeat(43)}`, { redirect: 'manual' });
    expect(answer.status).toBe(503);
    expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await answer.text()).toMatch(/database cannot be reached right now/);
  } finally {
    await broken.close();
  }
});

test('the per-caller rate limit counts each console session on its own', async () => {
  const limited = await startApiHarness('console_auth_rate', { console: { assetsDir, publicUrl: consoleUrl }, rateLimit: { max: 3, timeWindowMs: 60_000 } });
  try {
    const account = await limited.account('rate');
    const session = async () => (await createConsoleSession(limited.db, { subject: 's', name: 'S', method: 'oidc', grants: [{ accountId: account, role: 'viewer' }], ttlMs: 60_000 })).token;
    const [first, second] = [await session(), await session()];
    const list = (token: string) => fetch(`${limited.baseUrl}/v1/integrations`, { headers: { cookie: `${cookieName}=${token}` } });
    for (let i = 0; i < 3; i += 1) expect((await list(first)).status).toBe(200);
    const refused = await list(first);
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/this console session made more than 3 requests/);
    expect((await list(second)).status).toBe(200);
  } finally {
    await limited.close();
  }
});
