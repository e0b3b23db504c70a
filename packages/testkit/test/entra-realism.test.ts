import { createHash, createPrivateKey, randomUUID, sign, type KeyObject, X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { createEmulatorTls, type EntraEmulator, generatedEntraUser, realisticEntraBehaviour, startEntraEmulator } from '../src/index.ts';
import { base64url, decodeJwt } from '../src/entra/jwt.ts';

// Each realism behaviour of the Entra emulator, turned on alone and shown with plain HTTPS
// requests: what a client sees is what a real tenant documents.

type Answer = { status: number; body: any; headers: Record<string, unknown> };

let emulator: EntraEmulator;
/** How far the emulator's clock is ahead of the real one. */
let clockOffsetMs = 0;

function send(url: string, options: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
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

interface Client {
  appId: string;
  objectId: string;
  key: KeyObject;
  der: Buffer;
}

async function certificate(): Promise<{ pem: string; key: KeyObject; der: Buffer }> {
  const tls = await createEmulatorTls();
  return { pem: tls.certPem, key: createPrivateKey(tls.keyPem), der: new X509Certificate(tls.certPem).raw };
}

function jwt(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject): string {
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  return `${input}.${base64url(sign('sha256', Buffer.from(input), key))}`;
}

const seconds = () => Math.floor((Date.now() + clockOffsetMs) / 1000);

function requestToken(client: { appId: string; key: KeyObject; der: Buffer }, tenantId: string, scope = `${emulator.graphBaseUrl}/.default`): Promise<Answer> {
  const tokenUrl = `${emulator.authorityHost}/${tenantId}/oauth2/v2.0/token`;
  const assertion = jwt(
    { alg: 'RS256', 'x5t#S256': base64url(createHash('sha256').update(client.der).digest()) },
    { aud: tokenUrl, iss: client.appId, sub: client.appId, jti: randomUUID(), nbf: seconds(), exp: seconds() + 600 },
    client.key,
  );
  const body = new URLSearchParams({
    client_id: client.appId,
    grant_type: 'client_credentials',
    scope,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
  }).toString();
  return send(tokenUrl, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
}

async function accessToken(client: Client, tenantId: string): Promise<string> {
  const answer = await requestToken(client, tenantId);
  expect(answer.status).toBe(200);
  return answer.body.access_token as string;
}

async function registerClient(homeTenantId: string, roles?: readonly string[]): Promise<Client> {
  const cert = await certificate();
  const app = emulator.registerApplication({ homeTenantId, displayName: 'realism client', certificates: [cert.pem], ...(roles ? { roles } : {}) });
  return { appId: app.appId, objectId: app.objectId, key: cert.key, der: cert.der };
}

/** Follows a delta round from `url` to its deltaLink; every page, in order. */
async function round(url: string, token: string, pageSize?: number): Promise<{ pages: any[][]; deltaLink: string }> {
  const pages: any[][] = [];
  let next: string | undefined = url;
  for (let guard = 0; next !== undefined && guard < 1000; guard++) {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (pageSize !== undefined) headers['prefer'] = `odata.maxpagesize=${pageSize}`;
    const page = await send(next, { headers });
    expect(page.status).toBe(200);
    pages.push(page.body.value as any[]);
    if (page.body['@odata.deltaLink']) return { pages, deltaLink: page.body['@odata.deltaLink'] as string };
    next = page.body['@odata.nextLink'] as string | undefined;
  }
  throw new Error('the round did not end');
}

/** A fixed object id, so that seeded orders are the same on every run. */
const fixedId = (kind: number, n: number) => `00000000-0000-4000-8${kind}00-${String(n).padStart(12, '0')}`;

beforeAll(async () => {
  emulator = await startEntraEmulator({ membersPerRecord: 100, now: () => Date.now() + clockOffsetMs });
});

afterAll(async () => {
  await emulator.close();
});

afterEach(() => {
  clockOffsetMs = 0;
  emulator.setRealism({
    seed: undefined, consentPropagationMs: undefined, keyPropagationMs: undefined, replicationLagMs: undefined, spreadGroupRecords: undefined,
    continuationWithProperties: undefined, duplicateRate: undefined, partialRecords: undefined, omitNulls: undefined, emptyPageRate: undefined,
    serverPageSize: undefined, goneWithLocation: undefined, throttle: undefined, consentErrorsWithoutState: undefined,
  });
});

it('turns every behaviour on with small delays and a fixed seed', () => {
  const realism = realisticEntraBehaviour({ duplicateRate: 0.2 });
  expect(realism).toMatchObject({ seed: expect.any(Number), spreadGroupRecords: true, partialRecords: true, omitNulls: true, goneWithLocation: true, duplicateRate: 0.2 });
  for (const delay of [realism.consentPropagationMs, realism.keyPropagationMs, realism.replicationLagMs]) {
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(5_000);
  }
});

describe('group records', () => {
  let tenantId: string;
  let token: string;
  const bigGroup = fixedId(1, 0);
  const members = Array.from({ length: 1_500 }, (_, i) => fixedId(2, i));

  beforeAll(async () => {
    const directory = emulator.createTenant();
    tenantId = directory.tenantId;
    directory.addUsers(members.map((id, i) => ({ ...generatedEntraUser(i), id })));
    directory.addGroup({ id: bigGroup, displayName: 'Everyone', description: 'all 1,500' });
    directory.addMembers(bigGroup, members);
    for (let g = 1; g <= 200; g++) {
      directory.addGroup({ id: fixedId(1, g), displayName: `Team ${g}` });
      directory.addMembers(fixedId(1, g), [members[g] as string]);
    }
    token = await accessToken(await registerClient(tenantId), tenantId);
  });

  it('spreads a 1,500-member group over non-adjacent pages, with other groups between its parts', async () => {
    emulator.setRealism({ spreadGroupRecords: true, seed: 7 });
    const { pages } = await round(`${emulator.graphBaseUrl}/v1.0/groups/delta?$select=displayName,description,members`, token, 3);
    const flat = pages.flat();
    const positions = flat.flatMap((record, at) => (record.id === bigGroup ? [at] : []));
    expect(positions).toHaveLength(15);
    // No two parts on the same or adjacent pages: other groups' records (whole pages of them) sit between.
    const pagesOfGroup = pages.flatMap((page, n) => (page.some((r) => r.id === bigGroup) ? [n] : []));
    expect(pagesOfGroup).toHaveLength(15);
    for (let i = 1; i < pagesOfGroup.length; i++) expect((pagesOfGroup[i] as number) - (pagesOfGroup[i - 1] as number)).toBeGreaterThan(1);
    // The first part carries the properties, the others only id and members; together, every member once.
    expect(flat[positions[0] as number]).toMatchObject({ displayName: 'Everyone', description: 'all 1,500' });
    for (const p of positions.slice(1)) expect(Object.keys(flat[p]).sort()).toEqual(['id', 'members@delta']);
    const got = positions.flatMap((p) => flat[p]['members@delta'].map((m: any) => m.id));
    expect(got.sort()).toEqual([...members].sort());
    // The same seed gives the same round again.
    const again = await round(`${emulator.graphBaseUrl}/v1.0/groups/delta?$select=displayName,description,members`, token, 3);
    expect(again.pages.flat().map((r) => r.id)).toEqual(flat.map((r) => r.id));
  });

  it('repeats the properties on continuation records with continuationWithProperties', async () => {
    emulator.setRealism({ continuationWithProperties: true });
    const { pages } = await round(`${emulator.graphBaseUrl}/v1.0/groups/delta?$select=displayName,description,members`, token, 50);
    const parts = pages.flat().filter((r) => r.id === bigGroup);
    expect(parts).toHaveLength(15);
    for (const part of parts) expect(part).toMatchObject({ displayName: 'Everyone', description: 'all 1,500', 'members@delta': expect.any(Array) });
  });

  it('without realism keeps a group\'s parts together and continuation records bare', async () => {
    const { pages } = await round(`${emulator.graphBaseUrl}/v1.0/groups/delta?$select=displayName,members`, token, 10);
    const flat = pages.flat();
    const positions = flat.flatMap((record, at) => (record.id === bigGroup ? [at] : []));
    expect(positions).toEqual(Array.from({ length: 15 }, (_, i) => (positions[0] as number) + i));
    expect(Object.keys(flat[positions[1] as number]).sort()).toEqual(['id', 'members@delta']);
  });
});

describe('records and pages', () => {
  let tenantId: string;
  let token: string;
  const userIds = Array.from({ length: 50 }, (_, i) => fixedId(3, i));
  const usersUrl = () => `${emulator.graphBaseUrl}/v1.0/users/delta?$select=displayName,jobTitle,department`;

  beforeAll(async () => {
    const directory = emulator.createTenant();
    tenantId = directory.tenantId;
    directory.addUsers(userIds.map((id, i) => ({ userPrincipalName: `u${i}@realism.example`, id, displayName: `User ${i}`, jobTitle: 'Engineer', department: null })));
    token = await accessToken(await registerClient(tenantId), tenantId);
  });

  it('omits null properties with omitNulls, and with partialRecords sends only what changed, a property cleared as explicit null', async () => {
    emulator.setRealism({ omitNulls: true, partialRecords: true });
    const first = await round(usersUrl(), token, 100);
    const record = first.pages.flat().find((r) => r.id === userIds[0]);
    expect(record).toEqual({ id: userIds[0], displayName: 'User 0', jobTitle: 'Engineer' });
    const directory = emulator.tenant(tenantId);
    directory.updateUser(userIds[0] as string, { displayName: 'Renamed', jobTitle: null });
    directory.updateUser(userIds[1] as string, { department: 'Sales' });
    const changes = await round(first.deltaLink, token);
    expect(changes.pages.flat()).toEqual([
      { id: userIds[0], displayName: 'Renamed', jobTitle: null },
      { id: userIds[1], department: 'Sales' },
    ]);
    directory.updateUser(userIds[0] as string, { jobTitle: 'Engineer' });
  });

  it('with omitNulls alone, sends whole records in which only a property cleared since the last round is an explicit null', async () => {
    emulator.setRealism({ omitNulls: true });
    const first = await round(usersUrl(), token, 100);
    emulator.tenant(tenantId).updateUser(userIds[2] as string, { jobTitle: null });
    const changes = await round(first.deltaLink, token);
    expect(changes.pages.flat()).toEqual([{ id: userIds[2], displayName: 'User 2', jobTitle: null }]);
    emulator.tenant(tenantId).updateUser(userIds[2] as string, { jobTitle: 'Engineer' });
  });

  it('sends objects twice with duplicateRate', async () => {
    emulator.setRealism({ duplicateRate: 1 });
    const { pages } = await round(usersUrl(), token, 20);
    const counts = new Map<string, number>();
    for (const r of pages.flat()) counts.set(r.id, (counts.get(r.id) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual([...userIds].sort());
    expect([...counts.values()].every((n) => n === 2)).toBe(true);
    emulator.setRealism({ duplicateRate: 0.2, seed: 3 });
    const some = (await round(usersUrl(), token, 20)).pages.flat();
    expect(some.length).toBeGreaterThan(50);
    expect(some.length).toBeLessThan(100);
  });

  it('answers empty pages that still carry a nextLink with emptyPageRate, never two in a row and never the last', async () => {
    emulator.setRealism({ emptyPageRate: 0.5, seed: 11 });
    const { pages } = await round(usersUrl(), token, 5);
    expect(pages.filter((p) => p.length === 0).length).toBeGreaterThan(0);
    expect(pages.some((p, i) => i > 0 && p.length === 0 && (pages[i - 1] as any[]).length === 0)).toBe(false);
    expect((pages[pages.length - 1] as any[]).length).toBeGreaterThan(0);
    expect(pages.flat().map((r) => r.id).sort()).toEqual([...userIds].sort());
  });

  it('chooses page sizes itself with serverPageSize, whatever Prefer asks', async () => {
    emulator.setRealism({ serverPageSize: { min: 7, max: 13 }, seed: 5 });
    const { pages } = await round(usersUrl(), token, 2);
    for (const page of pages.slice(0, -1)) {
      expect(page.length).toBeGreaterThanOrEqual(7);
      expect(page.length).toBeLessThanOrEqual(13);
    }
    expect(new Set(pages.slice(0, -1).map((p) => p.length)).size).toBeGreaterThan(1);
    emulator.setRealism({ serverPageSize: 25 });
    expect((await round(usersUrl(), token, 2)).pages.map((p) => p.length)).toEqual([25, 25]);
  });

  it('keeps state tokens opaque: a token edited by the client is not one the server issued', async () => {
    const first = await send(usersUrl(), { headers: { authorization: `Bearer ${token}`, prefer: 'odata.maxpagesize=5' } });
    const skip = new URL(first.body['@odata.nextLink'] as string).searchParams.get('$skiptoken') as string;
    expect(() => JSON.parse(Buffer.from(skip, 'base64url').toString('utf8'))).toThrow();
    const edited = `${skip.slice(0, -2)}${skip.endsWith('AA') ? 'BB' : 'AA'}`;
    const answer = await send(`${emulator.graphBaseUrl}/v1.0/users/delta?$skiptoken=${edited}`, { headers: { authorization: `Bearer ${token}` } });
    expect(answer).toMatchObject({ status: 400, body: { error: { code: 'syncStateNotFound' } } });
  });

  it('answers an expired token with 410 Gone and a Location to start again with goneWithLocation', async () => {
    emulator.setRealism({ goneWithLocation: true });
    const { deltaLink } = await round(usersUrl(), token, 100);
    emulator.expireDeltaTokens(tenantId);
    const gone = await send(deltaLink, { headers: { authorization: `Bearer ${token}` } });
    expect(gone.status).toBe(410);
    const location = String(gone.headers['location']);
    expect(location).toBe(`${emulator.graphBaseUrl}/v1.0/users/delta?$deltatoken=&$select=displayName,jobTitle,department`);
    const again = await round(location, token, 100);
    expect(again.pages.flat()).toHaveLength(50);
  });
});

describe('replication lag', () => {
  it('shows a change to delta rounds only once replicationLagMs has passed', async () => {
    const directory = emulator.createTenant();
    const client = await registerClient(directory.tenantId);
    const token = await accessToken(client, directory.tenantId);
    directory.addUser({ userPrincipalName: 'old@lag.example' });
    emulator.setRealism({ replicationLagMs: 5_000 });
    clockOffsetMs = 10_000;
    const fresh = directory.addUser({ userPrincipalName: 'new@lag.example' });
    const initial = await round(`${emulator.graphBaseUrl}/v1.0/users/delta`, token);
    expect(initial.pages.flat().map((r) => r.userPrincipalName)).toEqual(['old@lag.example']);
    clockOffsetMs = 12_000;
    expect((await round(initial.deltaLink, token)).pages.flat()).toEqual([]);
    clockOffsetMs = 15_500;
    const later = await round(initial.deltaLink, token);
    expect(later.pages.flat()).toEqual([expect.objectContaining({ id: fresh.id, userPrincipalName: 'new@lag.example' })]);
  });
});

describe('tokens', () => {
  it('issues tokens without the new roles until consentPropagationMs has passed after a consent', async () => {
    emulator.setRealism({ consentPropagationMs: 60_000 });
    const home = emulator.createTenant();
    const customer = emulator.createTenant();
    const client = await registerClient(home.tenantId);
    emulator.grantConsent(customer.tenantId, client.appId);
    const early = await accessToken(client, customer.tenantId);
    expect(decodeJwt(early).claims['roles']).toBeUndefined();
    const refused = await send(`${emulator.graphBaseUrl}/v1.0/users/delta`, { headers: { authorization: `Bearer ${early}` } });
    expect(refused.status).toBe(403);
    clockOffsetMs = 61_000;
    expect(decodeJwt(await accessToken(client, customer.tenantId)).claims['roles']).toEqual(['User.Read.All', 'GroupMember.Read.All']);
    // A narrower consent reaches tokens late too: until then they carry the roles held before.
    emulator.grantConsent(customer.tenantId, client.appId, ['User.Read.All']);
    expect(decodeJwt(await accessToken(client, customer.tenantId)).claims['roles']).toEqual(['User.Read.All', 'GroupMember.Read.All']);
    clockOffsetMs = 122_000;
    expect(decodeJwt(await accessToken(client, customer.tenantId)).claims['roles']).toEqual(['User.Read.All']);
  });

  it('refuses a key added with addKey (AADSTS700027) until keyPropagationMs has passed, in each tenant', async () => {
    emulator.setRealism({ keyPropagationMs: 30_000, seed: 9 });
    const home = emulator.createTenant();
    const customer = emulator.createTenant();
    const client = await registerClient(home.tenantId);
    emulator.grantConsent(customer.tenantId, client.appId);
    const token = await accessToken(client, home.tenantId);
    const next = await certificate();
    const proof = jwt(
      { alg: 'RS256', typ: 'JWT', x5t: base64url(createHash('sha1').update(client.der).digest()) },
      { aud: '00000002-0000-0000-c000-000000000000', iss: client.objectId, nbf: seconds(), exp: seconds() + 600 },
      client.key,
    );
    const added = await send(`${emulator.graphBaseUrl}/v1.0/applications/${client.objectId}/addKey`, {
      method: 'POST',
      body: JSON.stringify({ keyCredential: { type: 'AsymmetricX509Cert', usage: 'Verify', key: next.der.toString('base64') }, passwordCredential: null, proof }),
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
    expect(added.status).toBe(200);
    const withNewKey = { appId: client.appId, key: next.key, der: next.der };
    for (const tenant of [home.tenantId, customer.tenantId]) {
      expect(await requestToken(withNewKey, tenant)).toMatchObject({ status: 401, body: { error: 'invalid_client', error_codes: [700027] } });
    }
    clockOffsetMs = 30_001;
    for (const tenant of [home.tenantId, customer.tenantId]) expect((await requestToken(withNewKey, tenant)).status).toBe(200);
    // The old key was never affected.
    expect((await requestToken(client, customer.tenantId)).status).toBe(200);
  });

  it('throttles per app per tenant and per tenant with 429 and Retry-After', async () => {
    const directory = emulator.createTenant();
    const one = await registerClient(directory.tenantId);
    const two = await registerClient(directory.tenantId);
    const tokens = [await accessToken(one, directory.tenantId), await accessToken(two, directory.tenantId)] as const;
    emulator.setRealism({ throttle: { perAppPerTenant: { requests: 3, windowMs: 10_000 }, perTenant: { requests: 5, windowMs: 10_000 } } });
    const call = (token: string) => send(`${emulator.graphBaseUrl}/v1.0/users?$top=1`, { headers: { authorization: `Bearer ${token}` } });
    for (let i = 0; i < 3; i++) expect((await call(tokens[0])).status).toBe(200);
    const throttled = await call(tokens[0]);
    expect(throttled).toMatchObject({ status: 429, body: { error: { code: 'TooManyRequests' } } });
    expect(Number(throttled.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(throttled.headers['retry-after'])).toBeLessThanOrEqual(10);
    // The tenant's budget is shared: the other app gets two requests, not three.
    expect((await call(tokens[1])).status).toBe(200);
    expect((await call(tokens[1])).status).toBe(200);
    expect((await call(tokens[1])).status).toBe(429);
    clockOffsetMs = 10_001;
    expect((await call(tokens[0])).status).toBe(200);
  });
});

describe('always on', () => {
  it('refuses a scope of another cloud\'s Graph with AADSTS70011', async () => {
    const usgov = await startEntraEmulator({ cloud: 'usgov' });
    const previous = emulator;
    emulator = usgov;
    try {
      const directory = emulator.createTenant();
      const client = await registerClient(directory.tenantId);
      const wrong = await requestToken(client, directory.tenantId, 'https://graph.microsoft.com/.default');
      expect(wrong).toMatchObject({ status: 400, body: { error: 'invalid_scope', error_codes: [70011] } });
      expect((await requestToken(client, directory.tenantId)).status).toBe(200);
      const config = await send(`${emulator.authorityHost}/${directory.tenantId}/v2.0/.well-known/openid-configuration`);
      expect(config.body.cloud_instance_name).toBe('microsoftonline.us');
    } finally {
      emulator = previous;
      await usgov.close();
    }
  });

  it('lets an app roll its own keys with no permission, but read an application only with Application.Read.All or as its owner', async () => {
    const directory = emulator.createTenant();
    const target = await registerClient(directory.tenantId, []);
    const ownedBy = await registerClient(directory.tenantId, ['Application.ReadWrite.OwnedBy']);
    const reader = await registerClient(directory.tenantId, ['Application.Read.All']);
    const get = async (client: Client) =>
      send(`${emulator.graphBaseUrl}/v1.0/applications/${target.objectId}`, { headers: { authorization: `Bearer ${await accessToken(client, directory.tenantId)}` } });
    expect((await get(target)).status).toBe(403);
    expect((await get(ownedBy)).status).toBe(403);
    expect((await get(reader)).status).toBe(200);
    emulator.addApplicationOwner(target.appId, ownedBy.appId);
    expect((await get(ownedBy)).status).toBe(200);

    const proof = jwt(
      { alg: 'RS256', typ: 'JWT', x5t: base64url(createHash('sha1').update(target.der).digest()) },
      { aud: '00000002-0000-0000-c000-000000000000', iss: target.objectId, nbf: seconds(), exp: seconds() + 600 },
      target.key,
    );
    const next = await certificate();
    const addKey = async (caller: Client) =>
      send(`${emulator.graphBaseUrl}/v1.0/applications/${target.objectId}/addKey`, {
        method: 'POST',
        body: JSON.stringify({ keyCredential: { type: 'AsymmetricX509Cert', usage: 'Verify', key: next.der.toString('base64') }, passwordCredential: null, proof }),
        headers: { authorization: `Bearer ${await accessToken(caller, directory.tenantId)}`, 'content-type': 'application/json' },
      });
    expect((await addKey(reader)).status).toBe(403);
    expect((await addKey(target)).status).toBe(200);
  });

  describe('admin consent', () => {
    const redirectUri = 'https://dirsync.test/consent';
    let appId: string;
    let tenantId: string;

    beforeAll(async () => {
      const home = emulator.createTenant();
      appId = emulator.registerApplication({ homeTenantId: home.tenantId, displayName: 'consent app', certificates: [(await certificate()).pem], redirectUris: [redirectUri] }).appId;
      tenantId = emulator.createTenant().tenantId;
    });

    afterEach(() => emulator.setConsentDecision(tenantId, 'approve'));

    const consent = async (path: 'adminconsent' | 'v2.0/adminconsent', extra: Record<string, string> = {}) => {
      const url = new URL(`${emulator.authorityHost}/${tenantId}/${path}`);
      for (const [name, value] of Object.entries({ client_id: appId, redirect_uri: redirectUri, state: 'st-1', ...extra })) url.searchParams.set(name, value);
      const answer = await send(url.href);
      expect(answer.status).toBe(302);
      return new URL(String(answer.headers['location'])).searchParams;
    };

    it('requires scope on the v2.0 endpoint', async () => {
      const missing = await consent('v2.0/adminconsent');
      expect(missing.get('error')).toBe('invalid_request');
      expect(missing.get('error_description')).toMatch(/^AADSTS900144: .*'scope'/);
      expect(emulator.hasConsent(tenantId, appId)).toBe(false);
      const granted = await consent('v2.0/adminconsent', { scope: `${emulator.graphBaseUrl}/.default` });
      expect(granted.get('admin_consent')).toBe('True');
      expect(granted.get('state')).toBe('st-1');
      emulator.revokeConsent(tenantId, appId);
    });

    it('drops state from error redirects with consentErrorsWithoutState, and answers a cancel with access_denied', async () => {
      emulator.setRealism({ consentErrorsWithoutState: true });
      emulator.setConsentDecision(tenantId, 'deny');
      const denied = await consent('adminconsent');
      expect(denied.get('error')).toBe('permission_denied');
      expect(denied.has('state')).toBe(false);
      emulator.setConsentDecision(tenantId, 'cancel');
      const cancelled = await consent('v2.0/adminconsent', { scope: `${emulator.graphBaseUrl}/.default` });
      expect(cancelled.get('error')).toBe('access_denied');
      expect(cancelled.get('error_description')).toMatch(/^AADSTS65004/);
      expect(cancelled.has('state')).toBe(false);
      emulator.setConsentDecision(tenantId, 'approve');
      expect((await consent('adminconsent')).get('state')).toBe('st-1');
      emulator.revokeConsent(tenantId, appId);
    });
  });
});
