import http from 'node:http';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

// The routes that need no key (probes, docs, OpenAPI, the consent callback) are limited per
// client address, in Redis like the per-key limit, so one address cannot flood them.

let api: ApiHarness;
let token: string;

beforeAll(async () => {
  api = await startApiHarness('api_public_limit', { publicRateLimit: { max: 4, timeWindowMs: 60_000 } });
  token = await api.key(await api.account('acme'), ['read']);
});

afterAll(async () => {
  await api.close();
});

/** GET from a chosen loopback source address (every 127/8 address is this machine). */
function getFrom(source: string, path: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const url = new URL(api.baseUrl);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: url.hostname, port: url.port, path, method: 'GET', localAddress: source, agent: false, headers }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

test('past the limit an address gets 429 problem+json with Retry-After on every unauthenticated route; another address does not', async () => {
  const source = '127.0.0.7';
  const paths = ['/healthz', '/readyz', '/v1/openapi.json', '/docs/'];
  const first = await Promise.all(paths.map(async (path) => (await getFrom(source, path)).status));
  expect(first).toEqual([200, 200, 200, 200]);

  for (const path of [...paths, '/v1/consent/callback?state=x']) {
    const limited = await getFrom(source, path);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(limited.body)).toMatchObject({ type: '/v1/problems/rate-limited', status: 429, detail: expect.stringMatching(/this address made more than 4 requests/) });
  }

  // The limit is per address.
  expect((await getFrom('127.0.0.8', '/healthz')).status).toBe(200);
});

test('authenticated API routes are not counted against the address, only against their key', async () => {
  const source = '127.0.0.9';
  for (let i = 0; i < 6; i++) {
    const answer = await new Promise<number>((resolve, reject) => {
      const url = new URL(api.baseUrl);
      const request = http.request(
        { host: url.hostname, port: url.port, path: '/v1/integrations', method: 'GET', localAddress: source, agent: false, headers: { authorization: `Bearer ${token}` } },
        (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode ?? 0));
        },
      );
      request.on('error', reject);
      request.end();
    });
    expect(answer).toBe(200);
  }
  expect((await getFrom(source, '/healthz')).status).toBe(200);
});

test('requests with unknown keys are counted per address and refused past the limit before any key lookup', async () => {
  const source = '127.0.0.11';
  const guess = (i: number) => ({ authorization: `Bearer dsk_guess${i}` });
  for (let i = 0; i < 4; i++) expect((await getFrom(source, '/v1/integrations', guess(i))).status).toBe(401);
  const limited = await getFrom(source, '/v1/integrations', guess(5));
  expect(limited.status).toBe(429);
  expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
  expect(JSON.parse(limited.body)).toMatchObject({ type: '/v1/problems/rate-limited', detail: expect.stringMatching(/more than 4 requests without a valid key/) });
  // Another address with a valid key is not affected.
  expect((await getFrom('127.0.0.12', '/v1/integrations', { authorization: `Bearer ${token}` })).status).toBe(200);
});
