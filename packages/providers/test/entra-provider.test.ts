import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { type EmulatedTenantDirectory, type EntraEmulator, populateEntraTenant, startEntraEmulator, testDestinations } from '@dirsync/testkit';
import {
  AuthError,
  ConfigError,
  CursorRejectedError,
  type Cursor,
  createProvider,
  EntraAuthError,
  type EntraIdProvider,
  entraIdSettingsSchema,
  EntraTokenCache,
  type FetchPage,
  generateCertificate,
  type GeneratedCertificate,
  type EntraEntry,
  UnavailableError,
  createEntraIdProvider,
  encodeCertificateSecret,
} from '../src/index.ts';

let emulator: EntraEmulator;
let home: EmulatedTenantDirectory;
let certificate: GeneratedCertificate;
let appId: string;

/** Waits nothing but records what the provider asked to wait (Retry-After, backoff). */
const waits: number[] = [];
const recordWait = async (ms: number) => {
  waits.push(ms);
};

beforeAll(async () => {
  emulator = await startEntraEmulator({ membersPerRecord: 4 });
  home = emulator.createTenant({ domain: 'platform.onmicrosoft.com' });
  certificate = await generateCertificate({ subject: 'dirsync test connector', validityDays: 3 });
  appId = emulator.registerApplication({ homeTenantId: home.tenantId, displayName: 'dirsync connector', certificates: [certificate.certificatePem] }).appId;
});

afterAll(async () => {
  await emulator.close();
});

function customerTenant(): EmulatedTenantDirectory {
  const tenant = emulator.createTenant();
  emulator.grantConsent(tenant.tenantId, appId);
  return tenant;
}

function provider(tenantId: string, options: { tokenCache?: EntraTokenCache; pageSize?: number; cert?: GeneratedCertificate; retry?: object } = {}): EntraIdProvider {
  const settings = entraIdSettingsSchema.parse({
    tenantId,
    connectorId: '3f1e2d3c-4b5a-4697-8877-665544332211',
    authorityHost: emulator.authorityHost,
    graphBaseUrl: emulator.graphBaseUrl,
    caPem: emulator.caPem,
    pageSize: options.pageSize ?? 5,
    retry: { baseDelayMs: 10, maxDelayMs: 200, maxWaitMs: 60_000, maxAttempts: 4, ...options.retry },
  });
  const cert = options.cert ?? certificate;
  return createEntraIdProvider(settings, encodeCertificateSecret({ clientId: appId, certificatePem: cert.certificatePem, privateKeyPem: cert.privateKeyPem }), {
    tokenCache: options.tokenCache ?? new EntraTokenCache(),
    sleep: recordWait,
    destinations: testDestinations,
  });
}

interface Collected {
  users: Map<string, Record<string, unknown>>;
  groups: Map<string, Record<string, unknown>>;
  /** Group → member ids: complete lists from entries plus additions and removals from deltas. */
  members: Map<string, Set<string>>;
  deletions: string[];
  pages: number;
  cursor: Cursor | undefined;
}

async function collect(p: EntraIdProvider, pages: AsyncIterable<FetchPage<EntraEntry>>, start?: Collected): Promise<Collected> {
  const out: Collected = start ?? { users: new Map(), groups: new Map(), members: new Map(), deletions: [], pages: 0, cursor: undefined };
  out.deletions = [];
  out.cursor = undefined;
  for await (const page of pages) {
    out.pages += 1;
    for (const entry of page.entries) {
      const mapped = p.map(entry);
      if (!mapped.ok) throw new Error(mapped.reason);
      const { object } = mapped;
      (object.type === 'user' ? out.users : out.groups).set(object.externalId, object.attributes as Record<string, unknown>);
      if (object.members) out.members.set(object.externalId, new Set(object.members.map((m) => m.value)));
    }
    for (const delta of page.memberDeltas ?? []) {
      const set = out.members.get(delta.groupExternalId) ?? new Set<string>();
      for (const ref of delta.added) set.add(ref.value);
      for (const ref of delta.removed) set.delete(ref.value);
      out.members.set(delta.groupExternalId, set);
    }
    for (const id of page.deletions ?? []) {
      out.deletions.push(id);
      out.users.delete(id);
      out.groups.delete(id);
      out.members.delete(id);
    }
    if (page.cursor) out.cursor = page.cursor;
  }
  return out;
}

const signal = () => new AbortController().signal;

