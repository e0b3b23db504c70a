import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listAudit, listRuns } from '@dirsync/db';
import { addAdGroup, addAdUser, grantTombstoneRead, sambaPassword, setAdPassword, sharedSamba, type SharedSamba } from '@dirsync/testkit';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { checkPage, finishedRun, passTestConnection, type ConsoleStack, launchBrowser, openContext, type PageWatch, signInWithLink, startConsoleStack } from './harness.ts';

// The seed's service-account password refresh on Active Directory (the run's Samba DC), in the
// console: the password changes in the directory, the next sync fails and Actions needed says so;
// a wrong new password is refused in words and nothing is stored; the right one passes Test
// Connection on a worker, is stored, and Sync All runs and succeeds. Named ad-*.test.ts so the
// jest global setup starts the shared DC for it.

const timeoutMs = 240_000;
const name = 'Head office';
const objects = 4;

let dc: SharedSamba;
let stack: ConsoleStack;
let browser: Browser;
let session: { context: BrowserContext; watch: PageWatch; page: Page };
let ou: string;
let account: { dn: string; password: string };
let integrationId: string;
const newPassword = sambaPassword();
const wrongPassword = sambaPassword();

beforeAll(async () => {
  [dc, stack, browser] = await Promise.all([sharedSamba(), startConsoleStack({ label: 'console_ad' }), launchBrowser()]);
  ou = await dc.createOu('console');
  const admin = await dc.client();
  try {
    const password = sambaPassword();
    account = { dn: await addAdUser(admin, ou, 'svc-console', {}, { password }), password };
    await addAdGroup(admin, ou, 'Staff', [await addAdUser(admin, ou, 'Ann'), await addAdUser(admin, ou, 'Bob')]);
  } finally {
    await admin.unbind();
  }
  await grantTombstoneRead(dc, account.dn);
  await stack.account('acme');
  // Set up by the platform team from a settings file, as `dirsync integrations add` does.
  const file = join(tmpdir(), `console-ad-settings-${process.pid}.json`);
  await writeFile(file, JSON.stringify({ baseDns: [ou], tls: { serverName: dc.dnsHostName, caPem: dc.caPem } }));
  const added = await stack.run(
    ['integrations', 'add', '--account', 'acme', '--kind', 'active_directory', '--name', name, '--url', dc.ldapsUrl, '--bind-dn', account.dn, '--settings-file', file, '--password-stdin'],
    `${account.password}\n`,
  );
  if (added.code !== 0) throw new Error(`integrations add failed: ${added.stderr}`);
  integrationId = added.stdout.trim();
  const opened = await openContext(browser, stack.baseUrl);
  session = { ...opened, page: await opened.context.newPage() };
}, timeoutMs);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  await dc?.release();
}, timeoutMs);

async function storedSecret(): Promise<string | null> {
  const [row] = await stack.db.$client<{ secret_ciphertext: string | null }[]>`select secret_ciphertext from integrations where id = ${integrationId}`;
  return row?.secret_ciphertext ?? null;
}

const progress = (page: Page) => page.getByRole('status', { name: 'Sync progress' });

test('after the service account password changes in AD, Sync All fails and Actions needed shows the refused password', async () => {
  // The scheduler's first sync of the new integration.
  const first = await finishedRun(stack.db, integrationId);
  expect(first).toMatchObject({ status: 'succeeded', created: objects });

  const admin = await dc.client();
  try {
    await setAdPassword(admin, account.dn, newPassword);
  } finally {
    await admin.unbind();
  }

  const { page } = session;
  await signInWithLink(page, await stack.signInLink('acme'), 'ad-password');
  await page.getByRole('link', { name }).waitFor();
  await checkPage(page, 'ad-password', 'directory-sync');
  const seen = (await listRuns(stack.db, { integrationId, limit: 50 })).map((r) => r.id);
  await page.getByRole('button', { name: `Sync All: ${name}` }).click();
  await progress(page).getByText(new RegExp(`Sync All of ${name}: failed — .*(invalid credentials|wrong password)`, 'i')).waitFor({ timeout: 60_000 });
  const failed = await finishedRun(stack.db, integrationId, seen);
  expect(failed.status).toBe('failed');

  await page.getByRole('button', { name: /^Actions needed \([1-9]\d*\)$/ }).click();
  await page.getByRole('heading', { level: 1, name: 'Actions needed' }).waitFor();
  await page.getByRole('heading', { name: `Password refused by the directory: ${name}` }).waitFor();
  await checkPage(page, 'ad-password', 'actions-needed');
  await page.getByRole('link', { name: `Enter the password of ${name}` }).click();
  await page.getByRole('heading', { level: 1, name }).waitFor();
  await checkPage(page, 'ad-password', 'integration');
}, timeoutMs);

test('a wrong new password is refused in words with the failed checks, and the old secret stays stored', async () => {
  const { page } = session;
  const before = await storedSecret();
  await page.getByLabel('Password', { exact: true }).fill(wrongPassword);
  await page.getByRole('button', { name: 'Save and Exit' }).click();
  const refusal = page.getByRole('alert').filter({ hasText: 'The new password was not stored: Test Connection failed' });
  await refusal.waitFor({ timeout: 45_000 });
  const failedChecks = await refusal.getByRole('list', { name: 'Failed Test Connection checklist' }).getByRole('listitem').allTextContents();
  expect(failedChecks.join('\n')).toMatch(/bind: failed — .*wrong password/);
  await checkPage(page, 'ad-password', 'wrong-password');
  expect(await storedSecret()).toBe(before);
  expect(page.url()).toContain(`/console/integrations/${integrationId}`);
}, timeoutMs);

