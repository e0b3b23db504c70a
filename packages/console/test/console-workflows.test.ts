import { createIntegration, createKeyRing, listRuns } from '@dirsync/db';
import { startSlapd, userDn, type SlapdServer } from '@dirsync/testkit';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import {
  checkPage,
  finishedRun,
  type ConsoleStack,
  launchBrowser,
  openContext,
  type PageDocument,
  type PageWatch,
  passTestConnection,
  signInThroughProvider,
  startConsoleStack,
} from './harness.ts';

// The seed workflows of the Directory Synchronization page in a browser, against real processes
// (`dirsync api` with the console, a worker, a scheduler), a real slapd and a test OpenID Connect
// provider: sign-in, the New integration wizard to the first sync, approving deletions blocked by
// the threshold, account isolation, and the keyboard.

const timeoutMs = 240_000;
const name = 'Corp LDAP';
const users = 30;
const groups = 3;
const objects = users + groups;

let stack: ConsoleStack;
let slapd: SlapdServer;
let browser: Browser;
let admin: { context: BrowserContext; watch: PageWatch; page: Page };
let acmeId: string;
let globexId: string;
let globexIntegrationId: string;

beforeAll(async () => {
  [stack, slapd, browser] = await Promise.all([
    startConsoleStack({
      label: 'console_workflows',
      oidcUsers: {
        ada: { name: 'Ada Admin', email: 'ada@acme.example', roles: ['acme:admin'] },
        otto: { name: 'Otto Operator', roles: 'acme:operator' },
        nobody: { name: 'No Role', roles: ['initech:admin'] },
      },
    }),
    startSlapd({ tls: true, data: { users, groups, membersPerGroup: 5 } }),
    launchBrowser(),
  ]);
  acmeId = await stack.account('acme');
  globexId = await stack.account('globex');
  // Account B's integration, created as its own administrators would; the scheduler syncs it.
  const ring = createKeyRing({ current: stack.env['DIRSYNC_SECRET_KEY'] ?? '' });
  const globex = await createIntegration(
    stack.db,
    {
      accountId: globexId,
      kind: 'ldap',
      name: 'Globex HQ',
      settings: {
        url: slapd.url,
        bindDn: slapd.readerDn,
        tls: { mode: 'starttls', caPem: slapd.tls?.caPem ?? '' },
        users: { baseDns: [`ou=people,${slapd.suffix}`] },
        groups: { baseDns: [`ou=groups,${slapd.suffix}`] },
      },
    },
    { ring, plaintext: slapd.readerPassword },
  );
  globexIntegrationId = globex.id;
  const opened = await openContext(browser, stack.baseUrl);
  admin = { ...opened, page: await opened.context.newPage() };
}, timeoutMs);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  await slapd?.stop();
}, timeoutMs);

/** What the focused element is called: its aria-label, its label, or its text. */
async function focusedName(page: Page): Promise<string> {
  return page.evaluate(() => {
    // Serialised into the page: the document is the page's own.
    const doc = (globalThis as unknown as { document: PageDocument }).document;
    const el = doc.activeElement;
    if (!el || el === doc.body) return '';
    const labelled = el.getAttribute('aria-label');
    if (labelled) return labelled;
    const label = el.labels?.[0]?.textContent;
    return (label ?? el.textContent ?? '').trim();
  });
}

/** Presses Tab (Shift+Tab with `back`) until the focused element's name matches; fails after `max`. */
async function tabTo(page: Page, wanted: RegExp, max = 60, back = false): Promise<void> {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
    if (wanted.test(await focusedName(page))) return;
  }
  throw new Error(`no element named ${String(wanted)} within ${max} presses of Tab`);
}

const progress = (page: Page) => page.getByRole('status', { name: 'Sync progress' });

