import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { waitFor } from '@dirsync/testkit';
import { dirsyncBin } from '../src/services.ts';
import { type CliEnvironment, type CliResult, createCliEnvironment } from './support/run-cli.ts';

// `dirsync console login` prints a one-time link; `dirsync api` serves the console and takes the
// link. Both as the platform team runs them: child processes configured by the environment.

// Each command is a new process: seconds each, more on a busy machine.
const timeoutMs = 180_000;
const consoleUrl = 'http://console.example.test:8443';

let cli: CliEnvironment;
let api: ChildProcess;
let apiOutput = '';
let baseUrl: string;

beforeAll(async () => {
  cli = await createCliEnvironment('consolelogin');
  const added = await Promise.all([cli.run(['accounts', 'add', 'acme']), cli.run(['accounts', 'add', 'globex'])]);
  expect(added.map((result) => result.code)).toEqual([0, 0]);
  api = spawn(dirsyncBin, ['api'], { env: { ...cli.env, PORT: '0', DIRSYNC_API_HOST: '127.0.0.1', DIRSYNC_CONSOLE_URL: consoleUrl }, stdio: ['ignore', 'pipe', 'pipe'] });
  api.stdout?.setEncoding('utf8').on('data', (text: string) => (apiOutput += text));
  api.stderr?.setEncoding('utf8').on('data', (text: string) => (apiOutput += text));
  const port = await waitFor(() => /"port":(\d+),"api":true/.exec(apiOutput)?.[1], { what: 'dirsync api to listen', timeoutMs: 30_000 });
  baseUrl = `http://127.0.0.1:${port}`;
}, timeoutMs);

afterAll(async () => {
  if (api && api.exitCode === null && api.signalCode === null) {
    api.kill('SIGTERM');
    await once(api, 'exit');
  }
  await cli?.cleanup();
}, timeoutMs);

/** The token of the link a `console login` printed on stdout. */
function linkOf(result: CliResult): URL {
  expect(result.code).toBe(0);
  const url = new URL(result.stdout.trim());
  expect(`${url.origin}${url.pathname}`).toBe(`${consoleUrl}/console/auth/link`);
  expect(url.searchParams.get('token')).toMatch(/^dcl_[A-Za-z0-9_-]{43}$/);
  return url;
}

test('the API logs where the console is and how one signs in', () => {
  expect(apiOutput).toContain(`"console":"${consoleUrl}/console/"`);
  expect(apiOutput).toContain('"consoleSignIn":"one-time links"');
});

test('console login prints a link that signs in once, to its account with its role', async () => {
  const result = await cli.run(['console', 'login', '--account', 'acme', '--role', 'operator', '--minutes', '5'], { env: { DIRSYNC_CONSOLE_URL: consoleUrl } });
  const link = linkOf(result);
  expect(result.stderr).toMatch(/one-time sign-in link for acme \(operator\), valid until \S+; it works once/);
  expect(result.stderr).not.toContain(link.searchParams.get('token'));

  // Opening the link asks; the page's Continue form (a same-origin POST of the token) signs in.
  const opened = await fetch(`${baseUrl}${link.pathname}${link.search}`, { redirect: 'manual' });
  expect(opened.status).toBe(200);
  expect(await opened.text()).toMatch(/Sign in to dirsync as operator of acme\?/);
  const use = () =>
    fetch(`${baseUrl}${link.pathname}`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: consoleUrl },
      body: new URLSearchParams({ token: link.searchParams.get('token') ?? '' }).toString(),
    });
  const first = await use();
  expect(first.status).toBe(303);
  const cookie = first.headers.getSetCookie().find((header) => header.startsWith('dirsync_session='));
  expect(cookie).toMatch(/HttpOnly/);
  const session = await fetch(`${baseUrl}/console/auth/session`, { headers: { cookie: cookie?.split(';')[0] ?? '' } });
  expect(await session.json()).toMatchObject({ accounts: [{ name: 'acme', role: 'operator' }], platform: null });

  const again = await use();
  expect(again.status).toBe(410);
  // The link is a credential: the API never logged it.
  expect(apiOutput).not.toContain(link.searchParams.get('token'));
}, timeoutMs);

test('the role defaults to admin and the URL to localhost on PORT', async () => {
  const [result, withPort] = await Promise.all([cli.run(['console', 'login', '--account', 'globex']), cli.run(['console', 'login', '--account', 'globex'], { env: { PORT: '9123' } })]);
  const url = new URL(result.stdout.trim());
  expect(url.origin).toBe('http://localhost:8080');
  expect(result.stderr).toMatch(/for globex \(admin\)/);
  expect(new URL(withPort.stdout.trim()).origin).toBe('http://localhost:9123');
}, timeoutMs);

test('mistakes are refused in words', async () => {
  const cases = [
    [['--account', 'nosuch'], /no account "nosuch"/],
    [['--account', 'acme', '--role', 'owner'], /unknown role "owner": use viewer, operator, admin/],
    [['--account', 'acme', '--minutes', '0'], /--minutes must be a whole number from 1 to 1440/],
    [['--account', 'acme', '--minutes', 'soon'], /--minutes must be a whole number/],
  ] as const;
  // Independent processes: run side by side.
  const [missing, ...results] = await Promise.all([cli.run(['console', 'login']), ...cases.map(([args]) => cli.run(['console', 'login', ...args]))]);
  for (const [index, [, message]] of cases.entries()) {
    const result = results[index]!;
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/^\s+at /m);
  }
  expect(missing?.code).not.toBe(0);
  expect(missing?.stderr).toMatch(/--account <account>/);
}, timeoutMs);

test('the API serves the built console under /console with its CSP', async () => {
  const page = await fetch(`${baseUrl}/console/integrations/anything`);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-security-policy')).toMatch(/^default-src 'self'.*frame-ancestors 'none'/);
  const html = await page.text();
  const script = /<script[^>]+src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  expect(script).toBeDefined();
  const asset = await fetch(`${baseUrl}${script ?? ''}`);
  expect(asset.status).toBe(200);
  expect(asset.headers.get('content-type')).toMatch(/javascript/);
}, timeoutMs);

test('the OpenID Connect settings are checked together before anything starts', async () => {
  const result = await cli.run(['console', 'login', '--account', 'acme'], {
    env: { DIRSYNC_OIDC_ISSUER: 'http://idp.example.com', DIRSYNC_OIDC_CLIENT_SECRET: 'x', DIRSYNC_CONSOLE_SESSION_HOURS: '0' },
  });
  expect(result.code).not.toBe(0);
  expect(result.stderr).toContain('DIRSYNC_OIDC_ISSUER is set without DIRSYNC_OIDC_CLIENT_ID');
  expect(result.stderr).toContain('DIRSYNC_CONSOLE_SESSION_HOURS must be 0.25–720');
}, timeoutMs);
