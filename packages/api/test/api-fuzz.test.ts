import { randomUUID } from 'node:crypto';
import http from 'node:http';
import fc from 'fast-check';
import { createConnector, createIntegration, createRun, finishRun, startRun, writeObjects } from '@dirsync/db';
import { generateCertificate } from '@dirsync/providers';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

// Bad input never makes the API fail: every route the server registers (taken from the server
// itself, so a new route is covered without touching this file) gets generated path parameters,
// query strings and bodies with a valid admin key, and must answer below 500 — except the
// server errors its OpenAPI document names for that route with the problem type naming a
// missing worker (there is none here). Client errors must be problem+json.

const runsPerRoute = Number(process.env['DIRSYNC_FUZZ_RUNS'] ?? 60);

let api: ApiHarness;
let adminToken: string;
let platformToken: string;
let agent: http.Agent;
let openapi: OpenApiDocument;
const ids: { integration: string[]; run: string[]; connector: string[] } = { integration: [], run: [], connector: [] };
let accountId: string;
const cursors: string[] = [];
let cases = 0;

interface JsonSchema {
  type?: string | string[];
  format?: string;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  properties?: Record<string, JsonSchema>;
  anyOf?: JsonSchema[];
}
interface OpenApiOperation {
  parameters?: Array<{ in: string; name: string; schema?: JsonSchema }>;
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
  responses?: Record<string, unknown>;
}
interface OpenApiDocument {
  paths: Record<string, Record<string, OpenApiOperation>>;
}

beforeAll(async () => {
  api = await startApiHarness('api_fuzz', {
    // Waiting for a worker that does not exist would only slow the run down.
    controlTimeoutMs: 50,
    syncWaitLimitMs: 50,
    rateLimit: { max: 1_000_000, timeWindowMs: 60_000 },
    publicRateLimit: { max: 1_000_000, timeWindowMs: 60_000 },
  });
  accountId = await api.account('fuzz');
  adminToken = await api.key(accountId, ['admin']);
  platformToken = await api.key(null, ['admin']);
  agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  for (let i = 0; i < 3; i++) {
    const integration = await createIntegration(api.db, { accountId, kind: 'ldap', name: `fuzz ${i}`, settings: ldapSettings() }, { ring: api.ring, plaintext: 'fuzz-password' });
    ids.integration.push(integration.id);
    const runId = randomUUID();
    await createRun(api.db, { id: runId, integrationId: integration.id, modeRequested: 'full', trigger: 'schedule' });
    await startRun(api.db, runId, { mode: 'full', workerId: 'fuzz' });
    const write = (externalId: string, type: string) => ({ externalId, type, dn: null, attributesJson: JSON.stringify({ name: externalId }), contentHash: externalId });
    await writeObjects(api.db, integration.id, runId, [write('a', 'user'), write('b', 'user'), write('g', 'group'), write('h', 'group')]);
    await finishRun(api.db, runId, { status: 'blocked', fetched: 4, created: 4, wouldDelete: 9, issues: [{ reason: 'one' }, { reason: 'two' }] });
    ids.run.push(runId);
  }
  const certificate = await generateCertificate({ subject: 'dirsync fuzz connector', validityDays: 30 });
  const connector = await createConnector(
    api.db,
    api.ring,
    { name: 'fuzz', description: 'fuzz connector', clientId: randomUUID(), applicationObjectId: randomUUID(), homeTenantId: randomUUID(), redirectUri: `${api.baseUrl}/v1/consent/callback` },
    certificate,
  );
  ids.connector.push(connector.id);
  // Real cursors, to be mutated.
  for (const path of [`/v1/integrations/${ids.integration[0]}/users?limit=1`, `/v1/runs?limit=1`, `/v1/runs/${ids.run[0]}/issues?limit=1`]) {
    const page = (await (await api.request('GET', path, { token: adminToken })).json()) as { nextCursor?: string | null };
    if (typeof page.nextCursor === 'string') cursors.push(page.nextCursor);
  }
  expect(cursors).toHaveLength(3);
  openapi = (await (await api.request('GET', '/v1/openapi.json')).json()) as OpenApiDocument;
});