describe('tokens', () => {
  it('acquires a token with the certificate, caches it per tenant, and keeps the key out of sight', async () => {
    const tenant = customerTenant();
    const cache = new EntraTokenCache();
    const before = emulator.requestsTo('login', '/token').length;
    const first = provider(tenant.tenantId, { tokenCache: cache });
    const token = await first.client.token();
    const second = provider(tenant.tenantId, { tokenCache: cache });
    expect(await second.client.token()).toBe(token);
    expect(emulator.requestsTo('login', '/token').length - before).toBe(1);
    // Another tenant is another token.
    const other = customerTenant();
    await provider(other.tenantId, { tokenCache: cache }).client.token();
    expect(emulator.requestsTo('login', '/token').length - before).toBe(2);
    expect(cache.size).toBe(2);
    for (const shown of [JSON.stringify(first), inspect(first, { depth: 6, showHidden: true })]) {
      expect(shown).not.toContain('PRIVATE KEY');
    }
    await Promise.all([first.close(), second.close()]);
  });

  it('fails clearly when the certificate was removed from the app, and no run is retried for it', async () => {
    const tenant = customerTenant();
    const orphan = await generateCertificate({ subject: 'removed', validityDays: 3 });
    emulator.addApplicationCertificate(appId, orphan.certificatePem);
    const p = provider(tenant.tenantId, { cert: orphan });
    expect(await p.client.token()).toMatch(/^ey/);
    expect(emulator.removeApplicationCertificate(appId, orphan.thumbprint)).toBe(true);
    const fresh = provider(tenant.tenantId, { cert: orphan });
    const error = await fresh.client.token().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EntraAuthError);
    expect(error).toMatchObject({ problem: 'credential', retryable: false });
    expect((error as Error).message).toMatch(/AADSTS700027: The certificate with identifier used to sign the client assertion is not registered/);
    const report = await fresh.testConnection();
    expect(report.ok).toBe(false);
    expect(report.checks[0]).toMatchObject({ name: 'token', ok: false });
  });

  it('reports a tenant without consent as a consent problem', async () => {
    const tenant = emulator.createTenant();
    const error = await provider(tenant.tenantId).client.token().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect(error).toMatchObject({ problem: 'consent' });
    expect((error as Error).message).toMatch(/consent is missing or was revoked.*AADSTS700016/);
  });

  it('tells an untrusted emulator certificate apart: TLS trust is scoped to the configured CA', async () => {
    const tenant = customerTenant();
    const settings = entraIdSettingsSchema.parse({
      tenantId: tenant.tenantId,
      connectorId: '3f1e2d3c-4b5a-4697-8877-665544332211',
      authorityHost: emulator.authorityHost,
      graphBaseUrl: emulator.graphBaseUrl,
    });
    const untrusting = createEntraIdProvider(settings, encodeCertificateSecret({ clientId: appId, ...certificate }), { tokenCache: new EntraTokenCache(), destinations: testDestinations });
    const error = await untrusting.client.token().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/TLS verification of .* failed/);
  });
});

