import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConsoleSession, hasGrantedConsent } from '@dirsync/db';
import { type DominoServer, type EntraEmulator, populateEntraTenant, startDomino, startEntraEmulator, waitFor } from '@dirsync/testkit';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { checkPage, finishedRun, passTestConnection, type ConsoleStack, launchBrowser, openContext, type PageDocument, type PageWatch, signInWithLink, startConsoleStack } from './harness.ts';

// The New integration wizard for the directories the LDAP test leaves out: Microsoft Entra ID
// through an existing connector whose consent the account does not hold yet (Grant consent on the
// emulated tenant, back to the wizard, Test Connection, the first sync), "Create a new connector"
// as an account administrator (told in words it is for platform operators) and as a platform
// administrator (Name and Description required), and a Domino directory through Test Connection.

const timeoutMs = 240_000;
const connectorName = 'dirsync-emea';
const entraName = 'Contoso Entra';
const entraUsers = 7;
const entraGroups = 2;
const dominoName = 'Acme Domino';

let stack: ConsoleStack;
let emulator: EntraEmulator;
let domino: DominoServer;
let browser: Browser;
let dir: string;
let accountId: string;
let tenantId: string;
let homeTenantId: string;
let admin: { context: BrowserContext; watch: PageWatch; page: Page };

beforeAll(async () => {
  [stack, emulator, domino, browser] = await Promise.all([
    startConsoleStack({ label: 'console_wizard_entra', scheduler: false }),
    startEntraEmulator(),
    startDomino({ data: { people: 8, groups: 2, membersPerGroup: 3 }, tls: true }),
    launchBrowser(),
  ]);
  dir = await mkdtemp(join(tmpdir(), 'dirsync-console-wizard-entra-'));
  const caFile = join(dir, 'emulator-ca.pem');
  await writeFile(caFile, emulator.caPem);
  accountId = await stack.account('acme');

  // The platform's connector, added as the platform team does; no tenant has consented to it yet.
  const redirectUri = `${stack.baseUrl}/v1/consent/callback`;
  const home = emulator.createTenant({ domain: 'dirsync-platform.onmicrosoft.com' });
  homeTenantId = home.tenantId;
  const app = emulator.registerApplication({ homeTenantId: home.tenantId, displayName: 'dirsync directory sync', redirectUris: [redirectUri] });
  const certificateFile = join(dir, 'connector.pem');
  const connector = await stack.run([
    'connectors', 'add', '--name', connectorName, '--description', 'Directory sync connector (emulated Entra ID)', '--client-id', app.appId,
    '--object-id', app.objectId, '--home-tenant', home.tenantId, '--redirect-uri', redirectUri, '--authority-host', emulator.authorityHost,
    '--graph-url', emulator.graphBaseUrl, '--ca-file', caFile, '--certificate-out', certificateFile,
  ]);
  if (connector.code !== 0) throw new Error(`connectors add failed: ${connector.stderr}`);
  const keyId = emulator.addApplicationCertificate(app.appId, await readFile(certificateFile, 'utf8'));
  const recorded = await stack.run(['connectors', 'set-key-id', connectorName, keyId]);
  if (recorded.code !== 0) throw new Error(`connectors set-key-id failed: ${recorded.stderr}`);

  const tenant = emulator.createTenant({ domain: 'contoso.onmicrosoft.com' });
  tenantId = tenant.tenantId;
  populateEntraTenant(tenant, { users: entraUsers, groups: entraGroups, membersPerGroup: 3, seed: 11 });

  const { context, watch } = await openContext(browser, stack.baseUrl);
  admin = { context, watch, page: await context.newPage() };
  await signInWithLink(admin.page, await stack.signInLink('acme'), 'wizard-entra');
}, timeoutMs);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  await emulator?.close();
  await domino?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, timeoutMs);

const progress = (page: Page) => page.getByRole('status', { name: 'Sync progress' });

/** The words of the elements a control's aria-describedby names. */
async function description(page: Page, describedBy: string): Promise<string> {
  return page.evaluate(
    (ids) => ids.split(' ').map((id) => (globalThis as unknown as { document: PageDocument }).document.getElementById(id)?.textContent ?? '').join(' '),
    describedBy,
  );
}

