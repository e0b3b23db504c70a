import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { close, connect, createAccount, createConsoleSignInLink, type Db, generateSecretKey, getAccount, listRuns, type Run } from '@dirsync/db';
import {
  createTestDatabase,
  createTestQueuePrefix,
  launcherEnv,
  type OidcTestUser,
  startOidcProvider,
  testAllowedNetworksSetting,
  type TestOidcProvider,
  testRedisUrl,
  waitFor,
  type TestDatabase,
  type TestQueuePrefix,
} from '@dirsync/testkit';

// The console as deployed: `bin/dirsync api`, `worker` and `scheduler` as child processes on a
// database and queue prefix of their own, and headless Chromium on the pages. Each test file
// starts one stack and shares it between its tests.

/** The repository's `bin/dirsync` launcher. */
export const dirsyncBin = fileURLToPath(new URL('../../../bin/dirsync', import.meta.url));

/** Where every page's screenshots go (test artifacts, not committed). */
export const screenshotDir = fileURLToPath(new URL('../../../.tmp/console-screenshots/', import.meta.url));

/** The two sizes every page is looked at: a laptop and a phone. */
export const viewports = {
  laptop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
} as const;

const axeSource = readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** A free TCP port on loopback (taken back at once: the child process binds it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A `dirsync` child process. */
export interface Service {
  readonly child: ChildProcess;
  /** What it printed so far (stdout and stderr). */
  output(): string;
  /** SIGTERM (or `signal`) and wait: the exit code, null when a signal ended it. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `bin/dirsync <args>` with exactly `env` and waits until its output contains `ready`
 * (a log message or a printed line).
 */
export async function startDirsync(args: readonly string[], env: Readonly<Record<string, string>>, ready: string | RegExp, timeoutMs = 120_000): Promise<Service> {
  const child = spawn(dirsyncBin, args, { env: { ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (output += text));
  const closed = once(child, 'close');
  closed.catch(() => {});
  const service: Service = {
    child,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await closed;
      return child.exitCode;
    },
  };
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`dirsync ${args.join(' ')} exited (${child.exitCode}): ${output}`);
        return typeof ready === 'string' ? output.includes(ready) : ready.test(output);
      },
      { timeoutMs, what: `dirsync ${args.join(' ')} to start` },
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return service;
}

/** What one `dirsync` command did. */
export interface CommandResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `bin/dirsync <args>` to its end with exactly `env`. */
export async function runDirsync(args: readonly string[], env: Readonly<Record<string, string>>, input = ''): Promise<CommandResult> {
  const child = spawn(dirsyncBin, args, { env: { ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  child.stdin.on('error', () => {});
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@link startConsoleStack}. */
export interface ConsoleStackOptions {
  /** Names the database and queue prefix. */
  readonly label: string;
  /** Settings every process gets on top of the stack's own (the console's sign-in, for one). */
  readonly env?: Readonly<Record<string, string>>;
  /** Settings of the API process only. */
  readonly apiEnv?: Readonly<Record<string, string>>;
  /** Start a scheduler too (default true). */
  readonly scheduler?: boolean;
  /**
   * Users of a test OpenID Connect provider the console signs in through (user name → claims);
   * absent: no provider, the console offers one-time links only.
   */
  readonly oidcUsers?: Readonly<Record<string, OidcTestUser>>;
}

/** The console's client at the test identity provider. */
export const oidcClientId = 'dirsync-console';

/** The API with its console, a worker and a scheduler, on a database and queues of their own. */
export interface ConsoleStack {
  /** `http://127.0.0.1:<port>`: the API and, under /console/, the console (DIRSYNC_CONSOLE_URL). */
  readonly baseUrl: string;
  /** The test identity provider, when the stack has one. */
  readonly oidc: TestOidcProvider | undefined;
  /** The environment the processes were started with. */
  readonly env: Readonly<Record<string, string>>;
  readonly database: TestDatabase;
  readonly prefix: TestQueuePrefix;
  /** A connection to the stack's database, for setting up accounts and checking what is stored. */
  readonly db: Db;
  readonly api: Service;
  readonly worker: Service;
  readonly scheduler: Service | undefined;
  /** Creates an account and returns its id. */
  account(name: string): Promise<string>;
  /** Runs `dirsync <args>` in the stack's environment. */
  run(args: readonly string[], input?: string): Promise<CommandResult>;
  /**
   * A one-time sign-in link for an account, as `dirsync console login --account <account> --role
   * <role>` prints it (made through the database: a process start saved per test file).
   */
  signInLink(account: string, role?: 'viewer' | 'operator' | 'admin'): Promise<string>;
  /** Everything the processes logged so far. */
  logs(): string;
  stop(): Promise<void>;
}

/** Starts the API (with the console), a worker and a scheduler for one test file. */
export async function startConsoleStack(options: ConsoleStackOptions): Promise<ConsoleStack> {
  const database = await createTestDatabase(options.label);
  const prefix = createTestQueuePrefix(options.label);
  const db = connect(database.url, { max: 2 });
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const oidc = options.oidcUsers === undefined
    ? undefined
    : await startOidcProvider({ clients: [{ clientId: oidcClientId, redirectUris: [`${baseUrl}/console/auth/callback`] }], users: options.oidcUsers });
  const env: Record<string, string> = {
    ...launcherEnv(),
    DATABASE_URL: database.url,
    REDIS_URL: testRedisUrl,
    DIRSYNC_QUEUE_PREFIX: prefix.prefix,
    DIRSYNC_SECRET_KEY: generateSecretKey(),
    DIRSYNC_API_HOST: '127.0.0.1',
    // Test files run side by side: no process may claim a fixed port.
    PORT: '0',
    DIRSYNC_METRICS_PORT: '0',
    DIRSYNC_SCHEDULER_API: 'false',
    DIRSYNC_SCHEDULER_TICK: '*/2 * * * * *',
    DIRSYNC_SCHEDULER_JITTER_MAX_SECONDS: '0',
    DIRSYNC_RECONCILE_SECONDS: '2',
    DIRSYNC_CONTROL_TIMEOUT_SECONDS: '30',
    // Every test directory (slapd, Samba, the Entra emulator) listens on loopback.
    DIRSYNC_ALLOWED_NETWORKS: testAllowedNetworksSetting,
    DIRSYNC_CONSENT_PROPAGATION_WAIT_SECONDS: '2',
    DIRSYNC_CONSOLE_URL: baseUrl,
    ...(oidc === undefined ? {} : { DIRSYNC_OIDC_ISSUER: oidc.issuer, DIRSYNC_OIDC_CLIENT_ID: oidcClientId }),
    LOG_LEVEL: 'info',
    ...options.env,
  };
  const services: Service[] = [];
  const stopAll = async () => {
    for (const service of services.reverse()) await service.stop().catch(() => null);
    await oidc?.close();
  };
  try {
    const [api, worker, scheduler] = await Promise.all([
      startDirsync(['api'], { ...env, PORT: String(port), ...options.apiEnv }, '"api started"'),
      startDirsync(['worker'], { ...env, DIRSYNC_WORKER_ID: `${options.label}-worker` }, '"worker started"'),
      options.scheduler === false ? Promise.resolve(undefined) : startDirsync(['scheduler'], env, '"scheduler started"'),
    ]);
    services.push(api, worker, ...(scheduler ? [scheduler] : []));
    return {
      baseUrl,
      oidc,
      env,
      database,
      prefix,
      db,
      api,
      worker,
      scheduler,
      async account(name) {
        return (await createAccount(db, { name })).id;
      },
      run: (args, input) => runDirsync(args, env, input),
      async signInLink(account, role = 'admin') {
        const found = await getAccount(db, account);
        if (!found) throw new Error(`no account "${account}"`);
        const { token } = await createConsoleSignInLink(db, { accountId: found.id, role, ttlMs: 10 * 60_000, createdBy: 'test' });
        return `${baseUrl}/console/auth/link?token=${encodeURIComponent(token)}`;
      },
      logs: () => services.map((s) => s.output()).join('\n'),
      async stop() {
        await stopAll();
        await close(db);
        await prefix.cleanup();
        await database.drop();
      },
    };
  } catch (error) {
    await stopAll();
    await close(db);
    await prefix.cleanup();
    await database.drop();
    throw error;
  }
}

/**
 * A run of `integrationId` once it has ended: its first run (no `seen`), or else the oldest full
 * sync not in `seen`, which is the one a "Sync All" (or a new password) asked for. The scheduler
 * of a console stack ticks every 2 s and queues deltas on the clock; those are not it, and a full
 * request that a waiting scheduled delta absorbed is that run, now full.
 */
export async function finishedRun(db: Db, integrationId: string, seen?: readonly string[]): Promise<Run> {
  let runs: Run[] = [];
  try {
    return await waitFor(
      async () => {
        runs = await listRuns(db, { integrationId });
        const run = seen === undefined ? runs.at(-1) : runs.findLast((r) => r.modeRequested === 'full' && !seen.includes(r.id));
        return run && ['succeeded', 'failed', 'blocked', 'dry_run'].includes(run.status) ? run : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: seen === undefined ? 'the first run to end' : 'a requested run to end' },
    );
  } catch (error) {
    const described = runs.map((r) => `${r.id} ${r.trigger} ${r.modeRequested}/${r.mode ?? '-'} ${r.status}${seen?.includes(r.id) ? ' (seen)' : ''}`).join('\n');
    throw new Error(`${error instanceof Error ? error.message : String(error)}; the latest runs:\n${described}`);
  }
}

/** Headless Chromium (Debian's), as the dashboard test starts it. */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** What a page did that the console must never do. */
export interface PageWatch {
  /** Requests (other than top-level navigations) to any origin but the console's. */
  readonly foreignRequests: string[];
  /** Messages the browser logged about the page's Content Security Policy, and page errors. */
  readonly errors: string[];
}

/**
 * A browser context at laptop size whose pages are watched for requests leaving the console's
 * origin and for errors. `ignoreHTTPSErrors`: the Entra emulator's consent pages have their own CA.
 */
export async function openContext(browser: Browser, baseUrl: string): Promise<{ context: BrowserContext; watch: PageWatch }> {
  const context = await browser.newContext({ viewport: viewports.laptop, ignoreHTTPSErrors: true });
  const origin = new URL(baseUrl).origin;
  const watch: PageWatch = { foreignRequests: [], errors: [] };
  context.on('request', (request) => {
    const url = new URL(request.url());
    if (url.protocol === 'data:' || url.protocol === 'blob:') return;
    if (url.origin !== origin && !(request.isNavigationRequest() && request.frame() === request.frame().page().mainFrame())) {
      watch.foreignRequests.push(request.url());
    }
  });
  context.on('page', (page) => {
    page.on('console', (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) watch.errors.push(message.text());
    });
    page.on('pageerror', (error) => watch.errors.push(error.message));
  });
  return { context, watch };
}

/**
 * The little of a page's DOM the tests read inside the browser (`page.evaluate`): the tests
 * compile without the DOM library, whose crypto types clash with Node's.
 */
export interface PageElement {
  getAttribute(name: string): string | null;
  readonly textContent: string | null;
  readonly labels?: ArrayLike<{ readonly textContent: string | null }> | null;
}

/** The page's `document`, as {@link PageElement} describes its elements. */
export interface PageDocument {
  readonly activeElement: PageElement | null;
  readonly body: PageElement | null;
  readonly cookie: string;
  getElementById(id: string): PageElement | null;
}

/** An axe-core violation, as the check reports it. */
export interface AxeViolation {
  readonly id: string;
  readonly impact: string | null;
  readonly help: string;
  readonly targets: string[];
}

/**
 * Runs axe-core on the page as it is now. axe is evaluated through the DevTools protocol, which
 * the page's CSP does not govern: the console's own policy stays in force for its scripts.
 */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  const source = await axeSource;
  const present = await page.evaluate(() => typeof (globalThis as { axe?: unknown }).axe === 'object');
  if (!present) await page.evaluate(source);
  return page.evaluate(async () => {
    const page = globalThis as unknown as {
      document: unknown;
      axe: { run(context: unknown, options: object): Promise<{ violations: { id: string; impact?: string | null; help: string; nodes: { target: unknown[] }[] }[] }> };
    };
    const result = await page.axe.run(page.document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact ?? null, help: v.help, targets: v.nodes.map((n) => n.target.map(String).join(' ')) }));
  });
}