describe('sync', () => {
  it('reads every user and group in a full sync, with complete member lists spread over records and pages', async () => {
    const tenant = customerTenant();
    const generated = populateEntraTenant(tenant, { users: 23, groups: 4, membersPerGroup: 11 });
    const nested = tenant.addGroup({ displayName: 'Nested' });
    tenant.addMembers(nested.id, [generated.groupIds[0] as string, generated.userIds[3] as string]);
    tenant.addDeviceMember(nested.id);
    const p = provider(tenant.tenantId);
    const result = await collect(p, p.fetchFull(signal()));
    expect(result.users.size).toBe(23);
    expect(result.groups.size).toBe(5);
    for (const id of generated.groupIds) expect([...(result.members.get(id) ?? [])].sort()).toEqual(tenant.membersOf(id).sort());
    // Devices are not directory members dirsync keeps.
    expect([...(result.members.get(nested.id) ?? [])].sort()).toEqual([generated.groupIds[0], generated.userIds[3]].sort());
    expect(result.cursor).toMatchObject({ kind: 'entra_id', tenantId: tenant.tenantId });
    const user = tenant.user(generated.userIds[5] as string);
    expect(result.users.get(generated.userIds[5] as string)).toMatchObject({ userPrincipalName: user?.userPrincipalName, department: user?.department, accountEnabled: true });
    expect(result.pages).toBeGreaterThan(6);
    await p.close();
  });

  it('takes object ids from a hostile Graph only in GUID form: odd ones refused, never packed into another id', async () => {
    // Graph's ids are lower-case GUIDs; a server that is not Graph, or is compromised, may send
    // anything. Ids are checked and packed into 16 bytes (guid.ts); one that is not a GUID must be
    // refused, not packed to bytes that could stand for another object.
    const tenant = customerTenant();
    const plain = tenant.addUser({ userPrincipalName: 'plain@contoso.example' }).id;
    const twin = tenant.addUser({ userPrincipalName: 'twin@contoso.example', id: plain.toUpperCase() }).id;
    const padded = tenant.addUser({ userPrincipalName: 'padded@contoso.example', id: ` ${randomUUID()}\t` }).id;
    const hostile = [
      `{${randomUUID()}}`,
      randomUUID().replace(/[0-9]/, '\uff10'),
      randomUUID().replace(/[a-f]/, 'g'),
      randomUUID().replace(/-/, '_'),
      `${randomUUID()}0`,
      randomUUID().replaceAll('-', ''),
      'ffffffff-ffff-ffff-ffff-fffffffffff\u{1f44d}',
    ].map((id, i) => tenant.addUser({ userPrincipalName: `hostile${i}@contoso.example`, id }).id);
    const group = tenant.addGroup({ displayName: 'Mixed' }).id;
    tenant.addMembers(group, [plain, twin, padded, ...hostile]);
    const p = provider(tenant.tenantId);
    const users: { id: string; repeat: boolean }[] = [];
    const refused: string[] = [];
    let members: string[] | undefined;
    for await (const page of p.fetchFull(signal())) {
      for (const entry of page.entries) {
        const mapped = p.map(entry);
        if (!mapped.ok) refused.push(mapped.reason);
        else if (mapped.object.type === 'user') users.push({ id: mapped.object.externalId, repeat: mapped.object.repeat === true });
        else if (mapped.object.externalId === group) members = mapped.object.members?.map((m) => m.value);
      }
    }
    await p.close();
    // The plain id and its upper-case twin are one object, listed twice; the padded id is trimmed.
    expect(users.filter((u) => u.id === plain).map((u) => u.repeat).sort()).toEqual([false, true]);
    expect(users.map((u) => u.id).sort()).toEqual([plain, plain, padded.trim()].sort());
    expect(refused).toHaveLength(hostile.length);
    for (const reason of refused) expect(reason).toMatch(/^the user has no valid object id/);
    // The group's members: the same two objects, each once; no hostile id stands for anything.
    expect(members?.sort()).toEqual([plain, padded.trim()].sort());
  });

  it('applies a delta: changes, additions, deletions both ways, and membership changes over several pages', async () => {
    const tenant = customerTenant();
    const generated = populateEntraTenant(tenant, { users: 30, groups: 3, membersPerGroup: 12 });
    const p = provider(tenant.tenantId);
    const state = await collect(p, p.fetchFull(signal()));
    const [u0, u1, u2, u3] = generated.userIds as [string, string, string, string];
    const [g0, g1, g2] = generated.groupIds as [string, string, string];

    tenant.updateUser(u0, { department: 'Research', jobTitle: null });
    tenant.deleteUser(u1); // recycle bin: @removed changed
    tenant.deleteUser(u2, { permanent: true }); // @removed deleted
    const added = tenant.addUser({ userPrincipalName: 'new.hire@contoso.example', displayName: 'New Hire' });
    tenant.updateGroup(g0, { description: 'renamed' });
    const newMembers = generated.userIds.filter((id) => !tenant.membersOf(g1).includes(id) && id !== u1 && id !== u2).slice(0, 9);
    tenant.addMembers(g1, [...newMembers, added.id]);
    tenant.removeMembers(g1, tenant.membersOf(g1).filter((id) => !newMembers.includes(id) && id !== added.id).slice(0, 2));
    tenant.deleteGroup(g2);
    tenant.addMembers(g0, [u3]);

    const delta = await collect(p, p.fetchDelta(state.cursor as Cursor, signal()), state);
    expect(delta.deletions.sort()).toEqual([u1, u2, g2].sort());
    expect(delta.users.get(u0)).toMatchObject({ department: 'Research' });
    expect(delta.users.get(u0)).not.toHaveProperty('jobTitle');
    expect(delta.users.has(added.id)).toBe(true);
    expect(delta.groups.get(g0)).toMatchObject({ description: 'renamed' });
    for (const id of [g0, g1]) expect([...(delta.members.get(id) ?? [])].sort()).toEqual(tenant.membersOf(id).sort());
    expect(delta.cursor).toBeDefined();

    // Nothing changed: a delta with nothing in it, and a replay of the previous delta is harmless.
    const quiet = await collect(p, p.fetchDelta(delta.cursor as Cursor, signal()), structuredClone(delta));
    expect(quiet.deletions).toEqual([]);
    const replay = await collect(p, p.fetchDelta(state.cursor as Cursor, signal()), structuredClone(delta));
    expect([...(replay.members.get(g1) ?? [])].sort()).toEqual(tenant.membersOf(g1).sort());
    expect(replay.users.size).toBe(delta.users.size);
    await p.close();
  });

  it('turns an expired delta token into a rejected cursor (the pipeline then runs a full sync)', async () => {
    const tenant = customerTenant();
    populateEntraTenant(tenant, { users: 6, groups: 1, membersPerGroup: 3 });
    const p = provider(tenant.tenantId);
    const { cursor } = await collect(p, p.fetchFull(signal()));
    emulator.expireDeltaTokens(tenant.tenantId);
    await expect(collect(p, p.fetchDelta(cursor as Cursor, signal()))).rejects.toThrow(CursorRejectedError);
    const again = await collect(p, p.fetchFull(signal()));
    emulator.injectFault({ service: 'graph', path: '/groups/delta', status: 410 });
    const error = await collect(p, p.fetchDelta(again.cursor as Cursor, signal())).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CursorRejectedError);
    expect((error as Error).message).toMatch(/410 resyncRequired/);
    await p.close();
  });

  it('restarts a full round whose skip token expires midway', async () => {
    const tenant = customerTenant();
    populateEntraTenant(tenant, { users: 12, groups: 2, membersPerGroup: 3 });
    const p = provider(tenant.tenantId);
    let expired = false;
    const pages = p.fetchFull(signal());
    const result = await collect(p, {
      async *[Symbol.asyncIterator]() {
        for await (const page of pages) {
          if (!expired) {
            expired = true;
            emulator.expireDeltaTokens(tenant.tenantId);
          }
          yield page;
        }
      },
    });
    expect(expired).toBe(true);
    expect(result.users.size).toBe(12);
    expect(result.groups.size).toBe(2);
    expect(result.cursor).toBeDefined();
    await p.close();
  });

  it('refuses a cursor of another tenant or another Graph', async () => {
    const tenant = customerTenant();
    const p = provider(tenant.tenantId);
    const other = { kind: 'entra_id', tenantId: 'someone-else', selection: 'x', users: 'u', groups: 'g' };
    await expect(collect(p, p.fetchDelta(other, signal()))).rejects.toThrow(/made for tenant someone-else/);
    await expect(collect(p, p.fetchDelta({ kind: 'ldap' }, signal()))).rejects.toThrow(CursorRejectedError);
    await p.close();
  });
});