test('signing in through the OpenID Connect provider lands on Directory Synchronization with a session cookie the page cannot read', async () => {
  const { page, context } = admin;
  await signInThroughProvider(page, stack.baseUrl, 'ada', 'signin');
  expect(page.url()).toBe(`${stack.baseUrl}/console/`);
  await expect(page.getByText('Ada Admin').count()).resolves.toBe(1);
  await page.getByText('No integrations yet.').waitFor();
  await checkPage(page, 'signin', 'directory-sync-empty');
  const [cookie] = (await context.cookies()).filter((c) => c.name === 'dirsync_session');
  expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
  expect(await page.evaluate(() => (globalThis as unknown as { document: PageDocument }).document.cookie)).not.toContain('dirsync_session');

  // An identity whose roles name no account of this installation gets no session.
  const { context: other } = await openContext(browser, stack.baseUrl);
  try {
    const stranger = await other.newPage();
    await stranger.goto(`${stack.baseUrl}/console/`);
    await stranger.getByRole('link', { name: 'Sign in' }).click();
    await stranger.getByLabel('User name').fill('nobody');
    await stranger.getByRole('button', { name: 'Sign in' }).click();
    await stranger.getByText(/no dirsync role/i).first().waitFor();
    await checkPage(stranger, 'signin', 'no-role');
    expect((await other.cookies()).filter((c) => c.name === 'dirsync_session')).toEqual([]);
  } finally {
    await other.close();
  }
}, timeoutMs);

test('the New integration wizard creates an LDAP integration, Test Connection passes, and the first sync finishes with its counts shown', async () => {
  const { page } = admin;
  await page.getByRole('link', { name: 'New integration' }).click();
  await page.getByRole('heading', { level: 1, name: 'New integration' }).waitFor();
  await checkPage(page, 'wizard', 'directory-type');
  await page.getByRole('radio', { name: 'LDAP' }).check();
  await page.getByRole('button', { name: 'Next' }).click();

  // Nothing filled in: the errors are shown next to their fields.
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('alert').filter({ hasText: 'The integration was not created' }).waitFor();
  const nameField = page.getByLabel('Name', { exact: true });
  const describedBy = (await nameField.getAttribute('aria-describedby')) ?? '';
  expect(describedBy).not.toBe('');
  const nameErrors = await page.evaluate(
    (ids) => ids.split(' ').map((id) => (globalThis as unknown as { document: PageDocument }).document.getElementById(id)?.textContent ?? '').join(' '),
    describedBy,
  );
  expect(nameErrors).toMatch(/Enter a name/);
  await checkPage(page, 'wizard', 'field-errors');

  await nameField.fill(name);
  await page.getByLabel('Server URL').fill(slapd.url);
  await page.getByLabel('User Distinguished Name').fill(slapd.readerDn);
  await page.getByLabel('Users base DNs').fill(`ou=people,${slapd.suffix}`);
  await page.getByLabel('Groups base DNs').fill(`ou=groups,${slapd.suffix}`);
  await page.getByLabel('TLS mode').selectOption('starttls');
  await page.getByLabel('CA certificate (PEM)').fill(slapd.tls?.caPem ?? '');
  await page.getByLabel('Password', { exact: true }).fill(slapd.readerPassword);
  await checkPage(page, 'wizard', 'settings');
  await page.getByRole('button', { name: 'Next' }).click();

  await page.getByRole('heading', { level: 2, name: 'Test Connection' }).waitFor();
  await expect(page.getByRole('button', { name: 'Start first sync' }).isDisabled()).resolves.toBe(true);
  const checks = await passTestConnection(page);
  expect(checks.length).toBeGreaterThanOrEqual(3);
  expect(checks.join('\n')).toMatch(/bind: ok/);
  await checkPage(page, 'wizard', 'test-connection');

  await page.getByRole('button', { name: 'Start first sync' }).click();
  await page.getByRole('heading', { level: 1, name: 'Directory Synchronization' }).waitFor();
  await progress(page).getByText(new RegExp(`First sync of ${name}: Succeeded — ${objects} created in`)).waitFor({ timeout: 60_000 });
  const row = page.getByRole('row').filter({ has: page.getByRole('link', { name }) });
  await row.getByRole('cell', { name: /Sync (All|changes) ·/ }).waitFor();
  await checkPage(page, 'wizard', 'first-sync');

  // What the page says is what PostgreSQL holds.
  const [integration] = await stack.db.$client<{ id: string; enabled: boolean; account_id: string }[]>`select id, enabled, account_id from integrations where name = ${name}`;
  expect(integration).toMatchObject({ enabled: true, account_id: acmeId });
  const run = await finishedRun(stack.db, integration?.id ?? '');
  expect(run).toMatchObject({ status: 'succeeded', mode: 'full', created: objects, deleted: 0 });
  // Enabled and synced in one request: the scheduler (ticking every 2 s) queued no full of its own.
  const fulls = (await listRuns(stack.db, { integrationId: integration?.id ?? '' })).filter((r) => r.modeRequested === 'full');
  expect(fulls.map((r) => [r.id, r.trigger])).toEqual([[run.id, 'api']]);
}, timeoutMs);

