import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOidcProvider, type TestOidcProvider } from '@dirsync/testkit';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

// The console's public URL: the identity provider redirects the browser there. Tests play the
// browser, so they carry each redirect to the harness's real address themselves.
const consoleUrl = 'http://console.test:8080';
const redirectUri = `${consoleUrl}/console/auth/callback`;
const clientId = 'dirsync-console';

let assetsDir: string;
let idp: TestOidcProvider;
let api: ApiHarness;
let alpha: string;
let beta: string;

const users = {
  alice: { name: 'Alice Admin', email: 'alice@example.com', roles: ['alpha-1:operator', 'beta-2:viewer', 'alpha-1:viewer', 'nosuch:admin', 'beta-2:superuser', 'junk'] },
  bob: { name: 'Bob Nobody', email: 'bob@example.com', roles: ['nosuch:admin', 'alpha-1:owner'] },
  carol: { name: 'Carol Platform', roles: '*:viewer alpha-1:admin' },
  dave: { email: 'dave@example.com' },
};

beforeAll(async () => {
  assetsDir = await mkdtemp(join(tmpdir(), 'dirsync-console-oidc-'));
  await writeFile(join(assetsDir, 'index.html'), '<!doctype html><div id="root"></div>');
  idp = await startOidcProvider({ clients: [{ clientId, redirectUris: [redirectUri] }], users });
  api = await startApiHarness('console_oidc', { console: { assetsDir, publicUrl: consoleUrl, oidc: { issuer: idp.issuer, clientId } } });
  alpha = await api.account('alpha');
  beta = await api.account('beta');
});

afterAll(async () => {
  await api?.close();
  await idp?.close();
  await rm(assetsDir, { recursive: true, force: true });
});

interface Browser {
  /** Cookies by name, as a browser on the console's site would keep them. */
  readonly cookies: Map<string, string>;
  get(path: string): Promise<Response>;
}

function browser(harness: ApiHarness): Browser {
  const cookies = new Map<string, string>();
  return {
    cookies,
    async get(path) {
      const cookie = [...cookies].map(([name, value]) => `${name}=${value}`).join('; ');
      const response = await fetch(`${harness.baseUrl}${path}`, { redirect: 'manual', headers: cookie ? { cookie } : {} });
      for (const header of response.headers.getSetCookie()) {
        const [pair = ''] = header.split(';');
        const eq = pair.indexOf('=');
        const value = pair.slice(eq + 1);
        if (value === '') cookies.delete(pair.slice(0, eq));
        else cookies.set(pair.slice(0, eq), value);
      }
      return response;
    },
  };
}

/** Starts a sign-in: the console's redirect to the identity provider. */
async function startLogin(b: Browser, returnTo?: string): Promise<URL> {
  const login = await b.get(`/console/auth/login${returnTo === undefined ? '' : `?returnTo=${encodeURIComponent(returnTo)}`}`);
  expect(login.status).toBe(302);
  const location = new URL(login.headers.get('location') ?? '');
  expect(location.origin).toBe(idp.issuer);
  return location;
}

/** The callback path and query the provider sent the browser to. */
function callbackPath(url: URL): string {
  expect(`${url.origin}${url.pathname}`).toBe(redirectUri);
  return `${url.pathname}${url.search}`;
}

async function sessionOf(b: Browser): Promise<Response> {
  return b.get('/console/auth/session');
}

