import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createConsoleSignInLink, createIntegration, createKeyRing, createRun, finishRun, getIntegration, insertObjects, markIntegrationRun, startRun } from '@dirsync/db';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { type ConsoleStack, launchBrowser, openContext, type PageWatch, startConsoleStack } from './harness.ts';

// What a customer controls reaches the console's pages: integration names and descriptions,
// their directory's DNs and ids, the reasons of a run's issues, and any URL put in front of a
// signed-in administrator. None of it may run as script. A page of another site may drive the
// administrator's browser too: it must neither change anything nor read or frame the console.

const flag = '__pwned';
const payloads = {
  script: `<script>window.${flag}='script'</script>`,
  img: `"><img src=x onerror="window.${flag}='img'">`,
  svg: `<svg onload="window.${flag}='svg'"></svg>`,
  link: `javascript:window.${flag}='link'`,
} as const;
const hostile = `Evil ${payloads.img}${payloads.script}${payloads.svg}`;

let stack: ConsoleStack;
let browser: Browser;
let context: BrowserContext;
let watch: PageWatch;
let page: Page;
let integrationId: string;
let runId: string;
let attacker: Server;
let attackerOrigin: string;

beforeAll(async () => {
  [stack, browser] = await Promise.all([startConsoleStack({ label: 'console_xss', scheduler: false }), launchBrowser()]);
  const accountId = await stack.account('xss-victims');
  const ring = createKeyRing({ current: stack.env['DIRSYNC_SECRET_KEY'] ?? '' });
  const integration = await createIntegration(
    stack.db,
    {
      accountId,
      kind: 'ldap',
      name: hostile,
      description: `${payloads.link} ${hostile}`,
      enabled: true,
      settings: {
        url: 'ldaps://ldap.example.com',
        bindDn: `cn=${payloads.img},dc=example,dc=org`,
        users: { baseDns: [`ou=${payloads.script},dc=example,dc=org`] },
        groups: { baseDns: ['ou=groups,dc=example,dc=org'] },
      },
    },
    { ring, plaintext: 'not-a-real-password' },
  );
  integrationId = integration.id;
  // A run as a worker would record it: objects named by the directory, issues in its words.
  const run = await createRun(stack.db, { integrationId, modeRequested: 'full', trigger: 'manual' });
  await startRun(stack.db, run.id, { mode: 'full', workerId: 'xss-test' });
  await insertObjects(stack.db, integrationId, run.id, [
    { externalId: payloads.link, type: 'user', dn: `cn=${payloads.img},ou=${payloads.script},dc=example,dc=org`, attributesJson: JSON.stringify({ cn: hostile }), contentHash: 'a' },
    { externalId: `${payloads.svg}-group`, type: 'group', dn: null, attributesJson: JSON.stringify({ cn: payloads.svg }), contentHash: 'b' },
  ]);
  await finishRun(stack.db, run.id, {
    status: 'blocked',
    created: 2,
    wouldDelete: 40,
    error: `deletions blocked ${hostile}`,
    issues: [
      { dn: `cn=${payloads.img},dc=example,dc=org`, reason: `attribute rejected: ${payloads.script}` },
      { externalId: payloads.link, reason: payloads.svg },
      { reason: hostile },
    ],
  });
  await markIntegrationRun(stack.db, integrationId, { status: 'blocked', lastRunId: run.id });
  runId = run.id;

  // The attacker's site: another host name than the console's, so another site to the browser.
  attacker = createServer((request, response) => {
    response.setHeader('content-type', 'text/html; charset=utf-8');
    response.end(attackerPage(request.url ?? '/'));
  });
  await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
  attackerOrigin = `http://localhost:${(attacker.address() as AddressInfo).port}`;

  ({ context, watch } = await openContext(browser, stack.baseUrl));
  page = await context.newPage();
  const { token } = await createConsoleSignInLink(stack.db, { accountId, role: 'admin' });
  await page.goto(`${stack.baseUrl}/console/auth/link?token=${token}`);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('heading', { level: 1, name: 'Directory Synchronization' }).waitFor();
}, 120_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await new Promise((resolve) => (attacker ? attacker.close(resolve) : resolve(undefined)));
  await stack?.stop();
});

