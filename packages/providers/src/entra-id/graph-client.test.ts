import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  AuthenticationHandler,
  Client,
  RedirectHandler,
  RedirectHandlerOptions,
  ResponseType,
} from '@microsoft/microsoft-graph-client';
import { type EmulatedTenantDirectory, type EntraEmulator, createEmulatorTls, populateEntraTenant, startEntraEmulator, testDestinations } from '@dirsync/testkit';
import { Agent, buildConnector, request } from 'undici';
import { ConfigError, ProtocolError, UnavailableError } from '../errors.ts';
import { DestinationPolicy, DestinationRefusedError, checkedUndiciConnector } from '../net/destination.ts';
import { type EntraCredential, DeltaTokenExpiredError, EntraAuthError, EntraTokenCache, GraphClient, type GraphClientOptions } from './client.ts';
import { entraIdSettingsSchema } from './config.ts';
import { answerText, FailureCapture, GraphRequestState, UndiciSender } from './graph-middleware.ts';
import { createEntraIdProvider, encodeCertificateSecret } from './index.ts';
import { generateCertificate, type GeneratedCertificate } from './certificate.ts';

let emulator: EntraEmulator;
let oldCertificate: GeneratedCertificate;
let newCertificate: GeneratedCertificate;
let appId: string;

beforeAll(async () => {
  // A 410 names where to start over (the synchronization reset of delta-query-overview.md).
  emulator = await startEntraEmulator({ realism: { goneWithLocation: true } });
  const home = emulator.createTenant({ domain: 'platform.onmicrosoft.com' });
  [oldCertificate, newCertificate] = await Promise.all([
    generateCertificate({ subject: 'dirsync connector (current key)', validityDays: 3 }),
    generateCertificate({ subject: 'dirsync connector (rotated key)', validityDays: 3 }),
  ]);
  // Only the old key is registered: the new one is still "propagating".
  appId = emulator.registerApplication({ homeTenantId: home.tenantId, displayName: 'dirsync connector', certificates: [oldCertificate.certificatePem] }).appId;
});

afterAll(async () => {
  await emulator.close();
});

function customerTenant(users = 3): EmulatedTenantDirectory {
  const tenant = emulator.createTenant();
  emulator.grantConsent(tenant.tenantId, appId);
  populateEntraTenant(tenant, { users, groups: 0, membersPerGroup: 0 });
  return tenant;
}

const credential = (cert: GeneratedCertificate): EntraCredential => ({
  kind: 'certificate',
  clientId: appId,
  certificatePem: cert.certificatePem,
  privateKeyPem: cert.privateKeyPem,
});

interface Harness {
  client: GraphClient;
  waits: number[];
}

function harness(tenantId: string, { retry, cert, ...options }: GraphClientOptions & { retry?: object; cert?: GeneratedCertificate } = {}): Harness {
  const waits: number[] = [];
  const settings = entraIdSettingsSchema.parse({
    tenantId,
    connectorId: '3f1e2d3c-4b5a-4697-8877-665544332211',
    authorityHost: emulator.authorityHost,
    graphBaseUrl: emulator.graphBaseUrl,
    caPem: emulator.caPem,
    retry: { baseDelayMs: 10, maxDelayMs: 200, maxWaitMs: 60_000, maxAttempts: 4, ...retry },
  });
  const client = new GraphClient(settings, credential(cert ?? oldCertificate), {
    tokenCache: new EntraTokenCache(),
    destinations: testDestinations,
    // Records the wait instead of waiting; still refuses to start once aborted.
    sleep: async (ms, signal) => {
      signal.throwIfAborted();
      waits.push(ms);
    },
    ...options,
  });
  return { client, waits };
}

const usersUrl = () => `${emulator.graphBaseUrl}/v1.0/users?$top=5&$select=id`;
const signal = () => new AbortController().signal;
/** Graph requests answered so far (injected faults name no tenant: tests run one at a time). */
const graphCalls = () => emulator.requestsTo('graph').length;
const tokenCalls = (tenantId: string) => emulator.requestsTo('login', '/token').filter((r) => r.tenantId === tenantId).length;