test('sign-in round trip: login → provider → callback → session with the claim\'s accounts and roles', async () => {
  const b = browser(api);
  const authorization = await startLogin(b, '/console/integrations/abc?tab=runs');
  expect(authorization.searchParams.get('code_challenge_method')).toBe('S256');
  expect(authorization.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(authorization.searchParams.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(authorization.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(authorization.searchParams.get('redirect_uri')).toBe(redirectUri);
  expect(b.cookies.get('dirsync_login')).toBeDefined();

  const back = await idp.signIn(authorization, 'alice');
  const callback = await b.get(callbackPath(back));
  expect(callback.status).toBe(303);
  expect(callback.headers.get('location')).toBe('/console/integrations/abc?tab=runs');
  expect(b.cookies.get('dirsync_session')).toMatch(/^dcs_/);
  expect(b.cookies.has('dirsync_login')).toBe(false);

  const session = await sessionOf(b);
  expect(session.status).toBe(200);
  const body = (await session.json()) as { user: unknown; accounts: Array<{ id: string; name: string; role: string }>; platform: unknown; csrfToken: string };
  expect(body.user).toEqual({ subject: 'alice', name: 'Alice Admin', email: 'alice@example.com' });
  expect(body.platform).toBeNull();
  // The highest role per account; unknown accounts and roles are ignored.
  expect(body.accounts).toEqual([
    { id: alpha, name: 'alpha-1', role: 'operator' },
    { id: beta, name: 'beta-2', role: 'viewer' },
  ]);
  expect(body.csrfToken).toMatch(/^[A-Za-z0-9_-]{43}$/);

  const list = await fetch(`${api.baseUrl}/v1/integrations`, { headers: { cookie: `dirsync_session=${b.cookies.get('dirsync_session') ?? ''}`, 'x-dirsync-account': alpha } });
  expect(list.status).toBe(200);
});

test('a replayed callback is refused: the sign-in works once', async () => {
  const b = browser(api);
  const back = await idp.signIn(await startLogin(b), 'alice');
  const path = callbackPath(back);
  const loginCookie = b.cookies.get('dirsync_login') ?? '';
  expect((await b.get(path)).status).toBe(303);
  // The same answer again, even with the browser's sign-in cookie put back.
  const replay = browser(api);
  replay.cookies.set('dirsync_login', loginCookie);
  const again = await replay.get(path);
  expect(again.status).toBe(400);
  expect(again.headers.get('content-type')).toMatch(/^text\/html/);
  expect(await again.text()).toMatch(/already used, or was not started by this console/);
  expect(replay.cookies.has('dirsync_session')).toBe(false);
});

test('a tampered state, or a callback in another browser, is refused', async () => {
  const b = browser(api);
  const back = await idp.signIn(await startLogin(b), 'alice');
  const tampered = new URL(back);
  tampered.searchParams.set('state', `${back.searchParams.get('state')?.slice(0, -2) ?? ''}xy`);
  const refused = await b.get(callbackPath(tampered));
  expect(refused.status).toBe(400);
  expect(b.cookies.has('dirsync_session')).toBe(false);

  const other = browser(api);
  const b2 = browser(api);
  const back2 = await idp.signIn(await startLogin(b2), 'alice');
  const elsewhere = await other.get(callbackPath(back2));
  expect(elsewhere.status).toBe(400);
  expect(await elsewhere.text()).toMatch(/started in another browser/);
  expect(other.cookies.has('dirsync_session')).toBe(false);
  // Refused once, the sign-in is gone: its own browser cannot finish it either.
  expect((await b2.get(callbackPath(back2))).status).toBe(400);
});

test('the PKCE verifier is checked: a code carried into another sign-in is not redeemed', async () => {
  const victim = browser(api);
  const attacker = browser(api);
  const victimBack = await idp.signIn(await startLogin(victim), 'alice');
  // The attacker starts a sign-in of their own, then swaps in the victim's code.
  const attackerAuthorization = await startLogin(attacker);
  const swapped = new URL(victimBack);
  swapped.searchParams.set('state', attackerAuthorization.searchParams.get('state') ?? '');
  const answer = await attacker.get(callbackPath(swapped));
  expect(answer.status).toBe(502);
  expect(await answer.text()).toMatch(/did not confirm the sign-in \(invalid_grant\)/);
  expect(attacker.cookies.has('dirsync_session')).toBe(false);
});

test('the nonce and the code challenge are checked: an authorization request altered on its way is not accepted', async () => {
  for (const [parameter, value, reason] of [
    // The provider issues the code, and the ID token carries the altered nonce: the console refuses it.
    ['nonce', 'n'.repeat(43), /\(OAUTH_JWT_CLAIM_COMPARISON_FAILED\)/],
    // The provider refuses to redeem the code with the console's verifier.
    ['code_challenge', 'c'.repeat(43), /\(invalid_grant\)/],
  ] as const) {
    const b = browser(api);
    const authorization = await startLogin(b);
    authorization.searchParams.set(parameter, value);
    const answer = await b.get(callbackPath(await idp.signIn(authorization, 'alice')));
    expect(answer.status).toBe(502);
    const text = await answer.text();
    expect(text).toMatch(/did not confirm the sign-in/);
    expect(text).toMatch(reason);
    expect(b.cookies.has('dirsync_session')).toBe(false);
  }
  // The same steps unaltered sign in: what failed above was the check.
  const b = browser(api);
  expect((await b.get(callbackPath(await idp.signIn(await startLogin(b), 'alice')))).status).toBe(303);
});

test('an identity without a dirsync role gets no session; a cancelled sign-in is told in words', async () => {
  for (const user of ['bob', 'dave']) {
    const b = browser(api);
    const answer = await b.get(callbackPath(await idp.signIn(await startLogin(b), user)));
    expect(answer.status).toBe(403);
    expect(await answer.text()).toMatch(/your identity has no dirsync role/);
    expect(b.cookies.has('dirsync_session')).toBe(false);
  }
  const b = browser(api);
  const cancelled = await b.get(callbackPath(await idp.signIn(await startLogin(b), 'alice', { abort: true })));
  expect(cancelled.status).toBe(403);
  expect(await cancelled.text()).toMatch(/refused the sign-in: access_denied/);
  expect(b.cookies.has('dirsync_session')).toBe(false);
});

test('"*:<role>" makes a platform operator (a space-separated claim works too); returnTo outside /console/ is ignored', async () => {
  const b = browser(api);
  const authorization = await startLogin(b, 'https://evil.example/console/');
  const callback = await b.get(callbackPath(await idp.signIn(authorization, 'carol')));
  expect(callback.status).toBe(303);
  expect(callback.headers.get('location')).toBe('/console/');
  const body = (await (await sessionOf(b)).json()) as { accounts: Array<{ id: string; role: string }>; platform: unknown; user: { email: unknown } };
  expect(body.platform).toEqual({ role: 'viewer' });
  expect(body.user.email).toBeNull();
  expect(body.accounts).toEqual(expect.arrayContaining([{ id: alpha, name: 'alpha-1', role: 'admin' }, { id: beta, name: 'beta-2', role: 'viewer' }]));
  for (const path of ['//evil.example/console/', '/console/../v1/integrations', '/other']) {
    const other = browser(api);
    const start = await startLogin(other, path);
    const back = await other.get(callbackPath(await idp.signIn(start, 'carol')));
    expect(back.headers.get('location')).toBe('/console/');
  }
});

test('no secret of the sign-in reaches the logs: code, state, cookies, CSRF token', async () => {
  const before = api.logs.length;
  const b = browser(api);
  const back = await idp.signIn(await startLogin(b), 'alice');
  await b.get(callbackPath(back));
  const csrf = ((await (await sessionOf(b)).json()) as { csrfToken: string }).csrfToken;
  // A failed exchange is logged too: still without the values.
  await b.get(callbackPath(back));
  const logged = api.logs.slice(before).join('\n');
  expect(logged).toMatch(/console sign-in/);
  const secrets = [back.searchParams.get('code'), back.searchParams.get('state'), b.cookies.get('dirsync_session'), csrf];
  for (const secret of secrets) {
    expect(secret).toBeTruthy();
    expect(logged).not.toContain(secret);
  }
});

describe('other providers and settings', () => {
  let strict: TestOidcProvider;
  let second: ApiHarness;

  beforeAll(async () => {
    // Claims only from userinfo, and a confidential client.
    strict = await startOidcProvider({ clients: [{ clientId: 'confidential', clientSecret: 's3cret-value-of-the-client', redirectUris: [redirectUri] }], users, claimsInIdToken: false });
    second = await startApiHarness('console_oidc_strict', {
      console: { assetsDir, publicUrl: consoleUrl, oidc: { issuer: strict.issuer, clientId: 'confidential', clientSecret: 's3cret-value-of-the-client' } },
    });
    await second.account('alpha');
  });

  afterAll(async () => {
    await second?.close();
    await strict?.close();
  });

  test('roles from the userinfo endpoint, with a confidential client', async () => {
    const b = browser(second);
    const login = await b.get('/console/auth/login');
    const back = await strict.signIn(new URL(login.headers.get('location') ?? ''), 'alice');
    const callback = await b.get(callbackPath(back));
    expect(callback.status).toBe(303);
    const body = (await (await b.get('/console/auth/session')).json()) as { accounts: Array<{ name: string; role: string }> };
    expect(body.accounts).toEqual([expect.objectContaining({ name: 'alpha-1', role: 'operator' })]);
  });

  test('a sign-in that took too long is refused', async () => {
    const b = browser(second);
    const login = await b.get('/console/auth/login');
    const back = await strict.signIn(new URL(login.headers.get('location') ?? ''), 'alice');
    // The provider took longer than the pending sign-in may live: its expiry is moved into the past
    // rather than waited for (the server compares it with the database's clock).
    const [expired] = await second.db.$client<{ n: number }[]>`
      with moved as (update console_oidc_logins set expires_at = now() - interval '1 second' where expires_at > now() returning 1)
      select count(*)::int as n from moved`;
    expect(expired?.n).toBe(1);
    const answer = await b.get(callbackPath(back));
    expect(answer.status).toBe(400);
    expect(await answer.text()).toMatch(/has expired/);
    expect(b.cookies.has('dirsync_session')).toBe(false);
  });
});

test('an identity provider that cannot be reached is told in words', async () => {
  const closed = await startOidcProvider({ clients: [{ clientId, redirectUris: [redirectUri] }], users });
  const issuer = closed.issuer;
  await closed.close();
  const unreachable = await startApiHarness('console_oidc_down', { console: { assetsDir, publicUrl: consoleUrl, oidc: { issuer, clientId } } });
  try {
    expect(await (await fetch(`${unreachable.baseUrl}/console/auth/config`)).json()).toEqual({ oidc: true });
    const login = await fetch(`${unreachable.baseUrl}/console/auth/login`, { redirect: 'manual' });
    expect(login.status).toBe(502);
    expect(login.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await login.text()).toMatch(/identity provider did not answer/);
    expect(unreachable.logs.join('\n')).toMatch(/identity provider discovery failed/);
  } finally {
    await unreachable.close();
  }
});