/** Saves `<test>-<page>.png` at laptop size and `<test>-<page>-phone.png` at phone size. */
export async function screenshots(page: Page, test: string, name: string): Promise<void> {
  await mkdir(screenshotDir, { recursive: true });
  const file = `${test}-${name}`.replace(/[^A-Za-z0-9_.-]+/g, '-');
  const before = page.viewportSize() ?? viewports.laptop;
  await page.setViewportSize(viewports.laptop);
  await page.screenshot({ path: join(screenshotDir, `${file}.png`) });
  await page.setViewportSize(viewports.phone);
  await page.screenshot({ path: join(screenshotDir, `${file}-phone.png`), fullPage: true });
  // Usable at phone width: nothing makes the page scroll sideways (long DNs, thumbprints and
  // tables must wrap or stack).
  const sideways = await page.evaluate(() => {
    interface Box { tagName: string; className: string; textContent: string | null; getBoundingClientRect(): { right: number } }
    const doc = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number }; querySelectorAll(s: string): Iterable<Box> } }).document;
    const width = doc.documentElement.clientWidth;
    // The innermost elements reaching past the edge, named so a failure says what to fix.
    const past = [...doc.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > width + 0.5);
    const named = past.slice(-3).map((e) => `${e.tagName.toLowerCase()}.${e.className} "${(e.textContent ?? '').slice(0, 40)}"`);
    return { px: Math.max(0, doc.documentElement.scrollWidth - width), elements: doc.documentElement.scrollWidth > width ? named : [] };
  });
  await page.setViewportSize(before);
  expect({ page: `${test}/${name}`, sidewaysScrollAtPhoneWidth: sideways }).toEqual({ page: `${test}/${name}`, sidewaysScrollAtPhoneWidth: { px: 0, elements: [] } });
}

