/// <reference path="./oidc-provider.d.ts" />
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { OidcContext } from 'oidc-provider';

/** A client registered at the test identity provider. */
export interface OidcTestClient {
  readonly clientId: string;
  /** Absent: a public client (`token_endpoint_auth_method: none`). */
  readonly clientSecret?: string | undefined;
  readonly redirectUris: readonly string[];
}

/** A user who can sign in at the test identity provider by typing their user name. */
export interface OidcTestUser {
  readonly name?: string | undefined;
  readonly email?: string | undefined;
  /** The roles claim's value (`["acme:viewer"]`, or one space-separated string); absent: no claim. */
  readonly roles?: readonly string[] | string | undefined;
}

/** Options of {@link startOidcProvider}. */
export interface OidcProviderOptions {
  readonly clients: readonly OidcTestClient[];
  /** Users by user name (their `sub`). */
  readonly users: Readonly<Record<string, OidcTestUser>>;
  /** Name of the roles claim (default `dirsync_roles`). */
  readonly rolesClaim?: string | undefined;
  /**
   * True (default) puts every claim in the ID token; false keeps the profile, email and roles
   * claims for the userinfo endpoint, as strictly conforming providers do.
   */
  readonly claimsInIdToken?: boolean | undefined;
}

/** A running test identity provider. */
export interface TestOidcProvider {
  /** Issuer URL (`http://127.0.0.1:<port>`); discovery at `/.well-known/openid-configuration`. */
  readonly issuer: string;
  /**
   * Signs `user` in as a browser would, over plain HTTP with a cookie jar of its own: follows
   * the authorization URL to the login form, submits the user name, and follows redirects until
   * the client's redirect URI, which it returns (with `code`, `state` and `iss`) without calling.
   * `abort: true` presses "Cancel" instead (the redirect then carries `error=access_denied`).
   */
  signIn(authorizationUrl: string | URL, user: string, options?: { abort?: boolean }): Promise<URL>;
  close(): Promise<void>;
}

type Payload = Record<string, unknown> & { uid?: string; userCode?: string; grantId?: string; consumed?: number };

/**
 * The provider's storage, in memory: the same as its built-in quick-start adapter, which warns
 * on every start (this provider lives as long as one test file or demo).
 */