test('the new password passes Test Connection, is stored and audited, and the Sync All that follows succeeds', async () => {
  const { page } = session;
  const before = await storedSecret();
  const seen = (await listRuns(stack.db, { integrationId, limit: 50 })).map((r) => r.id);
  await page.getByLabel('Password', { exact: true }).fill(newPassword);
  await page.getByRole('button', { name: 'Save and Exit' }).click();
  await page.getByRole('heading', { level: 1, name: 'Directory Synchronization' }).waitFor({ timeout: 45_000 });
  await page.getByText(`The new password of ${name} passed Test Connection and is stored.`).waitFor();
  await progress(page).getByText(new RegExp(`Sync All of ${name}: Succeeded`)).waitFor({ timeout: 60_000 });
  await checkPage(page, 'ad-password', 'sync-all-after-password');

  const run = await finishedRun(stack.db, integrationId, seen);
  expect(run).toMatchObject({ status: 'succeeded', mode: 'full', trigger: 'password_update' });
  const after = await storedSecret();
  expect(after).not.toBe(before);
  expect(after).not.toContain(newPassword);
  const audit = await listAudit(stack.db, { integrationId });
  expect(audit.map((a) => a.action)).toContain('integration.password_updated');

  // Nothing left to do: the refused password is gone from Actions needed.
  await page.getByRole('button', { name: /^Actions needed/ }).click();
  await page.getByRole('heading', { level: 1, name: 'Actions needed' }).waitFor();
  await expect(page.getByRole('heading', { name: `Password refused by the directory: ${name}` }).count()).resolves.toBe(0);
  expect(session.watch.foreignRequests).toEqual([]);
  expect(session.watch.errors).toEqual([]);
  const logs = stack.logs();
  for (const secret of [account.password, newPassword, wrongPassword]) expect(logs).not.toContain(secret);
}, timeoutMs);

test('Active Directory through the New integration wizard: the DC by address with its certificate name, Test Connection passes, and the first sync stores what the page counts', async () => {
  const wizardName = 'Branch office';
  const reader = { password: sambaPassword(), dn: '' };
  const admin = await dc.client();
  try {
    reader.dn = await addAdUser(admin, ou, 'svc-wizard', {}, { password: reader.password });
  } finally {
    await admin.unbind();
  }
  await grantTombstoneRead(dc, reader.dn);

  const { page } = session;
  await page.goto(`${stack.baseUrl}/console/`);
  await page.getByRole('link', { name: 'New integration' }).click();
  await page.getByRole('heading', { level: 1, name: 'New integration' }).waitFor();
  await page.getByRole('radio', { name: 'Active Directory', exact: true }).check();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('heading', { level: 2, name: 'Settings: Active Directory' }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill(wizardName);
  // The DC is reached by address; its certificate names the DC, as on most domains.
  await page.getByLabel('Server URL').fill(dc.ldapsUrl);
  await page.getByLabel('User Distinguished Name').fill(reader.dn);
  await page.getByLabel('Base DNs').fill(ou);
  await page.getByLabel('CA certificate (PEM)').fill(dc.caPem);
  await page.getByLabel('TLS server name').fill(dc.dnsHostName);
  await page.getByLabel('Password', { exact: true }).fill(reader.password);
  await checkPage(page, 'wizard-ad', 'settings');
  await page.getByRole('button', { name: 'Next' }).click();

  await page.getByRole('heading', { level: 2, name: 'Test Connection' }).waitFor();
  await expect(page.getByRole('button', { name: 'Start first sync' }).isDisabled()).resolves.toBe(true);
  const checks = await passTestConnection(page);
  expect(checks.join('\n')).toMatch(/bind: ok/);
  await checkPage(page, 'wizard-ad', 'test-connection');

  const [created] = await stack.db.$client<{ id: string; kind: string; settings: Record<string, unknown> }[]>`
    select id, kind, settings from integrations where name = ${wizardName}`;
  expect(created).toMatchObject({ kind: 'active_directory', settings: { url: dc.ldapsUrl, bindDn: reader.dn, baseDns: [ou], tls: { serverName: dc.dnsHostName } } });
  const wizardIntegration = created?.id ?? '';
  await page.getByRole('button', { name: 'Start first sync' }).click();
  await page.getByRole('heading', { level: 1, name: 'Directory Synchronization' }).waitFor();
  const shown = progress(page).getByText(new RegExp(`First sync of ${wizardName}: Succeeded — (\\d+) created in`));
  await shown.waitFor({ timeout: 60_000 });
  const counted = Number(/— (\d+) created/.exec((await shown.textContent()) ?? '')?.[1]);
  await checkPage(page, 'wizard-ad', 'first-sync');

  // What the page counted is what PostgreSQL holds: the OU's users, including both service accounts, and its group.
  expect(await finishedRun(stack.db, wizardIntegration)).toMatchObject({ status: 'succeeded', mode: 'full', created: counted });
  const stored = await stack.db.$client<{ type: string; count: number }[]>`
    select type, count(*)::int as count from directory_objects where integration_id = ${wizardIntegration} and deleted_at is null group by type order by type`;
  expect(stored).toEqual([
    { type: 'group', count: 1 },
    { type: 'user', count: counted - 1 },
  ]);
  expect(counted).toBe(objects + 1);
  expect(session.watch.foreignRequests).toEqual([]);
  expect(stack.logs()).not.toContain(reader.password);
}, timeoutMs);
