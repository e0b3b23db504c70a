import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { consoleContentSecurityPolicy } from '../src/index.ts';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

// Every answer of the API server is refused to frames of any site (the docs, the queue dashboard
// and the consent callback share the console's origin), and the pages keep working.

let api: ApiHarness;
let assetsDir: string;
let platformKey: string;
let browser: Browser;
let attacker: Server;
let attackerOrigin: string;
let attackerPage = '';

const zeroUuid = '00000000-0000-4000-8000-000000000000';

beforeAll(async () => {
  assetsDir = await mkdtemp(join(tmpdir(), 'dirsync-framing-'));
  await mkdir(join(assetsDir, 'assets'));
  await writeFile(join(assetsDir, 'index.html'), '<!doctype html><title>dirsync console</title><div id="root"></div>');
  await writeFile(join(assetsDir, 'assets', 'app-1.js'), 'console.log("app")');
  api = await startApiHarness('api_framing', { console: { assetsDir, publicUrl: 'http://console.test:8080' } });
  platformKey = await api.key(null, ['admin'], 'platform admin');
  attacker = createServer((_request, response) => {
    response.setHeader('content-type', 'text/html; charset=utf-8');
    response.end(attackerPage);
  });
  await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
  attackerOrigin = `http://localhost:${(attacker.address() as AddressInfo).port}`;
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => (attacker ? attacker.close(resolve) : resolve(undefined)));
  await api?.close();
  await rm(assetsDir, { recursive: true, force: true });
});

function expectNotFramed(what: string, answer: Response): void {
  expect({ what, xfo: answer.headers.get('x-frame-options'), csp: answer.headers.get('content-security-policy') }).toEqual({
    what,
    xfo: 'DENY',
    csp: expect.stringMatching(/(^|; )frame-ancestors 'none'(;|$)/),
  });
}

test('every route the server registered answers with X-Frame-Options DENY and frame-ancestors \'none\', signed in or not', async () => {
  const routes = api.server.routes.filter((route) => route.method !== 'OPTIONS');
  const families = new Set(routes.map((route) => route.url.split('/').slice(0, 2).join('/')));
  // The families this test must reach: the API, the docs, the dashboard, the console, the probes.
  expect([...families]).toEqual(expect.arrayContaining(['/v1', '/docs', '/admin', '/console', '/healthz', '/readyz']));
  let checked = 0;
  for (const route of routes) {
    const path = route.url.replace(/:[A-Za-z0-9_]+/g, zeroUuid).replace(/\*/g, 'x');
    const body = ['POST', 'PUT', 'PATCH'].includes(route.method) ? '{}' : undefined;
    const credentials = route.url.startsWith('/admin') ? `Basic ${Buffer.from(`ops:${platformKey}`).toString('base64')}` : `Bearer ${platformKey}`;
    for (const authorization of [undefined, credentials]) {
      const answer = await fetch(`${api.baseUrl}${path}`, {
        method: route.method,
        redirect: 'manual',
        headers: { ...(authorization === undefined ? {} : { authorization }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body }),
      });
      await answer.arrayBuffer();
      expectNotFramed(`${route.method} ${path} ${authorization === undefined ? 'without' : 'with'} a key`, answer);
      checked += 1;
    }
  }
  expect(checked).toBeGreaterThan(60);
  // Not a route at all, and a malformed one.
  expectNotFramed('unknown path', await fetch(`${api.baseUrl}/nowhere`));
  expectNotFramed('malformed escape', await fetch(`${api.baseUrl}/v1/integrations/%E0%A4%A`));
});

test('the docs, the dashboard and the consent callback answer as before, framed by nobody; a policy of its own keeps its directives', async () => {
  const docs = await fetch(`${api.baseUrl}/docs/`, { redirect: 'follow' });
  expect(docs.status).toBe(200);
  expect(docs.headers.get('content-type')).toMatch(/^text\/html/);
  const html = await docs.text();
  const scripts = [...html.matchAll(/<script src="\.\/([^"]+)"/g)].map((match) => match[1] ?? '');
  expect(scripts.length).toBeGreaterThan(0);
  for (const script of scripts) {
    const answer = await fetch(`${api.baseUrl}/docs/${script}`);
    expect({ script, status: answer.status, type: answer.headers.get('content-type') }).toEqual({ script, status: 200, type: expect.stringMatching(/javascript/) });
    expectNotFramed(script, answer);
  }
  const dashboard = await fetch(`${api.baseUrl}/admin/queues`, { headers: { authorization: `Basic ${Buffer.from(`ops:${platformKey}`).toString('base64')}` } });
  expect(dashboard.status).toBe(200);
  expect(await dashboard.text()).toMatch(/<html/i);
  expectNotFramed('dashboard', dashboard);
  const consent = await fetch(`${api.baseUrl}/v1/consent/callback?error=access_denied&state=x`);
  expect(consent.headers.get('content-type')).toMatch(/^text\/html/);
  expect(consent.headers.get('content-security-policy')).toMatch(/^default-src 'none'; /);
  expectNotFramed('consent callback', consent);
  // The console's own policies are left whole.
  expect((await fetch(`${api.baseUrl}/console/`)).headers.get('content-security-policy')).toBe(consoleContentSecurityPolicy);
});

test('in Chromium the docs render their operations, and another site\'s frame of them stays empty', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${api.baseUrl}/docs`);
    await page.locator('.opblock-summary-path', { hasText: '/v1/integrations' }).first().waitFor();
    expect(errors).toEqual([]);

    attackerPage = `<!doctype html><iframe src="${api.baseUrl}/docs/"></iframe><iframe src="${api.baseUrl}/admin/queues"></iframe>`;
    const framed = Promise.all([
      page.waitForResponse((response) => response.url() === `${api.baseUrl}/docs/`),
      page.waitForResponse((response) => response.url() === `${api.baseUrl}/admin/queues`),
    ]);
    await page.goto(`${attackerOrigin}/frame`);
    await framed;
    expect(page.frames()).toHaveLength(3);
    for (const frame of page.frames().slice(1)) {
      // A refused frame is an error page of the browser's own: nothing of the docs or the dashboard.
      expect(await frame.locator('.opblock-summary-path, #root').count().catch(() => 0)).toBe(0);
      expect(frame.url()).not.toMatch(new RegExp(`^${api.baseUrl}`));
    }
  } finally {
    await context.close();
  }
});
