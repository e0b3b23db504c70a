import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, connect as tcpConnect, type AddressInfo, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { createConsoleSignInLink } from '@dirsync/db';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

// A one-time link in a real browser: one click on "Continue" signs in (the page's no-referrer
// policy makes Chromium send `Origin: null` with its form), while a page of another site that
// loads the link or posts its form signs nobody in.

let api: ApiHarness;
let assetsDir: string;
let browser: Browser;
let consoleUrl: string;
let forwarder: TcpServer;
let attacker: Server;
let attackerOrigin: string;
let accountId: string;
let attackerPage = '';

beforeAll(async () => {
  assetsDir = await mkdtemp(join(tmpdir(), 'dirsync-console-link-'));
  await mkdir(join(assetsDir, 'assets'));
  await writeFile(join(assetsDir, 'index.html'), '<!doctype html><title>dirsync console</title><h1>Console home</h1>');
  // The console's public URL must be known before the server starts: a plain TCP relay takes
  // its port now and passes every byte to the server once it listens.
  let target = 0;
  forwarder = createTcpServer((socket) => {
    const upstream = tcpConnect(target, '127.0.0.1');
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => forwarder.listen(0, '127.0.0.1', resolve));
  consoleUrl = `http://127.0.0.1:${(forwarder.address() as AddressInfo).port}`;
  api = await startApiHarness('console_link_browser', { console: { assetsDir, publicUrl: consoleUrl } });
  target = Number(new URL(api.baseUrl).port);
  accountId = await api.account('acme');
  // Another site (another host name, so cross-site): it serves whatever page the test sets.
  attacker = createHttpServer((_request, response) => {
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
  await new Promise((resolve) => (forwarder ? forwarder.close(resolve) : resolve(undefined)));
  await rm(assetsDir, { recursive: true, force: true });
});

async function sessionCookies(context: Awaited<ReturnType<Browser['newContext']>>): Promise<string[]> {
  return (await context.cookies(consoleUrl)).filter((cookie) => cookie.name === 'dirsync_session').map((cookie) => cookie.value);
}

test('a link asks before signing in; one click on Continue signs the browser in and uses the link up', async () => {
  const { token } = await createConsoleSignInLink(api.db, { accountId, role: 'operator' });
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const link = `${consoleUrl}/console/auth/link?token=${token}`;
    await page.goto(link);
    await page.getByText(/^Sign in to dirsync as operator of acme-\d+\?$/).waitFor();
    expect(await sessionCookies(context)).toEqual([]);
    const posted = page.waitForRequest((request) => request.method() === 'POST');
    await page.getByRole('button', { name: 'Continue' }).click();
    // The page's no-referrer policy hides the origin of its own form: Sec-Fetch-Site tells it.
    expect(await (await posted).allHeaders()).toMatchObject({ origin: expect.stringMatching(/^(null|http:\/\/127\.0\.0\.1:\d+)$/), 'sec-fetch-site': 'same-origin' });
    await page.getByRole('heading', { name: 'Console home' }).waitFor();
    expect(page.url()).toBe(`${consoleUrl}/console/`);
    const [cookie] = await sessionCookies(context);
    expect(cookie).toMatch(/^dcs_/);
    const session = await fetch(`${api.baseUrl}/console/auth/session`, { headers: { cookie: `dirsync_session=${cookie ?? ''}` } });
    expect(session.status).toBe(200);

    await page.goto(link);
    await page.getByText('This sign-in link is not valid any more.').waitFor();
    expect(await page.getByRole('button', { name: 'Continue' }).count()).toBe(0);
  } finally {
    await context.close();
  }
});

test('a page of another site that loads a link, frames it or posts its form signs the victim into nothing', async () => {
  const { token } = await createConsoleSignInLink(api.db, { accountId, role: 'admin' });
  const link = `${consoleUrl}/console/auth/link?token=${token}`;
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    // Loaded as an image and in a frame: the confirmation page is never framed, nothing is used.
    attackerPage = `<!doctype html><img src="${link}"><iframe id="framed" src="${link}"></iframe>`;
    const framed = page.waitForResponse((response) => response.url() === link && response.request().resourceType() === 'document');
    await page.goto(`${attackerOrigin}/load`);
    const framedAnswer = await framed;
    expect(framedAnswer.status()).toBe(200);
    expect(await framedAnswer.headerValue('content-security-policy')).toMatch(/frame-ancestors 'none'/);
    expect(await page.frames()[1]?.locator('button').count().catch(() => 0)).toBe(0);
    expect(await sessionCookies(context)).toEqual([]);

    // Its own copy of the form, posted by script: first as is (Origin: the other site), then
    // without a referrer (Origin: null, Sec-Fetch-Site: cross-site).
    for (const policy of ['strict-origin-when-cross-origin', 'no-referrer']) {
      attackerPage =
        `<!doctype html><meta name="referrer" content="${policy}"><form method="post" action="${consoleUrl}/console/auth/link">` +
        `<input type="hidden" name="token" value="${token}"></form><script>document.forms[0].submit()</script>`;
      const refused = page.waitForResponse((response) => response.url() === `${consoleUrl}/console/auth/link` && response.request().method() === 'POST');
      await page.goto(`${attackerOrigin}/post-${policy}`);
      const answer = await refused;
      expect({ policy, status: answer.status() }).toEqual({ policy, status: 403 });
      await page.getByText('This sign-in was not sent from the dirsync console, so the link was not used.').waitFor();
      expect(await sessionCookies(context)).toEqual([]);
    }

    // The link still works for the person it was made for.
    await page.goto(link);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { name: 'Console home' }).waitFor();
    expect(await sessionCookies(context)).toHaveLength(1);
  } finally {
    await context.close();
  }
});