describe('throttling and failures', () => {
  it('rides out a storm of 429s, 503s and 504s, honouring Retry-After and backing off without it', async () => {
    const tenant = customerTenant();
    populateEntraTenant(tenant, { users: 20, groups: 2, membersPerGroup: 5 });
    waits.length = 0;
    emulator.injectFault({ service: 'graph', path: '/users/delta', status: 429, retryAfterSeconds: 2, times: 6 });
    emulator.injectFault({ service: 'graph', path: '/groups/delta', status: 503, times: 3 });
    emulator.injectFault({ service: 'graph', path: '/users/delta', status: 504, retryAfterSeconds: 1, times: 2 });
    const p = provider(tenant.tenantId);
    const result = await collect(p, p.fetchFull(signal()));
    expect(result.users.size).toBe(20);
    expect(result.groups.size).toBe(2);
    expect(p.throttling.count).toBe(11);
    expect(waits.filter((w) => w === 2000)).toHaveLength(6);
    expect(waits.filter((w) => w === 1000)).toHaveLength(2);
    // Without Retry-After: exponential backoff from the configured base (10 ms), within bounds.
    const backoff = waits.filter((w) => w !== 2000 && w !== 1000);
    expect(backoff).toHaveLength(3);
    backoff.forEach((w, i) => expect(w).toBeLessThanOrEqual(Math.min(200, 10 * 2 ** i)));
    expect(emulator.faults.pending).toBe(0);
    await p.close();
  });

  it('gives up as unavailable (retryable) when throttling outlasts the budget, having deleted nothing', async () => {
    const tenant = customerTenant();
    populateEntraTenant(tenant, { users: 3, groups: 0, membersPerGroup: 0 });
    emulator.injectFault({ service: 'graph', path: '/users/delta', status: 429, retryAfterSeconds: 30, times: 5 });
    const p = provider(tenant.tenantId, { retry: { maxWaitMs: 45_000 } });
    const error = await collect(p, p.fetchFull(signal())).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect(error).toMatchObject({ retryable: true, retryAfterMs: 30_000 });
    emulator.faults.clear();
    await p.close();
  });

  it('retries a few 500s and network-level failures, then fails as unavailable', async () => {
    const tenant = customerTenant();
    populateEntraTenant(tenant, { users: 3, groups: 0, membersPerGroup: 0 });
    emulator.injectFault({ service: 'graph', path: '/users/delta', status: 500, times: 2 });
    const p = provider(tenant.tenantId);
    expect((await collect(p, p.fetchFull(signal()))).users.size).toBe(3);
    emulator.injectFault({ service: 'graph', path: '/users/delta', status: 500, times: 10 });
    await expect(collect(p, p.fetchFull(signal()))).rejects.toThrow(/failed GET \/v1.0\/users\/delta 4 times/);
    emulator.faults.clear();
    await p.close();
  });

  it('fails on revoked consent without retry: token refused, or Graph refusing a token still cached', async () => {
    const tenant = customerTenant();
    populateEntraTenant(tenant, { users: 4, groups: 1, membersPerGroup: 2 });
    const cache = new EntraTokenCache();
    const p = provider(tenant.tenantId, { tokenCache: cache });
    const { cursor } = await collect(p, p.fetchFull(signal()));
    emulator.revokeConsent(tenant.tenantId, appId);
    // The cached token is refused by Graph (401); a fresh one is refused by the token endpoint.
    const error = await collect(p, p.fetchDelta(cursor as Cursor, signal())).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EntraAuthError);
    expect(error).toMatchObject({ problem: 'consent', retryable: false, tenantId: tenant.tenantId });
    const report = await p.testConnection();
    expect(report.checks[0]).toMatchObject({ name: 'consent', ok: false });
    emulator.grantConsent(tenant.tenantId, appId);
    await p.close();
  });

  it('stops at once when aborted', async () => {
    const tenant = customerTenant();
    populateEntraTenant(tenant, { users: 10, groups: 0, membersPerGroup: 0 });
    emulator.injectFault({ service: 'graph', path: '/users/delta', delayMs: 2_000 });
    const p = provider(tenant.tenantId);
    const controller = new AbortController();
    const running = collect(p, p.fetchFull(controller.signal));
    controller.abort(new Error('stopped by test'));
    await expect(running).rejects.toThrow('stopped by test');
    // The abort may come before the slow request is even sent.
    emulator.faults.clear();
    await p.close();
  });
});