afterAll(async () => {
  agent?.destroy();
  await api?.close();
});

/** Percent-encodes the UTF-8 bytes of any string (lone surrogates included, unlike encodeURIComponent). */
function encode(value: string): string {
  return [...Buffer.from(value, 'utf8')].map((byte) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

const nasty = [
  '', ' ', 'x', '0', '-1', '1.5', '1e309', '-1e309', 'NaN', 'Infinity', 'null', 'true', 'undefined', '[]', '{}',
  '\u0000', 'a\u0000b', '%00', '\ud800', '\udfff', '😀', '\u202e', '\uffff', '\u200b', 'Ω≈ç√', "'; drop table accounts; --", '"', '\\',
  '../../etc/passwd', '..', '.', '/', '?', '#', '&', '=', '+', '%', 'x'.repeat(101), 'é'.repeat(3000), 'x'.repeat(20_000),
  '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'FFFFFFFF-FFFF-4FFF-8FFF-FFFFFFFFFFFF',
  '{00000000-0000-4000-8000-000000000000}', '00000000000040008000000000000000', '00000000-0000-4000-8000-00000000000g',
];

const strings = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...nasty) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }) },
  { weight: 1, arbitrary: fc.uuid().map((u) => u) },
);

const two = (n: number) => String(n).padStart(2, '0');
const dates = fc.oneof(
  fc.constantFrom(
    '0000-01-01T00:00:00Z', '0000-12-31T23:59:59Z', '2024-02-30T00:00:00Z', '2023-02-29T12:00:00Z', '2024-01-01T00:00:00+99:99',
    '2024-01-01T00:00:00-24:00', '2024-01-01T00:00:00+23:59', '2024-01-01T24:00:00Z', '2024-01-01T23:59:60Z', '2024-13-01T00:00:00Z',
    '9999-12-31T23:59:59.999999999Z', '+275760-09-13T00:00:00Z', '-000001-01-01T00:00:00Z', '+010000-01-01T00:00:00Z', '1970-01-01T00:00:00Z',
    '2024-01-01', '2024-01-01T00:00:00', '2024-01-01T00:00:00.Z', '2024-01-01 00:00:00Z', '4714-11-24T00:00:00Z', '0001-01-01T00:00:00+14:00',
  ),
  fc
    .record({
      year: fc.integer({ min: 0, max: 99_999 }),
      month: fc.integer({ min: 0, max: 13 }),
      day: fc.integer({ min: 0, max: 32 }),
      hour: fc.integer({ min: 0, max: 25 }),
      minute: fc.integer({ min: 0, max: 61 }),
      offset: fc.oneof(fc.constant('Z'), fc.tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 99 }), fc.integer({ min: 0, max: 99 })).map(([s, h, m]) => `${s}${two(h)}:${two(m)}`)),
      fraction: fc.oneof(fc.constant(''), fc.integer({ min: 0, max: 999_999_999 }).map((f) => `.${f}`)),
    })
    .map((d) => `${String(d.year).padStart(4, '0')}-${two(d.month)}-${two(d.day)}T${two(d.hour)}:${two(d.minute)}:00${d.fraction}${d.offset}`),
);

const numbers = fc.oneof(
  fc.constantFrom('0', '-1', '1', '1000', '1001', '1.5', '1e3', '1e309', '-1e309', '9007199254740993', '99999999999999999999999', 'NaN', 'Infinity', '-0', '0x10', ' 5', '5 ', '0b1', '1_000'),
  fc.integer().map(String),
  fc.double().map(String),
  fc.bigInt().map(String),
);

const base64url = (text: string) => Buffer.from(text, 'utf8').toString('base64url');
const jsonValue = fc.jsonValue({ maxDepth: 3 });
const cursorsArb = fc.oneof(
  // Real cursors exist only once beforeAll ran: picked at generation time.
  fc.constant(null).chain(() => fc.constantFrom(...cursors)),
  fc.tuple(fc.oneof(dates, strings), fc.oneof(strings, numbers)).map((position) => base64url(JSON.stringify(position))),
  jsonValue.map((value) => base64url(JSON.stringify(value))),
  fc.string({ maxLength: 40 }).map(base64url),
  strings,
);