test('deletions over the threshold block the run; Approve deletions lets the next Sync All make them', async () => {
  const { page } = admin;
  const [integration] = await stack.db.$client<{ id: string }[]>`select id from integrations where name = ${name}`;
  const integrationId = integration?.id ?? '';
  const seen = (await listRuns(stack.db, { integrationId, limit: 50 })).map((r) => r.id);
  const client = await slapd.client();
  const deleted = 10;
  try {
    for (let i = 0; i < deleted; i++) await client.del(userDn(i, slapd.suffix));
  } finally {
    await client.unbind();
  }

  await page.getByRole('button', { name: `Sync All: ${name}` }).click();
  await progress(page).getByText(new RegExp(`Sync All of ${name}: Blocked: deletions need approval — ${deleted} would be deleted`)).waitFor({ timeout: 60_000 });
  const blocked = await finishedRun(stack.db, integrationId, seen);
  expect(blocked).toMatchObject({ status: 'blocked', wouldDelete: deleted, deleted: 0 });

  await page.getByRole('button', { name: /^Actions needed \([1-9]\d*\)$/ }).click();
  await page.getByRole('heading', { level: 1, name: 'Actions needed' }).waitFor();
  await page.getByRole('heading', { name: `Deletions waiting for approval: ${name}` }).waitFor();
  await checkPage(page, 'approve', 'actions-needed');
  await page.getByRole('link', { name: `View the run of ${name}` }).click();
  await page.getByRole('heading', { level: 1, name: new RegExp(`^Run of ${name}`) }).waitFor();
  await page.getByRole('heading', { level: 2, name: 'Deletions waiting for approval' }).waitFor();
  await checkPage(page, 'approve', 'blocked-run');

  await page.getByRole('button', { name: 'Approve deletions' }).click();
  await page.getByText(/Deletions approved.*: the next Sync All may delete them/).waitFor();
  await page.getByRole('button', { name: 'Sync All now' }).click();
  await page.getByRole('status', { name: 'Sync progress' }).getByText(new RegExp(`Sync All of ${name}: Succeeded — .*${deleted} deleted`)).waitFor({ timeout: 60_000 });
  const approved = await finishedRun(stack.db, integrationId, [...seen, blocked.id]);
  expect(approved).toMatchObject({ status: 'succeeded', deleted });

  await page.getByRole('link', { name: 'View run' }).click();
  await page.getByRole('heading', { level: 1, name: new RegExp(`^Run of ${name}`) }).waitFor();
  const deletedItems = page.getByRole('list', { name: 'Deleted' }).getByRole('listitem');
  await deletedItems.nth(deleted - 1).waitFor();
  await expect(deletedItems.count()).resolves.toBe(deleted);
  await checkPage(page, 'approve', 'run-with-deletions');
  await page.getByRole('button', { name: /^Actions needed/ }).click();
  await page.getByRole('heading', { level: 1, name: 'Actions needed' }).waitFor();
  await expect(page.getByRole('heading', { name: `Deletions waiting for approval: ${name}` }).count()).resolves.toBe(0);
}, timeoutMs);

