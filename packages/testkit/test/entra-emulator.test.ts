import { constants, createHash, generateKeyPairSync, randomUUID, sign, type KeyObject, X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { createEmulatorTls, type EntraEmulator, startEntraEmulator } from '../src/index.ts';
import { base64url, decodeJwt } from '../src/entra/jwt.ts';

// The emulator's side of Microsoft's protocol, checked with hand-made requests: the client
// assertion and proof rules, the delta paging, and the TLS setup.

let emulator: EntraEmulator;
let tenantId: string;
let appId: string;
let objectId: string;
let key: KeyObject;
let certDer: Buffer;
let certPem: string;
/** How far the emulator's clock is ahead of the real one (code expiry). */
let clockOffsetMs = 0;

/** A certificate with its RSA-2048 key to register on an app (any X.509 certificate serves). */
async function clientCertificate(): Promise<{ pem: string; key: KeyObject }> {
  const tls = await createEmulatorTls();
  const { createPrivateKey } = await import('node:crypto');
  return { pem: tls.certPem, key: createPrivateKey(tls.keyPem) };
}

function jwt(header: Record<string, unknown>, claims: Record<string, unknown>, signer: KeyObject = key, pss = header['alg'] === 'PS256'): string {
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = pss
    ? sign('sha256', Buffer.from(input), { key: signer, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST })
    : sign('sha256', Buffer.from(input), signer);
  return `${input}.${base64url(signature)}`;
}

function send(url: string, options: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: any; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', ca: emulator.caPem, headers: options.headers ?? {} }, (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text ? JSON.parse(text) : undefined, headers: response.headers }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const tokenUrl = () => `${emulator.authorityHost}/${tenantId}/oauth2/v2.0/token`;
const now = () => Math.floor(Date.now() / 1000);

function assertion(overrides: { header?: Record<string, unknown>; claims?: Record<string, unknown>; signer?: KeyObject } = {}): string {
  const sha256 = base64url(createHash('sha256').update(certDer).digest());
  return jwt(
    { alg: 'PS256', 'x5t#S256': sha256, ...overrides.header },
    { aud: tokenUrl(), iss: appId, sub: appId, jti: randomUUID(), nbf: now(), exp: now() + 600, ...overrides.claims },
    overrides.signer,
  );
}

function requestToken(clientAssertion: string) {
  const body = new URLSearchParams({
    client_id: appId,
    grant_type: 'client_credentials',
    scope: `${emulator.graphBaseUrl}/.default`,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: clientAssertion,
  }).toString();
  return send(tokenUrl(), { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
}

beforeAll(async () => {
  emulator = await startEntraEmulator({ membersPerRecord: 2, defaultPageSize: 3, now: () => Date.now() + clockOffsetMs });
  const tenant = emulator.createTenant();
  tenantId = tenant.tenantId;
  const client = await clientCertificate();
  key = client.key;
  certPem = client.pem;
  certDer = new X509Certificate(certPem).raw;
  const app = emulator.registerApplication({ homeTenantId: tenantId, displayName: 'test app', certificates: [certPem] });
  appId = app.appId;
  objectId = app.objectId;
});

afterAll(async () => {
  await emulator.close();
});

describe('token endpoint', () => {
  it('serves the OpenID configuration with the tenant\'s token endpoint', async () => {
    const config = await send(`${emulator.authorityHost}/${tenantId}/v2.0/.well-known/openid-configuration`);
    expect(config.body).toMatchObject({ token_endpoint: tokenUrl(), issuer: `${emulator.authorityHost}/${tenantId}/v2.0` });
  });

  it('issues a token for a PS256 assertion named by x5t#S256, and for one reused (as MSAL does for ten minutes)', async () => {
    const reused = assertion();
    for (const attempt of [reused, reused, assertion({ header: { alg: 'RS256', 'x5t#S256': undefined, x5t: base64url(createHash('sha1').update(certDer).digest()) } })]) {
      const answer = await requestToken(attempt);
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600 });
      expect(decodeJwt(answer.body.access_token as string).claims).toMatchObject({ tid: tenantId, appid: appId, roles: ['User.Read.All', 'GroupMember.Read.All'] });
    }
  });

  it('tolerates a little clock skew but not an expired assertion', async () => {
    expect((await requestToken(assertion({ claims: { nbf: now() + 30, exp: now() - 30 + 600 } }))).status).toBe(200);
    const expired = await requestToken(assertion({ claims: { nbf: now() - 1200, exp: now() - 600 } }));
    expect(expired).toMatchObject({ status: 401, body: { error: 'invalid_client', error_codes: [700024] } });
  });

  it.each([
    ['a wrong audience', 700021, () => assertion({ claims: { aud: 'https://elsewhere/token' } })],
    ['a wrong issuer', 700023, () => assertion({ claims: { iss: randomUUID() } })],
    ['an unregistered certificate', 700027, () => assertion({ header: { 'x5t#S256': base64url(randomUUID()) } })],
    ['a signature by another key', 700027, () => assertion({ signer: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey })],
  ])('refuses %s with AADSTS%d', async (_name, code, make) => {
    const answer = await requestToken(make());
    expect(answer.status).toBe(401);
    expect(answer.body).toMatchObject({ error: 'invalid_client', error_codes: [code] });
    expect(answer.body.error_description).toMatch(new RegExp(`^AADSTS${code}: .* Trace ID: `));
  });

  it('answers unauthorized_client for a tenant without consent', async () => {
    const other = emulator.createTenant();
    const body = new URLSearchParams({ client_id: appId, grant_type: 'client_credentials', scope: `${emulator.graphBaseUrl}/.default`, client_secret: 'x' }).toString();
    const answer = await send(`${emulator.authorityHost}/${other.tenantId}/oauth2/v2.0/token`, { method: 'POST', body });
    expect(answer).toMatchObject({ status: 400, body: { error: 'unauthorized_client', error_codes: [700016] } });
  });
});

describe('sign-in: authorize endpoint and authorization code grant', () => {
  const redirectUri = 'https://dirsync.test/v1/consent/callback';
  let signInAppId: string;
  let otherAppId: string;

  beforeAll(() => {
    signInAppId = emulator.registerApplication({ homeTenantId: tenantId, displayName: 'sign-in app', certificates: [certPem], redirectUris: [redirectUri] }).appId;
    otherAppId = emulator.registerApplication({ homeTenantId: tenantId, displayName: 'another app', certificates: [certPem], redirectUris: [redirectUri] }).appId;
  });

  afterEach(() => {
    clockOffsetMs = 0;
    emulator.signInAs(undefined);
  });

  function authorizeUrl(overrides: Record<string, string | undefined> = {}, tenant = tenantId): string {
    const url = new URL(`${emulator.authorityHost}/${tenant}/oauth2/v2.0/authorize`);
    const params: Record<string, string | undefined> = {
      client_id: signInAppId,
      response_type: 'code',
      redirect_uri: redirectUri,
      response_mode: 'query',
      scope: 'openid profile',
      state: 'state-1',
      nonce: 'nonce-1',
      ...overrides,
    };
    for (const [name, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(name, value);
    return url.href;
  }

  /** Signs in (as the emulator's current user); the code the redirect carries. */
  async function code(overrides: Record<string, string | undefined> = {}): Promise<string> {
    const answer = await send(authorizeUrl(overrides));
    expect(answer.status).toBe(302);
    return new URL(String(answer.headers['location'])).searchParams.get('code') ?? '';
  }

  function redeem(value: string, options: { clientId?: string; redirectUri?: string } = {}) {
    const clientId = options.clientId ?? signInAppId;
    const at = Math.floor((Date.now() + clockOffsetMs) / 1000);
    const body = new URLSearchParams({
      client_id: clientId,
      grant_type: 'authorization_code',
      code: value,
      redirect_uri: options.redirectUri ?? redirectUri,
      scope: 'openid profile',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion({ claims: { iss: clientId, sub: clientId, nbf: at, exp: at + 600 } }),
    }).toString();
    return send(tokenUrl(), { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  }

  it('redirects to the registered redirect URI with a code, the state and a session state', async () => {
    const answer = await send(authorizeUrl());
    expect(answer.status).toBe(302);
    const location = new URL(String(answer.headers['location']));
    expect(`${location.origin}${location.pathname}`).toBe(redirectUri);
    expect(location.searchParams.get('code')).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(location.searchParams.get('state')).toBe('state-1');
    expect(location.searchParams.get('session_state')).toEqual(expect.any(String));
  });

  it.each([
    ['another host', 'https://attacker.test/v1/consent/callback'],
    ['another path', 'https://dirsync.test/v1/consent/callback/x'],
    ['a trailing slash', 'https://dirsync.test/v1/consent/callback/'],
    ['plain http', 'http://dirsync.test/v1/consent/callback'],
  ])('refuses a redirect URI on %s with AADSTS50011 and sends nobody there', async (_name, uri) => {
    const answer = await send(authorizeUrl({ redirect_uri: uri }));
    expect(answer).toMatchObject({ status: 400, body: { error: 'invalid_request', error_codes: [50011] } });
    expect(answer.headers['location']).toBeUndefined();
    expect(answer.body.error_description).toMatch(/^AADSTS50011: The redirect URI/);
  });

  it('refuses a sign-in whose scope lacks openid, and a response type other than code', async () => {
    for (const scope of ['profile', 'User.Read', undefined]) {
      const answer = await send(authorizeUrl({ scope }));
      expect(answer).toMatchObject({ status: 400, body: { error: 'invalid_scope', error_codes: [90014] } });
      expect(answer.headers['location']).toBeUndefined();
    }
    expect(await send(authorizeUrl({ response_type: 'token' }))).toMatchObject({ status: 400, body: { error: 'unsupported_response_type' } });
    expect(await send(authorizeUrl({ client_id: randomUUID() }))).toMatchObject({ status: 400, body: { error: 'unauthorized_client', error_codes: [700016] } });
  });

  it('does not sign a user of another tenant in (AADSTS50020)', async () => {
    const other = emulator.createTenant();
    emulator.signInAs({ tenant: other.tenantId, roles: [] });
    const answer = await send(authorizeUrl());
    expect(answer).toMatchObject({ status: 400, body: { error_codes: [50020] } });
    expect(answer.headers['location']).toBeUndefined();
  });

  it('redeems a code once for an RS256 id_token naming the user, the tenant and the nonce; a replay is AADSTS54005', async () => {
    emulator.signInAs({ tenant: tenantId, roles: ['62e90394-69f5-4237-9190-012177145e10'], objectId: 'a5b1c2d3-0000-4000-8000-000000000001' });
    const value = await code({ nonce: 'nonce-of-this-request' });
    const first = await redeem(value);
    expect(first.status).toBe(200);
    const { header, claims } = decodeJwt(first.body.id_token as string);
    expect(header).toMatchObject({ alg: 'RS256', kid: expect.any(String) });
    expect(claims).toMatchObject({
      aud: signInAppId,
      iss: `${emulator.authorityHost}/${tenantId}/v2.0`,
      tid: tenantId,
      oid: 'a5b1c2d3-0000-4000-8000-000000000001',
      nonce: 'nonce-of-this-request',
      wids: ['62e90394-69f5-4237-9190-012177145e10'],
    });
    const keys = await send(`${emulator.authorityHost}/${tenantId}/discovery/v2.0/keys`);
    expect(keys.body.keys.map((k: { kid: string }) => k.kid)).toContain(header['kid']);

    const replay = await redeem(value);
    expect(replay).toMatchObject({ status: 400, body: { error: 'invalid_grant', error_codes: [54005] } });
    expect(replay.body.id_token).toBeUndefined();
  });

  it('binds a code to the client and the redirect URI it was issued for', async () => {
    const forOther = await redeem(await code(), { clientId: otherAppId });
    expect(forOther).toMatchObject({ status: 400, body: { error: 'invalid_grant', error_codes: [9002313] } });
    expect(forOther.body.id_token).toBeUndefined();
    const elsewhere = await redeem(await code(), { redirectUri: 'https://attacker.test/v1/consent/callback' });
    expect(elsewhere).toMatchObject({ status: 400, body: { error: 'invalid_grant', error_codes: [50148] } });
    expect(elsewhere.body.id_token).toBeUndefined();
    expect(await redeem('not-a-code-this-emulator-issued')).toMatchObject({ status: 400, body: { error: 'invalid_grant', error_codes: [9002313] } });
  });

  it('lets a code expire after ten minutes (AADSTS70008)', async () => {
    const fresh = await code();
    const stale = await code();
    clockOffsetMs = 9 * 60_000;
    expect((await redeem(fresh)).status).toBe(200);
    clockOffsetMs = 11 * 60_000;
    const answer = await redeem(stale);
    expect(answer).toMatchObject({ status: 400, body: { error: 'invalid_grant', error_codes: [70008] } });
    expect(answer.body.id_token).toBeUndefined();
  });
});

describe('Graph', () => {
  let token: string;
  beforeAll(async () => {
    token = (await requestToken(assertion())).body.access_token as string;
  });
  const auth = () => ({ authorization: `Bearer ${token}` });

  it('pages a delta round with nextLink until a deltaLink, spreading a large group over records', async () => {
    const directory = emulator.tenant(tenantId);
    const users = [1, 2, 3, 4].map((n) => directory.addUser({ userPrincipalName: `u${n}@x.example`, displayName: `U${n}` }));
    const group = directory.addGroup({ displayName: 'G' });
    directory.addMembers(group.id, users.map((u) => u.id));
    const records: any[] = [];
    let url = `${emulator.graphBaseUrl}/v1.0/groups/delta?$select=displayName,members`;
    let deltaLink: string | undefined;
    for (let pages = 0; pages < 10 && deltaLink === undefined; pages++) {
      const page = await send(url, { headers: auth() });
      expect(page.status).toBe(200);
      records.push(...page.body.value);
      if (page.body['@odata.nextLink']) url = page.body['@odata.nextLink'];
      deltaLink = page.body['@odata.deltaLink'];
    }
    expect(records).toHaveLength(2);
    expect(records[0]).toMatchObject({ id: group.id, displayName: 'G' });
    expect(records[1]).toEqual({ id: group.id, 'members@delta': expect.any(Array) });
    expect(records.flatMap((r) => r['members@delta'].map((m: any) => m.id)).sort()).toEqual(users.map((u) => u.id).sort());
    directory.removeMembers(group.id, [users[0]!.id]);
    const changes = await send(deltaLink as string, { headers: auth() });
    expect(changes.body.value).toEqual([
      { id: group.id, displayName: 'G', 'members@delta': [{ '@odata.type': '#microsoft.graph.user', id: users[0]!.id, '@removed': { reason: 'deleted' } }] },
    ]);
    emulator.expireDeltaTokens(tenantId);
    const expired = await send(changes.body['@odata.deltaLink'] as string, { headers: auth() });
    expect(expired).toMatchObject({ status: 400, body: { error: { code: 'syncStateNotFound' } } });
  });

  it('refuses an unknown $select property, a missing token, and throttles on request', async () => {
    expect((await send(`${emulator.graphBaseUrl}/v1.0/users/delta?$select=nope`, { headers: auth() })).body.error.message).toMatch(/Could not find a property named 'nope'/);
    expect((await send(`${emulator.graphBaseUrl}/v1.0/users/delta`)).status).toBe(401);
    emulator.injectFault({ service: 'graph', path: '/users/delta', status: 429, retryAfterSeconds: 7 });
    const throttled = await send(`${emulator.graphBaseUrl}/v1.0/users/delta`, { headers: auth() });
    expect(throttled).toMatchObject({ status: 429, headers: { 'retry-after': '7' }, body: { error: { code: 'TooManyRequests' } } });
  });

  it('checks addKey proofs as documented: signed by a valid key, aud, iss, at most ten minutes, no padding', async () => {
    const newKey = await clientCertificate();
    const keyCredential = { type: 'AsymmetricX509Cert', usage: 'Verify', key: new X509Certificate(newKey.pem).raw.toString('base64') };
    const x5t = base64url(createHash('sha1').update(certDer).digest());
    const proof = (claims: Record<string, unknown>, signer = key) => jwt({ alg: 'RS256', typ: 'JWT', x5t }, { aud: '00000002-0000-0000-c000-000000000000', iss: objectId, nbf: now(), exp: now() + 600, ...claims }, signer);
    const addKey = (body: Record<string, unknown>) =>
      send(`${emulator.graphBaseUrl}/v1.0/applications/${objectId}/addKey`, { method: 'POST', body: JSON.stringify(body), headers: { ...auth(), 'content-type': 'application/json' } });
    for (const [bad, why] of [
      [proof({ aud: 'https://graph.microsoft.com' }), /aud must be/],
      [proof({ iss: appId }), /iss must be the application object id/],
      [proof({ exp: now() + 601 }), /longer than 10 minutes/],
      [`${proof({})}==`, /base64url without padding/],
      [proof({}, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey), /signature does not verify/],
    ] as const) {
      const answer = await addKey({ keyCredential, passwordCredential: null, proof: bad });
      expect(answer.status).toBe(400);
      expect(answer.body.error.message).toMatch(why);
    }
    const added = await addKey({ keyCredential, passwordCredential: null, proof: proof({}) });
    expect(added.status).toBe(200);
    expect(added.body).toMatchObject({ type: 'AsymmetricX509Cert', usage: 'Verify', key: null, customKeyIdentifier: createHash('sha1').update(new X509Certificate(newKey.pem).raw).digest('hex').toUpperCase() });
    // The last valid key cannot be removed; the new one can.
    const removeKey = (keyId: string) =>
      send(`${emulator.graphBaseUrl}/v1.0/applications/${objectId}/removeKey`, { method: 'POST', body: JSON.stringify({ keyId, proof: proof({}) }), headers: { ...auth(), 'content-type': 'application/json' } });
    expect((await removeKey(added.body.keyId as string)).status).toBe(204);
    const [only] = emulator.application(appId).keyCredentials;
    expect((await removeKey(only!.keyId)).body.error.message).toMatch(/without a valid certificate/);
  });
});

it('serves TLS that only clients trusting its CA accept', async () => {
  await expect(new Promise((resolve, reject) => request(emulator.authorityHost, resolve).on('error', reject).end())).rejects.toMatchObject({
    code: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/),
  });
});