const queryValue = fc.oneof(strings, dates, numbers, cursorsArb, fc.constantFrom('true', 'false', 'full', 'delta', 'queued', 'api', 'schedule'));
const validDate = fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString());

/**
 * A value for one documented parameter or body field: often a valid one, so that the other
 * values of the same request get past validation and reach the handler and the database.
 */
function valueFor(name: string, schema: JsonSchema | undefined, real: readonly string[]): fc.Arbitrary<string> {
  const types = [schema?.type ?? []].flat();
  const choices: Array<fc.WeightedArbitrary<string>> = [{ weight: 2, arbitrary: strings }];
  if (name === 'cursor') choices.push({ weight: 6, arbitrary: cursorsArb });
  if (schema?.format === 'date-time') choices.push({ weight: 3, arbitrary: validDate }, { weight: 5, arbitrary: dates });
  if (schema?.format === 'uuid' || /Id$/.test(name)) choices.push({ weight: 4, arbitrary: fc.constantFrom(...real) });
  if (schema?.enum !== undefined) choices.push({ weight: 4, arbitrary: fc.constantFrom(...schema.enum.map(String)) });
  if (types.includes('integer') || types.includes('number')) {
    const min = schema?.minimum ?? 0;
    const max = Math.min(schema?.maximum ?? 1000, 1_000_000);
    choices.push({ weight: 3, arbitrary: fc.integer({ min, max }).map(String) }, { weight: 4, arbitrary: numbers });
  }
  return fc.oneof(...choices);
}

/** A generated path parameter: a real id of the right kind now and then, anything otherwise. */
function paramArb(route: string) {
  const real = route.includes('/runs') ? ids.run : route.includes('/connectors') ? ids.connector : ids.integration;
  return fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...real, ...ids.integration, ...ids.run) }, { weight: 5, arbitrary: strings });
}

const hugeBody = 'x'.repeat(1024 * 1024 + 10);
const deepArray = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
const deepObject = `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`;
const contentTypes = [
  'application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x',
  'application/problem+json', 'application/json; charset=latin1', 'application/vnd.api+json', 'application/octet-stream', 'application/JSON',
];

/** A body field: a plausible value of its documented type now and then, anything otherwise. */
function fieldArb(name: string, schema: JsonSchema): fc.Arbitrary<unknown> {
  const types = [schema.type ?? schema.anyOf?.flatMap((s) => [s.type ?? []].flat()) ?? []].flat();
  const any = fc.oneof(
    jsonValue,
    strings,
    fc.constantFrom(1e308, -1, 1.5, 0, Number.MAX_SAFE_INTEGER + 2, 2 ** 64, -(2 ** 63), true, null, [], {}),
    fc.dictionary(strings, jsonValue, { maxKeys: 4 }),
  );
  const plausible: Array<fc.Arbitrary<unknown>> = [];
  if (name === 'settings') plausible.push(fc.constant(ldapSettings()), fc.record({ url: strings, bindDn: strings }).map((v) => ({ ...ldapSettings(), ...v })));
  if (name === 'kind') plausible.push(fc.constant('ldap'));
  if (schema.enum !== undefined) plausible.push(fc.constantFrom(...schema.enum));
  if (types.includes('string')) plausible.push(valueFor(name, schema, ids.integration), fc.constantFrom('*/5 * * * *', 'ok name'));
  if (types.includes('integer') || types.includes('number')) plausible.push(fc.integer({ min: -5, max: 2000 }), fc.double());
  if (types.includes('boolean')) plausible.push(fc.boolean());
  return plausible.length === 0 ? any : fc.oneof({ weight: 2, arbitrary: any }, { weight: 3, arbitrary: fc.oneof(...plausible) });
}