test("an operator of account A never sees account B's integrations or runs, and cannot act on B from the page", async () => {
  const globexRun = await finishedRun(stack.db, globexIntegrationId);
  const { context, watch } = await openContext(browser, stack.baseUrl);
  try {
    const page = await context.newPage();
    await signInThroughProvider(page, stack.baseUrl, 'otto', 'isolation');
    await page.getByRole('link', { name }).waitFor();
    await expect(page.getByText('Globex HQ').count()).resolves.toBe(0);
    // An operator syncs but does not administer: no New integration; one account, no switcher.
    await page.getByRole('button', { name: `Sync All: ${name}` }).waitFor();
    await expect(page.getByRole('link', { name: 'New integration' }).count()).resolves.toBe(0);
    await expect(page.getByRole('combobox', { name: 'Account' }).count()).resolves.toBe(0);
    await checkPage(page, 'isolation', 'operator-directory-sync');

    await page.goto(`${stack.baseUrl}/console/integrations/${globexIntegrationId}`);
    await page.getByRole('heading', { level: 1, name: 'Integration not found' }).waitFor();
    await expect(page.getByText('Globex HQ').count()).resolves.toBe(0);
    await checkPage(page, 'isolation', 'other-integration');
    await page.goto(`${stack.baseUrl}/console/runs/${globexRun.id}`);
    await page.getByRole('heading', { level: 1, name: 'Run not found' }).waitFor();
    await checkPage(page, 'isolation', 'other-run');

    // The page's own session, with B's account id forced into the header: refused by the API.
    const forced = await page.evaluate(async (account) => {
      const response = await fetch('/v1/integrations', { headers: { 'X-Dirsync-Account': account }, credentials: 'same-origin' });
      return { status: response.status, body: await response.text() };
    }, globexId);
    expect(forced.status).toBe(403);
    expect(forced.body).not.toContain('Globex HQ');
    const direct = await page.evaluate(async (id) => (await fetch(`/v1/integrations/${id}`, { credentials: 'same-origin' })).status, globexIntegrationId);
    expect(direct).toBe(404);
    expect(watch.foreignRequests).toEqual([]);
  } finally {
    await context.close();
  }
}, timeoutMs);

test('keyboard only: Tab and Enter reach Sync All and the password form (a wrong password refused in words, then the right one stored)', async () => {
  const { page } = admin;
  const [integration] = await stack.db.$client<{ id: string; secret_ciphertext: string }[]>`select id, secret_ciphertext from integrations where name = ${name}`;
  await page.goto(`${stack.baseUrl}/console/`);
  await page.getByRole('heading', { level: 1, name: 'Directory Synchronization' }).waitFor();
  await tabTo(page, new RegExp(`^Sync All: ${name}$`));
  await page.keyboard.press('Enter');
  await progress(page).getByText(new RegExp(`Sync All of ${name}: Succeeded`)).waitFor({ timeout: 60_000 });

  await page.goto(`${stack.baseUrl}/console/`);
  await page.getByRole('heading', { level: 1, name: 'Directory Synchronization' }).waitFor();
  await tabTo(page, new RegExp(`^${name}$`));
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name }).waitFor();
  await tabTo(page, /^Password/, 80);
  await page.keyboard.type('not-the-reader-password');
  await tabTo(page, /^Save and Exit$/, 5);
  await page.keyboard.press('Enter');
  const refusal = page.getByRole('alert').filter({ hasText: 'The new password was not stored: Test Connection failed' });
  await refusal.waitFor({ timeout: 45_000 });
  await refusal.getByRole('list', { name: 'Failed Test Connection checklist' }).getByText(/bind: failed/).waitFor();
  await checkPage(page, 'keyboard', 'password-refused');
  const [kept] = await stack.db.$client<{ secret_ciphertext: string }[]>`select secret_ciphertext from integrations where id = ${integration?.id ?? ''}`;
  expect(kept?.secret_ciphertext).toBe(integration?.secret_ciphertext);

  await tabTo(page, /^Password/, 5, true);
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.type(slapd.readerPassword);
  await tabTo(page, /^Save and Exit$/, 5);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Directory Synchronization' }).waitFor({ timeout: 45_000 });
  await page.getByText(`The new password of ${name} passed Test Connection and is stored.`).waitFor();
  await progress(page).getByText(new RegExp(`Sync All of ${name}: Succeeded`)).waitFor({ timeout: 60_000 });
  expect(admin.watch.foreignRequests).toEqual([]);
  expect(admin.watch.errors).toEqual([]);
  // No secret of the test reached any process's log.
  const logs = stack.logs();
  for (const secret of [slapd.readerPassword, 'not-the-reader-password']) expect(logs).not.toContain(secret);
}, timeoutMs);
