import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { close, connect, generateSecretKey } from '@dirsync/db';
import { createTestDatabase, createTestQueuePrefix, launcherEnv, testRedisUrl, waitFor, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import type { Browser } from 'playwright-core';
import { checkPage, dirsyncBin, freePort, launchBrowser, openContext, signInWithLink } from './harness.ts';

// `dirsync demo --console` as a person runs it: a process that starts the directories, the API
// with the console, a scheduler and a worker, prints the console's URL and a sign-in link, and
// stops everything on Ctrl-C.

const timeoutMs = 240_000;

let database: TestDatabase;
let prefix: TestQueuePrefix;
let browser: Browser;
let demo: ChildProcess | undefined;
let output = '';

beforeAll(async () => {
  [database, browser] = await Promise.all([createTestDatabase('console_demo'), launchBrowser()]);
  prefix = createTestQueuePrefix('console-demo');
}, timeoutMs);

afterAll(async () => {
  if (demo && demo.exitCode === null && demo.signalCode === null) {
    const closed = once(demo, 'close');
    demo.kill('SIGINT');
    const timer = setTimeout(() => demo?.kill('SIGKILL'), 60_000);
    await closed;
    clearTimeout(timer);
  }
  await browser?.close();
  await prefix?.cleanup();
  await database?.drop();
}, timeoutMs);

test('demo --console prints the console and a sign-in link that opens the three integrations, and stops on Ctrl-C', async () => {
  const port = await freePort();
  const child = spawn(dirsyncBin, ['demo', '--console', '--port', String(port), '--users', '40', '--groups', '3', '--members', '5'], {
    env: {
      ...launcherEnv(),
      DATABASE_URL: database.url,
      REDIS_URL: testRedisUrl,
      DIRSYNC_QUEUE_PREFIX: prefix.prefix,
      DIRSYNC_SECRET_KEY: generateSecretKey(),
      DIRSYNC_API_HOST: '127.0.0.1',
      DIRSYNC_METRICS_PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  demo = child;
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (output += text));
  const closed = once(child, 'close');

  const link = await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`the demo exited (${child.exitCode}): ${output}`);
      return /^sign in: (\S+)$/m.exec(output)?.[1];
    },
    { timeoutMs: 180_000, intervalMs: 200, what: 'the demo to print its sign-in link' },
  );
  const consoleUrl = `http://127.0.0.1:${port}`;
  // The demo keeps its data in a database of its own, not in DATABASE_URL's.
  const runDatabase = /^database (\S+) and queue prefix \S+: made for this run/m.exec(output)?.[1];
  expect(runDatabase).toMatch(/^dirsync_demo_[0-9a-f]+$/);
  expect(output).toContain(`console: ${consoleUrl}/console/`);
  expect(new URL(link).pathname).toBe('/console/auth/link');
  expect(output).toMatch(/Active Directory: ldaps:\/\//);
  expect(output).toMatch(/"Fabrikam" is a legacy Entra ID integration .* before \d{4}-\d{2}-\d{2}/);

  const { context, watch } = await openContext(browser, consoleUrl);
  const page = await context.newPage();
  await signInWithLink(page, link, 'demo');
  for (const name of ['Demo directory', 'Head office', 'Fabrikam']) await page.getByRole('link', { name, exact: true }).waitFor();
  await expect(page.getByRole('table').getByRole('row').count()).resolves.toBe(4);
  await page.getByRole('button', { name: /^Actions needed \([1-9]\d*\)$/ }).waitFor();
  // The scheduler's first sync of the LDAP directory, as the list shows it once read again.
  const ldapRow = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'Demo directory', exact: true }) });
  await waitFor(
    async () => {
      await page.reload();
      await ldapRow.waitFor();
      return (await ldapRow.textContent())?.includes('Succeeded');
    },
    { timeoutMs: 90_000, intervalMs: 1_000, what: 'the first sync of the demo directory' },
  );
  await checkPage(page, 'demo', 'directory-sync');
  // The legacy integration waits for its migration, with the deadline.
  await page.getByRole('button', { name: /^Actions needed/ }).click();
  const prompt = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'Migrate to a connector: Fabrikam' }) });
  await prompt.getByText(/^Migration deadline: \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$/).waitFor();
  await prompt.getByRole('link', { name: 'Migrate now' }).waitFor();
  await checkPage(page, 'demo', 'actions-needed');
  expect(watch.foreignRequests).toEqual([]);
  await context.close();

  child.kill('SIGINT');
  const [code] = (await closed) as [number | null];
  expect(code).toBe(0);
  expect(output).toMatch(/SIGINT: stopping the demo/);
  expect(output.trimEnd().endsWith('demo stopped')).toBe(true);
  // Everything the demo started has stopped: the console no longer answers.
  await expect(fetch(`${consoleUrl}/healthz`)).rejects.toThrow();
  // And its database is gone.
  const db = connect(database.url, { max: 1 });
  try {
    await expect(db.$client`select 1 from pg_database where datname = ${runDatabase ?? ''}`).resolves.toHaveLength(0);
  } finally {
    await close(db);
  }
}, timeoutMs);