function attackerPage(path: string): string {
  const base = stack.baseUrl;
  if (path === '/form') {
    // A cross-site form needs no preflight: text/plain and urlencoded bodies, sent on load.
    return `<!doctype html><body>
      <form id="f" method="POST" enctype="text/plain" action="${base}/v1/integrations/${integrationId}/disable"><input name='{"a":"' value='b"}'></form>
      <script>document.getElementById('f').submit()</script></body>`;
  }
  if (path === '/logout') {
    return `<!doctype html><body><form id="f" method="POST" action="${base}/console/auth/logout"><input name="x" value="y"></form>
      <script>document.getElementById('f').submit()</script></body>`;
  }
  return `<!doctype html><body><h1>Attacker</h1>
    <iframe id="frame" src="${base}/console/" onload="document.body.dataset.framed='loaded'"></iframe>
    <script>
      window.results = {};
      const base = ${JSON.stringify(base)};
      const attempt = (name, run) => run().then((r) => (window.results[name] = 'read:' + r), (e) => (window.results[name] = 'blocked'));
      Promise.all([
        attempt('session', () => fetch(base + '/console/auth/session', { credentials: 'include' }).then((r) => r.text())),
        attempt('list', () => fetch(base + '/v1/integrations', { credentials: 'include' }).then((r) => r.text())),
        attempt('disable', () => fetch(base + '/v1/integrations/${integrationId}/disable', { method: 'POST', credentials: 'include', headers: { 'x-csrf-token': 'guess' } }).then((r) => String(r.status))),
        attempt('simple', () => fetch(base + '/v1/integrations/${integrationId}/disable', { method: 'POST', credentials: 'include', mode: 'no-cors', body: 'x' }).then((r) => r.type)),
      ]).then(() => (document.body.dataset.done = 'yes'));
    </script></body>`;
}

/** Nothing a customer wrote ran, no element it smuggled in exists, and the CSP still blocks inline script. */
async function expectInert(where: string): Promise<void> {
  // Evaluated in the page, whose DOM this file's types do not describe.
  const state = await page.evaluate<{ flag: unknown; smuggled: number; javascriptLinks: string[]; text: string }>(`(() => ({
    flag: window[${JSON.stringify(flag)}] ?? null,
    smuggled: document.querySelectorAll('#root img[src="x"], #root svg[onload], #root script, [onerror], [onload]').length,
    javascriptLinks: [...document.querySelectorAll('a[href]')].map((a) => a.getAttribute('href') ?? '').filter((href) => /^\\s*javascript:/i.test(href)),
    text: document.body.innerText,
  }))()`);
  expect({ where, flag: state.flag, smuggled: state.smuggled, javascriptLinks: state.javascriptLinks }).toEqual({ where, flag: null, smuggled: 0, javascriptLinks: [] });
  // The words are shown, as words.
  expect(state.text).toMatch(/<script>|onerror=|<svg onload/);
}

test('customer-controlled names, DNs and issue reasons are shown as text on every page, never run', async () => {
  await page.getByRole('link', { name: hostile }).waitFor();
  await expectInert('directory synchronization');

  await page.getByRole('link', { name: hostile }).click();
  await page.getByRole('heading', { level: 1, name: hostile }).waitFor();
  await expectInert('integration');

  await page.goto(`${stack.baseUrl}/console/runs/${runId}`);
  await page.getByRole('button', { name: 'Approve deletions' }).waitFor();
  await page.getByRole('list', { name: 'Issues' }).getByText(/attribute rejected: <script>/).waitFor();
  await page.getByRole('list', { name: 'Created' }).getByText(/<img src=x onerror=/).waitFor();
  await expectInert('run');

  await page.goto(`${stack.baseUrl}/console/actions`);
  await page.getByRole('heading', { level: 1, name: 'Actions needed' }).waitFor();
  await page.getByRole('button', { name: /^Actions needed \(1\)/ }).waitFor();
  await page.getByText(hostile).first().waitFor();
  await expectInert('actions');
});