describe('registry', () => {
  it('builds a legacy provider from its client secret and refuses a connector without a certificate', async () => {
    const tenant = emulator.createTenant();
    const legacy = emulator.registerApplication({ homeTenantId: tenant.tenantId, displayName: 'old sync app', clientSecret: 'legacy-secret-value-1' });
    tenant.addUser({ userPrincipalName: 'ann@contoso.example', displayName: 'Ann' });
    const settings = { tenantId: tenant.tenantId, legacyApp: { clientId: legacy.appId }, authorityHost: emulator.authorityHost, graphBaseUrl: emulator.graphBaseUrl, caPem: emulator.caPem };
    const p = createProvider('entra_id', entraIdSettingsSchema.parse(settings), 'legacy-secret-value-1', { destinations: testDestinations }) as EntraIdProvider;
    expect((await p.testConnection()).ok).toBe(true);
    expect((await collect(p, p.fetchFull(signal()))).users.size).toBe(1);
    await p.close();
    const wrong = createProvider('entra_id', settings, 'not-the-secret', { destinations: testDestinations }) as EntraIdProvider;
    await expect(wrong.client.token()).rejects.toMatchObject({ problem: 'credential', message: expect.stringMatching(/AADSTS7000215/) });
    expect(() => createProvider('entra_id', { ...settings, legacyApp: undefined, connectorId: '3f1e2d3c-4b5a-4697-8877-665544332211' }, undefined)).toThrow(
      /loaded by the worker/,
    );
  });
});