/**
 * Looks at the page as every test must: no accessibility violation of impact serious or critical
 * (axe-core), and screenshots at both sizes. Returns the violations of lesser impact, which a
 * test may report but does not fail on.
 */
export async function checkPage(page: Page, test: string, name: string): Promise<AxeViolation[]> {
  const violations = await axeViolations(page);
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  await screenshots(page, test, name);
  expect({ page: `${test}/${name}`, violations: serious }).toEqual({ page: `${test}/${name}`, violations: [] });
  return violations.filter((v) => !serious.includes(v));
}

/**
 * Runs the wizard's Test Connection step as a person does and waits for it to pass: every line
 * of the checklist must read ok. Returns the lines for the test's own checks.
 */
export async function passTestConnection(page: Page): Promise<string[]> {
  await page.getByRole('button', { name: 'Test Connection' }).click();
  const checklist = page.getByRole('list', { name: 'Test Connection checklist' });
  await checklist.waitFor({ timeout: 45_000 });
  await page.getByText('Test Connection passed.').waitFor();
  const checks = await checklist.getByRole('listitem').allTextContents();
  expect(checks.length).toBeGreaterThanOrEqual(1);
  for (const line of checks) expect(line).toMatch(/: ok/);
  return checks;
}

/**
 * Signs in through the test identity provider as a person does: "Sign in" on the console's
 * signed-out page, the user name typed into the provider's form, and back to the console.
 */
export async function signInThroughProvider(page: Page, baseUrl: string, user: string, test: string): Promise<void> {
  await page.goto(`${baseUrl}/console/`);
  await page.getByRole('link', { name: 'Sign in' }).waitFor();
  await checkPage(page, test, 'signed-out');
  await page.getByRole('link', { name: 'Sign in' }).click();
  await page.getByLabel('User name').fill(user);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Directory Synchronization' }).waitFor();
}

/**
 * Opens a one-time sign-in link, checks its confirmation page (as `<test>-sign-in-link`), confirms
 * it with "Continue" and waits for the console's main page.
 */
export async function signInWithLink(page: Page, link: string, test: string): Promise<void> {
  await page.goto(link);
  await page.getByRole('button', { name: 'Continue' }).waitFor();
  await checkPage(page, test, 'sign-in-link');
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('heading', { level: 1, name: 'Directory Synchronization' }).waitFor();
}