/** Opens the wizard from the main page and chooses `kind` (its label). */
async function openWizard(page: Page, kind: string, test: string): Promise<void> {
  await page.goto(`${stack.baseUrl}/console/`);
  await page.getByRole('link', { name: 'New integration' }).click();
  await page.getByRole('heading', { level: 1, name: 'New integration' }).waitFor();
  await page.getByRole('radio', { name: kind, exact: true }).check();
  await checkPage(page, test, 'directory-type');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('heading', { level: 2, name: `Settings: ${kind}` }).waitFor();
}

test('Entra ID with an existing connector: Grant consent on the tenant, back to the wizard, Test Connection, and the first sync counts the tenant', async () => {
  const { page, watch } = admin;
  await openWizard(page, 'Microsoft Entra ID', 'wizard-entra');
  await expect(page.getByRole('radio', { name: 'Use an existing connector' }).isChecked()).resolves.toBe(true);
  await page.getByLabel('Name', { exact: true }).fill(entraName);
  await page.getByLabel('Description', { exact: true }).fill('Contoso staff');
  await page.getByLabel('Tenant', { exact: true }).fill(tenantId);
  const connectorSelect = page.getByLabel('Connector', { exact: true });
  await connectorSelect.getByRole('option', { name: new RegExp(`^${connectorName} `) }).waitFor({ state: 'attached' });
  await connectorSelect.selectOption({ label: (await connectorSelect.getByRole('option', { name: new RegExp(`^${connectorName} `) }).textContent()) ?? '' });
  await checkPage(page, 'wizard-entra', 'settings');
  await page.getByRole('button', { name: 'Next' }).click();

  // The account holds no consent of the tenant: the wizard says so and offers Grant consent.
  await page.getByRole('alert').filter({ hasText: `Tenant ${tenantId} has not granted consent to this connector yet` }).waitFor();
  const grant = page.getByRole('button', { name: 'Grant consent' });
  await grant.waitFor();
  expect(await hasGrantedConsent(stack.db, accountId, await connectorSelect.inputValue(), tenantId)).toBe(false);
  expect(await stack.db.$client`select id from integrations where name = ${entraName}`).toHaveLength(0);
  await checkPage(page, 'wizard-entra', 'consent-needed');

  // The tenant's administrator first closes the consent page: back in the wizard, told so in words.
  emulator.setConsentDecision(tenantId, 'cancel');
  await grant.click();
  await page.getByRole('alert').filter({ hasText: /^Consent was not granted: .+ Select Next, then Grant consent to ask the tenant's administrator again\.$/ }).waitFor({ timeout: 60_000 });
  expect(new URL(page.url()).pathname).toBe('/console/integrations/new');
  await expect(page.getByLabel('Name', { exact: true }).inputValue()).resolves.toBe(entraName);
  expect(await hasGrantedConsent(stack.db, accountId, await connectorSelect.inputValue(), tenantId)).toBe(false);
  await checkPage(page, 'wizard-entra', 'consent-declined');
  await page.getByRole('button', { name: 'Next' }).click();
  await grant.waitFor();

  // Then consents on Entra ID (emulated); the browser comes back to the wizard.
  emulator.setConsentDecision(tenantId, 'approve');
  await grant.click();
  await page.getByRole('status').filter({ hasText: `Consent granted by tenant ${tenantId}. Select Next to create the integration.` }).waitFor({ timeout: 60_000 });
  expect(emulator.requestsTo('login', '/adminconsent').filter((r) => r.status === 302).length).toBeGreaterThanOrEqual(1);
  expect(new URL(page.url()).pathname).toBe('/console/integrations/new');
  // What was entered before the trip is still there.
  await expect(page.getByLabel('Name', { exact: true }).inputValue()).resolves.toBe(entraName);
  await expect(page.getByLabel('Tenant', { exact: true }).inputValue()).resolves.toBe(tenantId);
  // The connector list is fetched again after the trip; the restored choice shows once it is there.
  await connectorSelect.getByRole('option', { name: new RegExp(`^${connectorName} `) }).waitFor({ state: 'attached' });
  const connectorId = await connectorSelect.inputValue();
  expect(connectorId).not.toBe('');
  expect(await hasGrantedConsent(stack.db, accountId, connectorId, tenantId)).toBe(true);
  await checkPage(page, 'wizard-entra', 'consent-granted');
  await page.getByRole('button', { name: 'Next' }).click();

  await page.getByRole('heading', { level: 2, name: 'Test Connection' }).waitFor();
  await expect(page.getByRole('button', { name: 'Start first sync' }).isDisabled()).resolves.toBe(true);
  await checkPage(page, 'wizard-entra', 'test-step');
  await passTestConnection(page);
  await checkPage(page, 'wizard-entra', 'test-connection');

  await page.getByRole('button', { name: 'Start first sync' }).click();
  await page.getByRole('heading', { level: 1, name: 'Directory Synchronization' }).waitFor();
  const objects = entraUsers + entraGroups;
  await progress(page).getByText(new RegExp(`First sync of ${entraName}: Succeeded — ${objects} created in`)).waitFor({ timeout: 60_000 });
  await checkPage(page, 'wizard-entra', 'first-sync');

  // What the page says is what PostgreSQL holds.
  const [integration] = await stack.db.$client<{ id: string; enabled: boolean; kind: string; settings: Record<string, unknown> }[]>`
    select id, enabled, kind, settings from integrations where name = ${entraName} and account_id = ${accountId}`;
  expect(integration).toMatchObject({ enabled: true, kind: 'entra_id', settings: { tenantId, connectorId } });
  const run = await finishedRun(stack.db, integration?.id ?? '');
  expect(run).toMatchObject({ status: 'succeeded', mode: 'full', created: objects, deleted: 0 });
  const stored = await stack.db.$client<{ type: string; count: number }[]>`
    select type, count(*)::int as count from directory_objects where integration_id = ${integration?.id ?? ''} and deleted_at is null group by type order by type`;
  expect(stored).toEqual([
    { type: 'group', count: entraGroups },
    { type: 'user', count: entraUsers },
  ]);
  expect(watch.foreignRequests).toEqual([]);
  expect(watch.errors).toEqual([]);
}, timeoutMs);

test('"Create a new connector": an account administrator is told it is for platform operators; a platform administrator creates one with Name and Description required', async () => {
  const { page } = admin;
  await openWizard(page, 'Microsoft Entra ID', 'wizard-connector');
  await page.getByRole('radio', { name: 'Create a new connector' }).check();
  await page.getByText('Only platform operators can create connectors.').waitFor();
  await expect(page.getByRole('region', { name: 'Create connector' }).count()).resolves.toBe(0);
  await expect(page.getByLabel('Connector', { exact: true }).count()).resolves.toBe(0);
  await checkPage(page, 'wizard-connector', 'account-admin');
  // Next does not send them to a form they cannot see.
  await page.getByLabel('Name', { exact: true }).fill('Fabrikam Entra');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('alert').filter({ hasText: 'Only platform operators can create connectors: choose "Use an existing connector".' }).waitFor();
  await expect(page.getByText('Create the connector first').count()).resolves.toBe(0);
  await checkPage(page, 'wizard-connector', 'account-admin-next');

  // A platform administrator's session, as a `*:admin` sign-in through OpenID Connect makes it.
  const { token } = await createConsoleSession(stack.db, { subject: 'platform-admin', name: 'Pat Platform', email: 'pat@example.com', method: 'oidc', grants: [], platformRole: 'admin', ttlMs: 10 * 60_000 });
  const platform = await openContext(browser, stack.baseUrl);
  await platform.context.addCookies([{ name: 'dirsync_session', value: token, url: stack.baseUrl, httpOnly: true, sameSite: 'Lax' }]);
  const platformPage = await platform.context.newPage();
  await openWizard(platformPage, 'Microsoft Entra ID', 'wizard-connector-platform');
  await platformPage.getByRole('radio', { name: 'Create a new connector' }).check();
  const form = platformPage.getByRole('region', { name: 'Create connector' });
  await form.waitFor();
  await expect(platformPage.getByText('Only platform operators can create connectors.').count()).resolves.toBe(0);
  // The wizard asks for the connector in this form, not in a select.
  await expect(platformPage.getByLabel('Connector', { exact: true }).count()).resolves.toBe(0);
  await checkPage(platformPage, 'wizard-connector-platform', 'create-connector');
  await platformPage.getByLabel('Name', { exact: true }).first().fill('Fabrikam Entra');
  await platformPage.getByRole('button', { name: 'Next' }).click();
  await platformPage.getByRole('alert').filter({ hasText: 'Create the connector first (below), or choose "Use an existing connector".' }).waitFor();

  const app = emulator.registerApplication({ homeTenantId, displayName: 'dirsync second connector', redirectUris: [`${stack.baseUrl}/v1/consent/callback`] });
  const newName = 'dirsync-amer';
  await form.getByLabel('Name', { exact: true }).fill(newName);
  await form.getByLabel('Description', { exact: true }).fill('   ');
  await form.getByLabel('Application (client) ID').fill(app.appId);
  await form.getByLabel('Object ID').fill(app.objectId);
  await form.getByLabel('Home tenant').fill(homeTenantId);
  await form.getByRole('button', { name: 'Create connector' }).click();
  await form.getByRole('alert').filter({ hasText: 'The connector was not created: fill in the required fields.' }).waitFor();
  const descriptionField = form.getByLabel('Description', { exact: true });
  await expect(descriptionField.getAttribute('aria-invalid')).resolves.toBe('true');
  await expect(description(platformPage, (await descriptionField.getAttribute('aria-describedby')) ?? '')).resolves.toMatch(/Enter a description: it is required/);
  expect(await stack.db.$client`select id from connectors where name = ${newName}`).toHaveLength(0);
  await checkPage(platformPage, 'wizard-connector-platform', 'description-required');

  // A blank name is refused at its field too.
  await form.getByLabel('Name', { exact: true }).fill('');
  await descriptionField.fill('Americas directory sync connector');
  await form.getByRole('button', { name: 'Create connector' }).click();
  const nameField = form.getByLabel('Name', { exact: true });
  await waitFor(async () => (await nameField.getAttribute('aria-invalid')) === 'true', { timeoutMs: 10_000, what: 'the Name field marked invalid' });
  await expect(description(platformPage, (await nameField.getAttribute('aria-describedby')) ?? '')).resolves.toMatch(/Enter a name: it is required/);
  await expect(descriptionField.getAttribute('aria-invalid')).resolves.not.toBe('true');

  await nameField.fill(newName);
  await form.getByRole('button', { name: 'Create connector' }).click();
  await platformPage.getByRole('status').filter({ hasText: `Connector ${newName} created and selected.` }).waitFor();
  await platformPage.getByLabel('Certificate to upload').first().getByText('BEGIN CERTIFICATE').waitFor();
  const [row] = await stack.db.$client<{ id: string; description: string; client_id: string }[]>`select id, description, client_id from connectors where name = ${newName}`;
  expect(row).toMatchObject({ description: 'Americas directory sync connector', client_id: app.appId });
  // The new connector is the one the wizard goes on with.
  await expect(platformPage.getByRole('radio', { name: 'Use an existing connector' }).isChecked()).resolves.toBe(true);
  // (the select's options load after the connector is made)
  const chosen = platformPage.getByLabel('Connector', { exact: true });
  await chosen.getByRole('option', { name: new RegExp(`^${newName} `) }).waitFor({ state: 'attached' });
  await expect(chosen.inputValue()).resolves.toBe(row?.id);
  await checkPage(platformPage, 'wizard-connector-platform', 'connector-created');
  expect(platform.watch.foreignRequests).toEqual([]);
  expect(platform.watch.errors).toEqual([]);
  await platform.context.close();
}, timeoutMs);

test('Domino through the wizard: the settings of a Domino directory and Test Connection passes', async () => {
  const { page, watch } = admin;
  await openWizard(page, 'Domino', 'wizard-domino');
  await page.getByLabel('Name', { exact: true }).fill(dominoName);
  await page.getByLabel('Server URL').fill(domino.url);
  await page.getByLabel('User Distinguished Name').fill(domino.readerDn);
  await page.getByLabel('Users base DNs').fill(domino.suffix);
  await page.getByLabel('Groups base DNs').fill(`ou=Groups,${domino.suffix}`);
  await page.getByLabel('TLS mode').selectOption('starttls');
  await page.getByLabel('CA certificate (PEM)').fill(domino.tls?.caPem ?? '');
  await page.getByLabel('Password', { exact: true }).fill(domino.readerPassword);
  await checkPage(page, 'wizard-domino', 'settings');
  await page.getByRole('button', { name: 'Next' }).click();

  await page.getByRole('heading', { level: 2, name: 'Test Connection' }).waitFor();
  const checks = await passTestConnection(page);
  expect(checks.join('\n')).toMatch(/bind: ok/);
  await expect(page.getByRole('button', { name: 'Start first sync' }).isEnabled()).resolves.toBe(true);
  await checkPage(page, 'wizard-domino', 'test-connection');

  const [integration] = await stack.db.$client<{ kind: string; enabled: boolean; settings: Record<string, unknown> }[]>`
    select kind, enabled, settings from integrations where name = ${dominoName} and account_id = ${accountId}`;
  expect(integration).toMatchObject({ kind: 'domino', enabled: false, settings: { url: domino.url, bindDn: domino.readerDn, users: { baseDns: [domino.suffix] } } });
  expect(watch.foreignRequests).toEqual([]);
  expect(watch.errors).toEqual([]);
  expect(stack.logs()).not.toContain(domino.readerPassword);
}, timeoutMs);

interface ConnectorFacts {
  currentThumbprint: string | null;
  nextRotationAt: string | null;
  rotationFailures: number;
  lastRotation: { at: string | null; status: string | null; error: string | null };
  certificates: { thumbprint: string; status: string }[];
}

async function connectorFacts(): Promise<ConnectorFacts> {
  const shown = await stack.run(['connectors', 'show', connectorName, '--json']);
  if (shown.code !== 0) throw new Error(`connectors show failed: ${shown.stderr}`);
  return JSON.parse(shown.stdout) as ConnectorFacts;
}

test('Connectors: the rotation history as it happened — last rotation, next, the current thumbprint, every certificate, and a failed rotation counted until one succeeds', async () => {
  const { page, watch } = admin;
  const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { level: 2, name: connectorName }) });
  const fact = (term: string) => card.locator('dt', { hasText: new RegExp(`^${term}$`) }).locator('xpath=following-sibling::dd[1]');

  // The daily rotation, run on demand: a new key added to the app and switched to.
  const before = await connectorFacts();
  const rotated = await stack.run(['connectors', 'rotate', connectorName]);
  expect(rotated.code).toBe(0);
  const after = await connectorFacts();
  expect(after.currentThumbprint).not.toBeNull();
  expect(after.currentThumbprint).not.toBe(before.currentThumbprint);
  expect(after.lastRotation.status).toBe('succeeded');

  await page.goto(`${stack.baseUrl}/console/connectors`);
  await page.getByRole('heading', { level: 1, name: 'Connectors' }).waitFor();
  await expect(fact('Current thumbprint').textContent()).resolves.toBe(after.currentThumbprint);
  await expect(fact('Last rotation').textContent()).resolves.toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC \(succeeded\)$/);
  await expect(fact('Next rotation').textContent()).resolves.toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$/);
  await expect(fact('Failures').textContent()).resolves.toBe('None since the last rotation');
  await card.getByText(/^Certificate history \(\d+\)$/).click();
  const history = card.getByRole('table', { name: `Certificates of ${connectorName}, newest first` });
  const rows = await history.getByRole('row').allTextContents();
  // Every certificate the connector has had, each with its status, as PostgreSQL holds them.
  expect(rows.slice(1)).toHaveLength(after.certificates.length);
  for (const c of after.certificates) expect(rows.some((r) => r.includes(c.thumbprint) && r.includes(c.status))).toBe(true);
  expect(after.certificates.filter((c) => c.status === 'current').map((c) => c.thumbprint)).toEqual([after.currentThumbprint]);
  await checkPage(page, 'connectors-rotation', 'rotated');

  // Graph refuses the next addKey: the rotation fails, the current key stays, the failure shows.
  emulator.injectFault({ service: 'graph', path: '/addKey', status: 500, times: 10 });
  const failed = await stack.run(['connectors', 'rotate', connectorName]);
  emulator.faults.clear();
  expect(failed.code).not.toBe(0);
  const refused = await connectorFacts();
  expect(refused.currentThumbprint).toBe(after.currentThumbprint);
  expect(refused.rotationFailures).toBe(1);
  await page.reload();
  await expect(fact('Failures').textContent()).resolves.toBe('1 failed rotation since the last success');
  await expect(fact('Last rotation').textContent()).resolves.toMatch(/\(failed\): .*addKey/);
  await expect(fact('Current thumbprint').textContent()).resolves.toBe(after.currentThumbprint);
  await checkPage(page, 'connectors-rotation', 'failed');

  // A retry that succeeds clears the count and moves the current thumbprint on.
  expect((await stack.run(['connectors', 'rotate', connectorName])).code).toBe(0);
  const retried = await connectorFacts();
  expect(retried.rotationFailures).toBe(0);
  await page.reload();
  await expect(fact('Failures').textContent()).resolves.toBe('None since the last rotation');
  await expect(fact('Current thumbprint').textContent()).resolves.toBe(retried.currentThumbprint);
  expect(retried.currentThumbprint).not.toBe(after.currentThumbprint);
  expect(watch.foreignRequests).toEqual([]);
  expect(watch.errors).toEqual([]);
}, timeoutMs);