test('words in the URL (a consent failure\'s reason, an unknown path) are shown as text', async () => {
  const reason = `${payloads.img}${payloads.script}`;
  await page.goto(`${stack.baseUrl}/console/connectors?migrate=${integrationId}&consent=failed&tenant=${encodeURIComponent(payloads.svg)}&reason=${encodeURIComponent(reason)}`);
  await page.getByRole('heading', { level: 1, name: 'Connectors' }).waitFor();
  await page.getByText(/Consent was not granted: "><img src=x onerror=/).waitFor();
  await expectInert('connectors with a consent reason');
  await page.goto(`${stack.baseUrl}/console/${encodeURIComponent(payloads.script)}`);
  await page.getByRole('heading', { level: 1, name: 'Page not found' }).waitFor();
  const flagged = await page.evaluate<unknown>(`window[${JSON.stringify(flag)}] ?? null`);
  expect(flagged).toBeNull();
});

test('the console\'s CSP refuses inline script and handlers even if markup got in', async () => {
  await page.goto(`${stack.baseUrl}/console/`);
  await page.getByRole('heading', { level: 1, name: 'Directory Synchronization' }).waitFor();
  const result = await page.evaluate<{ inline: unknown; handler: unknown; violations: string[] }>(`(async () => {
    const violations = [];
    // The violation reports are queued tasks: wait for both, 5 s at most.
    let bothReported;
    const reported = new Promise((resolve) => (bothReported = resolve));
    document.addEventListener('securitypolicyviolation', (event) => {
      violations.push(event.violatedDirective);
      if (violations.length >= 2) bothReported();
    });
    const deadline = setTimeout(bothReported, 5000);
    const script = document.createElement('script');
    script.textContent = 'window.__inline = 1';
    document.body.append(script);
    const holder = document.createElement('div');
    holder.innerHTML = '<img src="data:," onerror="window.__handler = 1"><img src="data:x" onerror="window.__handler = 1">';
    document.body.append(holder);
    await reported;
    clearTimeout(deadline);
    return { inline: window.__inline ?? null, handler: window.__handler ?? null, violations };
  })()`);
  expect(result.inline).toBeNull();
  expect(result.handler).toBeNull();
  expect(result.violations.length).toBeGreaterThanOrEqual(1);
  expect(result.violations.every((directive) => directive.startsWith('script-src'))).toBe(true);
});

test('a page of another site can neither change, read nor frame the console, nor sign the user out', async () => {
  const evil = await context.newPage();
  await evil.goto(`${attackerOrigin}/`);
  await evil.waitForFunction(`document.body.dataset.done === 'yes' && document.body.dataset.framed === 'loaded'`);
  const results = await evil.evaluate<Record<string, string>>('window.results');
  expect(results).toEqual({ session: 'blocked', list: 'blocked', disable: 'blocked', simple: 'read:opaque' });
  // The framed console never rendered: frame-ancestors 'none' replaced it by an error page.
  const frame = evil.frames().find((f) => f !== evil.mainFrame());
  expect(frame).toBeDefined();
  expect(await frame!.locator('#root').count()).toBe(0);

  await evil.goto(`${attackerOrigin}/form`);
  await evil.waitForURL(`${stack.baseUrl}/v1/integrations/${integrationId}/disable`);
  expect(await evil.locator('body').innerText()).toMatch(/"status":\s*401/);
  await evil.goto(`${attackerOrigin}/logout`);
  await evil.waitForURL(`${stack.baseUrl}/console/auth/logout`);
  await evil.close();

  expect((await getIntegration(stack.db, integrationId))?.enabled).toBe(true);
  // Still signed in: the cross-site sign-out carried no cookie and no token.
  await page.goto(`${stack.baseUrl}/console/`);
  await page.getByRole('heading', { level: 1, name: 'Directory Synchronization' }).waitFor();
  expect(watch.foreignRequests).toEqual([]);
});