function memoryAdapter() {
  const store = new Map<string, { payload: Payload; expiresAt: number | undefined }>();
  const live = (key: string): Payload | undefined => {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  };
  return class MemoryAdapter {
    readonly name: string;
    constructor(name: string) {
      this.name = name;
    }
    private key(id: string): string {
      return `${this.name}:${id}`;
    }
    async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
      store.set(this.key(id), { payload, expiresAt: expiresIn === undefined ? undefined : Date.now() + expiresIn * 1000 });
    }
    async find(id: string): Promise<Payload | undefined> {
      return live(this.key(id));
    }
    async findByUid(uid: string): Promise<Payload | undefined> {
      for (const key of store.keys()) if (key.startsWith(`${this.name}:`) && live(key)?.uid === uid) return live(key);
      return undefined;
    }
    async findByUserCode(userCode: string): Promise<Payload | undefined> {
      for (const key of store.keys()) if (key.startsWith(`${this.name}:`) && live(key)?.userCode === userCode) return live(key);
      return undefined;
    }
    async consume(id: string): Promise<void> {
      const payload = live(this.key(id));
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string): Promise<void> {
      store.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      for (const [key, entry] of store) if (entry.payload.grantId === grantId) store.delete(key);
    }
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid: string, clientId: string, error?: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign in – test identity provider</title></head>
<body><main>
<h1>Sign in to ${escapeHtml(clientId)}</h1>
${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label for="login">User name</label>
<input id="login" name="login" autocomplete="username" autofocus required>
<button type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort"><button type="submit">Cancel</button></form>
</main></body></html>
`;
}

async function formOf(request: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * Starts a real OpenID Connect provider (`oidc-provider`) on a free 127.0.0.1 port over http,
 * for tests and the demo: authorization code flow with PKCE required for every client, a login
 * form where a user types a user name from `users` (no password), consent granted without a
 * prompt, and the roles claim of each user in the ID token (or userinfo).
 */
export async function startOidcProvider(options: OidcProviderOptions): Promise<TestOidcProvider> {
  const rolesClaim = options.rolesClaim ?? 'dirsync_roles';
  let handle: ((request: IncomingMessage, response: ServerResponse) => void) | undefined;
  const server = createServer((request, response) => {
    if (handle) handle(request, response);
    else response.writeHead(503).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: randomBytes(8).toString('hex') };
  // Loaded here, not with the testkit: every test file imports the testkit, few start a provider.
  const { default: Provider } = await import('oidc-provider');
  const provider = new Provider(issuer, {
    clients: options.clients.map((client) => ({
      client_id: client.clientId,
      ...(client.clientSecret === undefined ? { token_endpoint_auth_method: 'none' } : { client_secret: client.clientSecret, token_endpoint_auth_method: 'client_secret_basic' }),
      redirect_uris: [...client.redirectUris],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    })),
    adapter: memoryAdapter(),
    jwks: { keys: [jwk] },
    // Explicit lifetimes (seconds): the provider's defaults print a notice each.
    ttl: { AuthorizationCode: 60, AccessToken: 600, IdToken: 600, Interaction: 600, Session: 3_600, Grant: 3_600 },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: { openid: ['sub', rolesClaim], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
    conformIdTokenClaims: options.claimsInIdToken === false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx: unknown, id: string) {
      const user = options.users[id];
      if (!user) return undefined;
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            preferred_username: id,
            ...(user.name === undefined ? {} : { name: user.name }),
            ...(user.email === undefined ? {} : { email: user.email, email_verified: true }),
            ...(user.roles === undefined ? {} : { [rolesClaim]: typeof user.roles === 'string' ? user.roles : [...user.roles] }),
          };
        },
      };
    },
    // First-party test clients: every requested scope is granted without a consent page.
    async loadExistingGrant(ctx: OidcContext) {
      const { oidc } = ctx;
      const clientId = oidc.client?.clientId;
      const accountId = oidc.session?.accountId;
      if (clientId === undefined || accountId === undefined) return undefined;
      const grantId = oidc.result?.consent?.grantId ?? oidc.session?.grantIdFor(clientId);
      if (grantId !== undefined) return oidc.provider.Grant.find(grantId);
      const grant = new oidc.provider.Grant({ accountId, clientId });
      grant.addOIDCScope('openid profile email');
      grant.addOIDCClaims([rolesClaim, 'email', 'email_verified', 'name', 'preferred_username']);
      await grant.save();
      return grant;
    },
  });
  const callback = provider.callback();

  async function interaction(request: IncomingMessage, response: ServerResponse, uid: string, action: string | undefined): Promise<void> {
    const details = await provider.interactionDetails(request, response);
    const clientId = typeof details.params['client_id'] === 'string' ? details.params['client_id'] : 'the application';
    const html = (status: number, body: string) => response.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(body);
    if (request.method === 'GET' && action === undefined) return void html(200, loginPage(uid, clientId));
    if (request.method === 'POST' && action === 'abort') {
      return provider.interactionFinished(request, response, { error: 'access_denied', error_description: 'the user cancelled the sign-in' }, { mergeWithLastSubmission: false });
    }
    if (request.method === 'POST' && action === 'login') {
      const login = (await formOf(request)).get('login')?.trim() ?? '';
      if (!Object.hasOwn(options.users, login)) return void html(200, loginPage(uid, clientId, `Unknown user "${login}".`));
      return provider.interactionFinished(request, response, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    }
    html(405, 'method not allowed');
  }

  handle = (request, response) => {
    const match = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?$/.exec((request.url ?? '').split('?')[0] ?? '');
    if (!match?.[1]) return callback(request, response);
    interaction(request, response, match[1], match[2]).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      response.end(`sign-in failed: ${error instanceof Error ? error.message : String(error)}`);
    });
  };

  return {
    issuer,
    async signIn(authorizationUrl, user, signInOptions = {}) {
      const jar = new Map<string, string>();
      const send = async (url: URL, init: RequestInit = {}): Promise<Response> => {
        const cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
        const response = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string> | undefined), ...(cookie ? { cookie } : {}) } });
        for (const header of response.headers.getSetCookie()) {
          const [pair = ''] = header.split(';');
          const eq = pair.indexOf('=');
          const name = pair.slice(0, eq).trim();
          const value = pair.slice(eq + 1).trim();
          if (value === '' || /expires=Thu, 01 Jan 1970/i.test(header)) jar.delete(name);
          else jar.set(name, value);
        }
        return response;
      };
      let url = new URL(authorizationUrl);
      let response = await send(url);
      for (let hops = 0; hops < 20; hops += 1) {
        if (response.status >= 300 && response.status < 400) {
          const next = new URL(response.headers.get('location') ?? '', url);
          if (next.origin !== issuer) return next;
          url = next;
          response = await send(url);
          continue;
        }
        const interactionPath = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
        if (response.status === 200 && interactionPath) {
          await response.text();
          const action = signInOptions.abort ? 'abort' : 'login';
          url = new URL(`/interaction/${interactionPath[1]}/${action}`, issuer);
          response = await send(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ login: user }).toString() });
          if (response.status === 200) throw new Error(`the test identity provider refused the sign-in of "${user}": ${(await response.text()).match(/role="alert">([^<]*)/)?.[1] ?? 'no reason'}`);
          continue;
        }
        throw new Error(`the test identity provider answered ${response.status} at ${url.pathname}: ${(await response.text()).slice(0, 300)}`);
      }
      throw new Error('the sign-in did not come back to the client after 20 redirects');
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