function bodyArb(schema: JsonSchema | undefined) {
  const properties = Object.entries(schema?.properties ?? {});
  const shaped =
    properties.length === 0
      ? fc.dictionary(strings, jsonValue, { maxKeys: 4 })
      : fc.record(Object.fromEntries([...properties.map(([name, field]) => [name, fieldArb(name, field)]), ['unknown', jsonValue]]), { requiredKeys: [] });
  return fc.oneof(
    { weight: 6, arbitrary: shaped.map((value) => ({ text: JSON.stringify(value), type: 'application/json' as string | undefined })) },
    { weight: 2, arbitrary: jsonValue.map((value) => ({ text: JSON.stringify(value) ?? 'null', type: 'application/json' as string | undefined })) },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom('{', '{"a":', '[1,]', 'nul', '\u0000', '\ufeff{}', '{"a":1}{"b":2}', '', ' ', '"\\ud800"', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}', '{"a":"\\u0000"}', '1e309', '-', 'true')
        .map((text) => ({ text, type: 'application/json' as string | undefined })),
    },
    { weight: 2, arbitrary: fc.tuple(shaped, fc.constantFrom(...contentTypes, undefined)).map(([value, type]) => ({ text: JSON.stringify(value), type })) },
    { weight: 1, arbitrary: fc.constantFrom(deepArray, deepObject, `{"name":"${'x'.repeat(600_000)}"}`, hugeBody).map((text) => ({ text, type: 'application/json' as string | undefined })) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

interface Answer {
  status: number;
  type: string;
  body: string;
}

function send(method: string, path: string, body: { text: string; type: string | undefined } | undefined, token: string): Promise<Answer> {
  const url = new URL(api.baseUrl);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body?.type !== undefined) headers['content-type'] = body.type;
    const request = http.request({ host: url.hostname, port: url.port, method, path, headers, agent: method === 'HEAD' ? false : agent }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, type: String(response.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    // The server may answer (413, 415) and close before a large body is sent.
    request.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' || error.code === 'EPIPE' ? resolve({ status: 0, type: '', body: '' }) : reject(error)));
    if (body !== undefined) request.write(body.text);
    request.end();
  });
}

function operationOf(method: string, url: string): OpenApiOperation | undefined {
  const path = url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
  return openapi.paths[path]?.[method.toLowerCase()];
}

/** Server errors a route documents with the problem types that say the worker did not answer. */
function allowedServerError(operation: OpenApiOperation | undefined, answer: Answer): boolean {
  if (!operation?.responses?.[String(answer.status)]) return false;
  return /\/v1\/problems\/(worker-timeout|worker-failed)"/.test(answer.body);
}

test('the server lists its routes, the documented ones included', () => {
  const listed = new Set(api.server.routes.map((r) => `${r.method} ${r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`));
  const documented = Object.entries(openapi.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
  expect(documented.length).toBeGreaterThan(15);
  for (const operation of documented) expect(listed).toContain(operation);
  for (const probe of ['GET /healthz', 'GET /readyz', 'GET /v1/consent/callback']) expect(listed).toContain(probe);
});

test('no route answers a server error to generated parameters, query strings and bodies', async () => {
  const started = Date.now();
  const failures: string[] = [];
  const routes = api.server.routes.filter((r) => r.method !== 'OPTIONS');
  for (const route of routes) {
    const operation = operationOf(route.method, route.url);
    const queryParameters = (operation?.parameters ?? []).filter((p) => p.in === 'query');
    const bodySchema = operation?.requestBody?.content?.['application/json']?.schema;
    const params = [...route.url.matchAll(/:([A-Za-z0-9_]+)|\*/g)].map((m) => m[0]);
    const withBody = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(route.method);
    const arbitrary = fc.record({
      params: fc.tuple(...params.map(() => paramArb(route.url))),
      rawParam: fc.boolean(),
      query: fc
        .tuple(
          fc.tuple(...queryParameters.map((p) => fc.option(valueFor(p.name, p.schema, [...ids.integration, ...ids.run]).map((v) => [p.name, v] as [string, string]), { nil: undefined, freq: 3 }))),
          fc.array(fc.tuple(fc.oneof(fc.constantFrom('key', 'code', 'state', 'limit', 'cursor', 'since', 'tenant', 'error_description'), strings), queryValue), { maxLength: 3 }),
        )
        .map(([documented, extra]) => [...documented.filter((p): p is [string, string] => p !== undefined), ...extra]),
      body: withBody ? bodyArb(bodySchema) : fc.constant(undefined),
      platform: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(arbitrary, async (input) => {
        cases += 1;
        let index = 0;
        const path = route.url.replace(/:([A-Za-z0-9_]+)|\*/g, () => {
          const value = input.params[index++] ?? '';
          // Now and then a raw value: malformed percent-encoding reaches the router as sent.
          return input.rawParam && /^[\x21-\x7e]*$/.test(value) && !value.includes('/') && !value.includes('?') && !value.includes('#') ? value : encode(value);
        });
        const query = input.query.map(([name, value]) => `${encode(name)}=${encode(value)}`).join('&');
        let answer: Answer;
        try {
          answer = await send(route.method, query === '' ? path : `${path}?${query}`, input.body, input.platform ? platformToken : adminToken);
        } catch (error) {
          failures.push(`${route.method} ${route.url}: request failed: ${(error as Error).message}`);
          return false;
        }
        if (answer.status >= 500 && !allowedServerError(operation, answer)) {
          const logged = api.logs.filter((line) => line.includes('"request failed"')).at(-1) ?? '';
          failures.push(`${route.method} ${route.url}: ${answer.status} ${answer.body.slice(0, 300)} logged ${logged.slice(0, 400)}`);
          return false;
        }
        // 431: Node's own HTTP parser refuses a request head over its size limit, before any route.
        if (answer.status >= 400 && answer.status !== 431 && (path.startsWith('/v1/') || path.startsWith('/healthz') || path.startsWith('/readyz')) && !answer.type.startsWith('application/problem+json')) {
          // The consent callback answers browsers with a page; API clients get problem+json.
          if (!path.startsWith('/v1/consent/callback')) {
            failures.push(`${route.method} ${route.url}: ${answer.status} as ${answer.type}`);
            return false;
          }
        }
        return true;
      }),
      { numRuns: runsPerRoute, endOnFailure: true },
    ).catch((error: unknown) => {
      const message = (error as Error).message;
      const counterexample = /Counterexample: (.*)/.exec(message)?.[1] ?? message;
      const thrown = /Got (?:error|an exception): (.*)/.exec(message)?.[1];
      failures.push(`${route.method} ${route.url}: ${thrown === undefined ? '' : `threw ${thrown} for `}${counterexample.length > 600 ? `${counterexample.slice(0, 600)}…` : counterexample}`);
    });
  }
  const seconds = (Date.now() - started) / 1000;
  // Printed so CI logs carry the figures.
  process.stdout.write(`api fuzz: ${cases} requests over ${routes.length} routes in ${seconds.toFixed(1)} s\n`);
  expect(failures).toEqual([]);
  expect(cases).toBeGreaterThanOrEqual(routes.length * runsPerRoute);
});

test('no log line carries a rejected or accepted query string', async () => {
  const marker = `leak${randomUUID().replace(/-/g, '')}`;
  const paths = [
    `/v1/consent/callback?code=${marker}c&state=${marker}s&admin_consent=True&tenant=${marker}t`,
    `/v1/integrations?key=${marker}k`,
    `/v1/runs?since=${marker}d&limit=${marker}l`,
    `/v1/nowhere?token=${marker}n`,
    `/healthz?key=${marker}h`,
  ];
  for (const path of paths) {
    const answer = await send('GET', path, undefined, adminToken);
    expect(answer.status).toBeLessThan(500);
  }
  await send('GET', `/v1/integrations/${marker}p?key=${marker}q`, undefined, adminToken);
  // The requests were logged (by path), so the check below reads something.
  const logged = api.logs.filter((line) => line.includes('"incoming request"') && line.includes(marker));
  expect(logged.length).toBeGreaterThan(0);
  expect(logged.every((line) => !line.includes('"url"'))).toBe(true);
  for (const line of api.logs) expect(line).not.toMatch(new RegExp(`${marker}[cstkdlnhq]`));
});

test('the inputs that used to fail are client errors naming the problem', async () => {
  // An integration and a run of its own: the fuzz may have deleted the shared ones.
  const integrationId = (await createIntegration(api.db, { accountId, kind: 'ldap', name: 'fixed inputs', settings: ldapSettings() }, { ring: api.ring, plaintext: 'fuzz-password' })).id;
  const runId = randomUUID();
  await createRun(api.db, { id: runId, integrationId, modeRequested: 'full', trigger: 'schedule' });
  const cursor = (position: unknown) => Buffer.from(JSON.stringify(position)).toString('base64url');
  const cases: Array<[string, string, number, RegExp]> = [
    // A run id that is not a uuid reached a uuid cast in SQL.
    ['GET', '/v1/runs/not-a-uuid', 400, /params: id: must be a uuid/],
    ['POST', '/v1/runs/1e309/approve', 400, /must be a uuid/],
    // A connector "id" with a NUL byte reached a text comparison.
    ['GET', '/v1/connectors/%00', 400, /NUL characters/],
    // Cursors are decoded strictly: year 0000, an impossible date, a key of the wrong kind.
    ['GET', `/v1/runs?cursor=${cursor(['0000-01-01T00:00:00.000000Z', randomUUID()])}`, 400, /cursor is not one this API returned/],
    ['GET', `/v1/runs?cursor=${cursor(['2024-02-30T00:00:00.000000Z', randomUUID()])}`, 400, /cursor/],
    ['GET', `/v1/runs?cursor=${cursor(['2024-01-01T00:00:00.000000Z', 'x'])}`, 400, /cursor/],
    ['GET', `/v1/integrations/${integrationId}/users?cursor=${cursor(['2024-01-01T00:00:00.000000Z', '99999999999999999999'])}`, 400, /cursor/],
    ['GET', `/v1/runs/${runId}/issues?cursor=${cursor(['1970-01-01T00:00:00.000000Z', '-1'])}`, 400, /cursor/],
    // Dates PostgreSQL refuses although RFC 3339 allows their shape.
    ['GET', '/v1/runs?since=0000-01-01T00:00:00Z', 400, /year 0001/],
    ['GET', `/v1/integrations/${integrationId}/users?updatedSince=2024-01-01T00:00:00%2B23:59`, 400, /±15:59/],
    ['GET', '/v1/runs?since=2024-02-30T00:00:00Z', 400, /since/],
    ['GET', '/v1/runs?limit=1e309', 400, /limit/],
    ['GET', '/v1/runs?limit=-1', 400, /limit/],
    // The router's own refusals: malformed escapes, over-long parameters.
    ['GET', '/v1/integrations/%zz', 400, /not a valid url component/],
    ['GET', `/v1/integrations/${'x'.repeat(200)}`, 414, /max param length/],
  ];
  for (const [method, path, status, detail] of cases) {
    const answer = await send(method, path, method === 'POST' ? { text: '{}', type: 'application/json' } : undefined, adminToken);
    expect([path, answer.status, answer.type]).toEqual([path, status, expect.stringMatching(/^application\/problem\+json/)]);
    expect(JSON.parse(answer.body)).toMatchObject({ status, detail: expect.stringMatching(detail) });
  }

  // NUL in a body, key or value, is refused before anything stores it.
  const named = await send('POST', '/v1/integrations', { text: JSON.stringify({ kind: 'ldap', name: 'a\u0000b', settings: ldapSettings() }), type: 'application/json' }, adminToken);
  expect(named.status).toBe(400);
  expect(JSON.parse(named.body)).toMatchObject({ errors: [{ in: 'body', path: 'name' }] });
  // A malformed body is described without quoting it: it may be a password being set.
  const secret = `hunter2-${randomUUID()}`;
  const malformed = await send('PUT', `/v1/integrations/${integrationId}/secret`, { text: `{"secret":"${secret}`, type: 'application/json' }, adminToken);
  expect(malformed.status).toBe(400);
  expect(JSON.parse(malformed.body)).toMatchObject({ type: '/v1/problems/invalid-request', detail: expect.stringMatching(/not valid JSON/) });
  expect(malformed.body).not.toContain('hunter2');
  // A request head over Node's limit: problem+json, and nothing after the head of a HEAD.
  const oversized = await send('GET', `/v1/runs?x=${'y'.repeat(20_000)}`, undefined, adminToken);
  expect([oversized.status, oversized.type]).toEqual([431, 'application/problem+json']);
  const oversizedHead = await send('HEAD', `/v1/runs?x=${'y'.repeat(20_000)}`, undefined, adminToken);
  expect(oversizedHead.status).toBe(431);
});