describe('throttling through the SDK RetryHandler', () => {
  it('honours Retry-After on 429/503/504 and counts every wait', async () => {
    const tenant = customerTenant();
    emulator.injectFault({ service: 'graph', path: '/users', status: 429, retryAfterSeconds: 2, times: 2 });
    emulator.injectFault({ service: 'graph', path: '/users', status: 503, retryAfterSeconds: 1, times: 1 });
    emulator.injectFault({ service: 'graph', path: '/users', status: 504, times: 1 });
    const { client, waits } = harness(tenant.tenantId);
    const before = graphCalls();
    const body = (await client.getJson(usersUrl(), signal())) as { value: unknown[] };
    expect(body.value).toHaveLength(3);
    expect(waits.slice(0, 3)).toEqual([2000, 2000, 1000]);
    // No Retry-After on the 504: the configured backoff (base 10 ms, ceiling 200 ms).
    expect(waits[3]).toBeGreaterThanOrEqual(5);
    expect(waits[3]).toBeLessThanOrEqual(200);
    expect(client.throttledCount).toBe(4);
    expect(client.throttledMs).toBe(waits.reduce((a, b) => a + b, 0));
    expect(graphCalls() - before).toBe(5);
    await client.close();
  });

  it('keeps waiting past the SDK’s ten retries while the budget lasts', async () => {
    const tenant = customerTenant();
    emulator.injectFault({ service: 'graph', path: '/users', status: 429, retryAfterSeconds: 1, times: 14 });
    const { client, waits } = harness(tenant.tenantId);
    expect(((await client.getJson(usersUrl(), signal())) as { value: unknown[] }).value).toHaveLength(3);
    expect(waits).toEqual(Array.from({ length: 14 }, () => 1000));
    expect(client.throttledCount).toBe(14);
    expect(client.throttledMs).toBe(14_000);
    await client.close();
  });

  it('ends a call whose throttling would outlast the budget as unavailable, with the advised delay', async () => {
    const tenant = customerTenant();
    emulator.injectFault({ service: 'graph', path: '/users', status: 429, retryAfterSeconds: 30, times: 5 });
    const { client, waits } = harness(tenant.tenantId, { retry: { maxWaitMs: 45_000 } });
    const error = await client.getJson(usersUrl(), signal()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect(error).toMatchObject({ retryable: true, retryAfterMs: 30_000 });
    expect((error as Error).message).toMatch(/^Graph kept throttling \/v1\.0\/users \(429\) for 30 s$/);
    expect(waits).toEqual([30_000]);
    expect(client.throttledCount).toBe(1);
    emulator.faults.clear();
    await client.close();
  });

  it('ends a throttling wait at once when the call is aborted', async () => {
    const tenant = customerTenant();
    emulator.injectFault({ service: 'graph', path: '/users', status: 429, retryAfterSeconds: 600, times: 1 });
    let waiting: () => void = () => undefined;
    const started = new Promise<void>((resolve) => {
      waiting = resolve;
    });
    const { client } = harness(tenant.tenantId, {
      retry: { maxWaitMs: 3_600_000 },
      // A wait that only the signal ends.
      sleep: (_ms, s) =>
        new Promise<void>((_resolve, reject) => {
          s.addEventListener('abort', () => reject(s.reason as Error), { once: true });
          waiting();
        }),
    });
    const controller = new AbortController();
    const running = client.getJson(usersUrl(), controller.signal);
    await Promise.race([started, running.catch(() => undefined)]);
    controller.abort(new Error('stopped by test'));
    await expect(running).rejects.toThrow('stopped by test');
    expect(client.throttledCount).toBe(0);
    await client.close();
  });
});

describe('answers', () => {
  it('retries other 5xx up to maxAttempts, then fails as unavailable', async () => {
    const tenant = customerTenant();
    emulator.injectFault({ service: 'graph', path: '/users', status: 502, times: 10 });
    const { client, waits } = harness(tenant.tenantId);
    await expect(client.getJson(usersUrl(), signal())).rejects.toThrow(/^Graph failed GET \/v1\.0\/users 4 times \(502 BadGateway/);
    expect(waits).toHaveLength(3);
    expect(client.throttledCount).toBe(0);
    emulator.faults.clear();
    await client.close();
  });

  it('keeps the Location of a 410 on the delta error: where Graph says to start over', async () => {
    const tenant = customerTenant(4);
    const { client } = harness(tenant.tenantId);
    let next = `${emulator.graphBaseUrl}/v1.0/users/delta?$select=id`;
    let deltaLink: string | undefined;
    while (deltaLink === undefined) {
      const page = (await client.getJson(next, signal(), { Prefer: 'odata.maxpagesize=2' })) as Record<string, unknown>;
      deltaLink = page['@odata.deltaLink'] as string | undefined;
      next = page['@odata.nextLink'] as string;
    }
    emulator.expireDeltaTokens(tenant.tenantId);
    const error = await client.getJson(deltaLink, signal()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeltaTokenExpiredError);
    expect((error as DeltaTokenExpiredError).location).toMatch(new RegExp(`^${emulator.graphBaseUrl.replace(/[.]/g, '\\.')}/v1\\.0/users/delta\\?\\$deltatoken=`));
    // The Location is a starting point Graph accepts.
    const restarted = (await client.getJson((error as DeltaTokenExpiredError).location as string, signal())) as { value: unknown[] };
    expect(Array.isArray(restarted.value)).toBe(true);
    await client.close();
  });

  it('refuses an answer larger than its bound without retrying it', async () => {
    const tenant = customerTenant(40);
    const { client } = harness(tenant.tenantId, { maxAnswerBytes: 1024 });
    const before = graphCalls();
    const error = await client.getJson(`${emulator.graphBaseUrl}/v1.0/users?$top=40`, signal()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as Error).message).toBe("Graph's answer to GET /v1.0/users exceeds 1024 bytes; refusing to read it");
    expect(graphCalls() - before).toBe(1);
    await client.close();
  });

  it('refuses a link to another origin before sending anything', async () => {
    const tenant = customerTenant();
    const { client } = harness(tenant.tenantId);
    const before = emulator.requests.length;
    await expect(client.getJson(`${emulator.authorityHost}/v1.0/users`, signal())).rejects.toThrow(ConfigError);
    expect(emulator.requests.length).toBe(before);
    await client.close();
  });

  it('refuses a destination the policy forbids (the emulator is on loopback)', async () => {
    const tenant = customerTenant();
    const { client } = harness(tenant.tenantId, { destinations: DestinationPolicy.strict() });
    const before = emulator.requests.length;
    const error = await client.getJson(usersUrl(), signal()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DestinationRefusedError);
    expect(emulator.requests.length).toBe(before);
    await client.close();
  });
});

describe('authorization answers', () => {
  it('answers a 401 or 403 with one freshly acquired token, and succeeds when that one is accepted', async () => {
    for (const status of [401, 403]) {
      const tenant = customerTenant();
      const { client } = harness(tenant.tenantId);
      const before = graphCalls();
      await client.getJson(usersUrl(), signal());
      expect(tokenCalls(tenant.tenantId)).toBe(1);
      emulator.injectFault({ service: 'graph', path: '/users', status, times: 1 });
      expect(((await client.getJson(usersUrl(), signal())) as { value: unknown[] }).value).toHaveLength(3);
      // The cached token was dropped: a second token request.
      expect(tokenCalls(tenant.tenantId)).toBe(2);
      expect(graphCalls() - before).toBe(3);
      await client.close();
    }
  });

  it('judges a second refusal a consent problem, with the status and Graph code for the worker', async () => {
    const tenant = customerTenant();
    emulator.injectFault({ service: 'graph', path: '/users', status: 403, times: 2 });
    const { client } = harness(tenant.tenantId);
    const before = graphCalls();
    const error = await client.getJson(usersUrl(), signal()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EntraAuthError);
    expect(error).toMatchObject({ problem: 'consent', status: 403, entraCode: 'Authorization_RequestDenied', code: 'auth', retryable: false });
    expect(tokenCalls(tenant.tenantId)).toBe(2);
    expect(graphCalls() - before).toBe(2);
    await client.close();
  });
});

describe('fallback credentials', () => {
  it('uses the previous key while the new one is unknown to Entra ID, and keeps using it', async () => {
    const tenant = customerTenant();
    const { client } = harness(tenant.tenantId, { cert: newCertificate, fallbackCredentials: [credential(oldCertificate)] });
    expect(client.credentialUsed).toBe('primary');
    expect(((await client.getJson(usersUrl(), signal())) as { value: unknown[] }).value).toHaveLength(3);
    expect(client.credentialUsed).toBe('fallback');
    const tokenAnswers = emulator.requestsTo('login', '/token').filter((r) => r.tenantId === tenant.tenantId).map((r) => r.status);
    expect(tokenAnswers).toEqual([401, 200]);
    // The fallback's token serves the next calls: no more token requests, none with the new key.
    await client.getJson(usersUrl(), signal());
    expect(tokenCalls(tenant.tenantId)).toBe(2);
    await client.close();
  });

  it('reports the primary key refused when no fallback works, with its AADSTS code', async () => {
    const tenant = customerTenant();
    const stranger = await generateCertificate({ subject: 'unregistered', validityDays: 1 });
    const { client } = harness(tenant.tenantId, { cert: newCertificate, fallbackCredentials: [credential(stranger)] });
    const error = await client.token(signal()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EntraAuthError);
    expect(error).toMatchObject({ problem: 'credential', status: 401, entraCode: 'AADSTS700027' });
    expect((error as Error).message).toContain('Entra ID refused the certificate of app');
    expect(client.credentialUsed).toBe('primary');
    expect(tokenCalls(tenant.tenantId)).toBe(2);
    await client.close();
  });

  it('passes fallbacks through the provider and tells which credential it used', async () => {
    const tenant = customerTenant();
    const settings = entraIdSettingsSchema.parse({
      tenantId: tenant.tenantId,
      connectorId: '3f1e2d3c-4b5a-4697-8877-665544332211',
      authorityHost: emulator.authorityHost,
      graphBaseUrl: emulator.graphBaseUrl,
      caPem: emulator.caPem,
    });
    const provider = createEntraIdProvider(settings, encodeCertificateSecret({ clientId: appId, certificatePem: newCertificate.certificatePem, privateKeyPem: newCertificate.privateKeyPem }), {
      tokenCache: new EntraTokenCache(),
      destinations: testDestinations,
      fallbackCredentials: [credential(oldCertificate)],
    });
    const report = await provider.testConnection();
    expect(report.ok).toBe(true);
    expect(provider.credentialUsed).toBe('fallback');
    await provider.close();
  });
});

describe('redirects through the SDK RedirectHandler', () => {
  let servers: Server[] = [];
  let seen: { server: string; path: string; authorization: string | undefined }[] = [];
  let tls: Awaited<ReturnType<typeof createEmulatorTls>>;

  beforeAll(async () => {
    tls = await createEmulatorTls();
  });

  afterEach(async () => {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => {
      s.closeAllConnections();
      s.close(() => resolve());
    })));
    servers = [];
    seen = [];
  });

  async function server(name: string, handle: (path: string) => { status: number; headers?: Record<string, string>; body?: string }): Promise<string> {
    const s = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      seen.push({ server: name, path: req.url ?? '', authorization: req.headers.authorization });
      const answer = handle(req.url ?? '');
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      res.end(answer.body ?? '');
    });
    servers.push(s);
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    return `https://127.0.0.1:${(s.address() as AddressInfo).port}`;
  }

  /** The chain GraphClient builds, with a fixed token: what the redirect and sending layers do. */
  function chain(origin: string): { client: Client; close: () => Promise<void> } {
    const dispatcher = new Agent({ connect: checkedUndiciConnector(buildConnector, testDestinations, { ca: tls.caPem }) });
    const client = Client.initWithMiddleware({
      customHosts: new Set(['127.0.0.1']),
      middleware: [
        new FailureCapture(),
        new AuthenticationHandler({ getAccessToken: async () => 'token-for-graph' }),
        new RedirectHandler(new RedirectHandlerOptions(5)),
        new UndiciSender({ origin, http: { agent: dispatcher, request }, readBody: async (body) => {
          let text = '';
          for await (const chunk of body) text += Buffer.from(chunk).toString('utf8');
          return text;
        } }),
      ],
    });
    return { client, close: () => dispatcher.close() };
  }

  it('follows a redirect within Graph’s origin, token included', async () => {
    const graph = await server('graph', (path) =>
      path.startsWith('/v1.0/old') ? { status: 301, headers: { location: '/v1.0/new?x=1' } } : { status: 200, body: '{"value":[1,"é👍"]}' },
    );
    const { client, close } = chain(graph);
    const state = new GraphRequestState(signal());
    const response = (await client.api(`${graph}/v1.0/old`).middlewareOptions([state]).responseType(ResponseType.RAW).get()) as Response;
    expect(response.status).toBe(200);
    // The text the sender read comes back as it was, without reading the Response again.
    expect(await answerText(response)).toBe('{"value":[1,"é👍"]}');
    expect(response.bodyUsed).toBe(false);
    // Its body, encoded only now, reads as the same text.
    expect(await response.text()).toBe('{"value":[1,"é👍"]}');
    // Any other Response is read.
    expect(await answerText(new Response('{"other":true}'))).toBe('{"other":true}');
    expect(seen).toEqual([
      { server: 'graph', path: '/v1.0/old', authorization: 'Bearer token-for-graph' },
      { server: 'graph', path: '/v1.0/new?x=1', authorization: 'Bearer token-for-graph' },
    ]);
    await close();
  });

  it('refuses a redirect to another origin: nothing, and no token, reaches it', async () => {
    const elsewhere = await server('elsewhere', () => ({ status: 200, body: '{}' }));
    const graph = await server('graph', () => ({ status: 307, headers: { location: `${elsewhere}/steal` } }));
    const { client, close } = chain(graph);
    const state = new GraphRequestState(signal());
    await expect(client.api(`${graph}/v1.0/users`).middlewareOptions([state]).responseType(ResponseType.RAW).get()).rejects.toThrow();
    expect(state.failure).toBeInstanceOf(ConfigError);
    expect((state.failure as Error).message).toBe(`Graph answered with a link outside ${graph}; refusing to follow it`);
    expect(seen.map((s) => s.server)).toEqual(['graph']);
    await close();
  });
});
