import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createIntegration, createKeyRing, getIntegration, hasGrantedConsent, setLegacyMigrationDeadline } from '@dirsync/db';
import { type EntraEmulator, populateEntraTenant, startEntraEmulator } from '@dirsync/testkit';
import type { Browser } from 'playwright-core';
import { checkPage, type ConsoleStack, launchBrowser, openContext, signInWithLink, startConsoleStack } from './harness.ts';

// The seed's migration of a legacy Azure Directory Synchronization integration, in the console:
// "Actions needed" in the top right corner with the migration deadline, "Migrate now" opening the
// Connectors page's "Create connector" with the name carried over and the description to enter,
// the tenant administrator's consent on the emulated Entra ID, and back: the integration switched,
// the reminder to remove the old Azure app, and the migration prompt gone.

const timeoutMs = 240_000;
const legacyName = 'Fabrikam';
const legacySecret = 'fabrikam-old-app-secret';
const deadline = '2027-03-31';

let stack: ConsoleStack;
let emulator: EntraEmulator;
let browser: Browser;
let dir: string;
let integrationId: string;
let legacyClientId: string;
let legacyTenantId: string;
let accountId: string;

beforeAll(async () => {
  [stack, emulator, browser] = await Promise.all([startConsoleStack({ label: 'console_entra' }), startEntraEmulator(), launchBrowser()]);
  dir = await mkdtemp(join(tmpdir(), 'dirsync-console-entra-'));
  const caFile = join(dir, 'emulator-ca.pem');
  await writeFile(caFile, emulator.caPem);
  accountId = await stack.account('acme');

  // The platform's connector, added as the platform team does: its redirect URI is this API's
  // consent callback, its certificate uploaded to the app registration.
  const redirectUri = `${stack.baseUrl}/v1/consent/callback`;
  const home = emulator.createTenant({ domain: 'dirsync-platform.onmicrosoft.com' });
  const app = emulator.registerApplication({ homeTenantId: home.tenantId, displayName: 'dirsync directory sync', redirectUris: [redirectUri] });
  const certificateFile = join(dir, 'connector.pem');
  const connector = await stack.run([
    'connectors', 'add', '--name', 'dirsync-emea', '--description', 'Directory sync connector (emulated Entra ID)', '--client-id', app.appId,
    '--object-id', app.objectId, '--home-tenant', home.tenantId, '--redirect-uri', redirectUri, '--authority-host', emulator.authorityHost,
    '--graph-url', emulator.graphBaseUrl, '--ca-file', caFile, '--certificate-out', certificateFile,
  ]);
  if (connector.code !== 0) throw new Error(`connectors add failed: ${connector.stderr}`);
  const keyId = emulator.addApplicationCertificate(app.appId, await readFile(certificateFile, 'utf8'));
  const recorded = await stack.run(['connectors', 'set-key-id', 'dirsync-emea', keyId]);
  if (recorded.code !== 0) throw new Error(`connectors set-key-id failed: ${recorded.stderr}`);

  // The customer's legacy integration: its own app registration and client secret.
  const tenant = emulator.createTenant({ domain: 'fabrikam.onmicrosoft.com' });
  legacyTenantId = tenant.tenantId;
  const legacyApp = emulator.registerApplication({ homeTenantId: tenant.tenantId, displayName: 'old sync app', clientSecret: legacySecret });
  legacyClientId = legacyApp.appId;
  populateEntraTenant(tenant, { users: 6, groups: 1, membersPerGroup: 3, seed: 5 });
  const legacy = await createIntegration(
    stack.db,
    {
      accountId,
      kind: 'entra_id',
      name: legacyName,
      settings: { tenantId: tenant.tenantId, legacyApp: { clientId: legacyClientId }, authorityHost: emulator.authorityHost, graphBaseUrl: emulator.graphBaseUrl, caPem: emulator.caPem },
    },
    { ring: createKeyRing({ current: stack.env['DIRSYNC_SECRET_KEY'] ?? '' }), plaintext: legacySecret },
  );
  integrationId = legacy.id;
  // The end of that day, UTC, as `dirsync migration-deadline 2027-03-31` sets it.
  await setLegacyMigrationDeadline(stack.db, new Date(`${deadline}T23:59:59.999Z`));
}, timeoutMs);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  await emulator?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
}, timeoutMs);

test('Migrate now: the name carried over, a description required, consent on Entra ID, the integration switched, the old app reminder, and the prompt gone', async () => {
  const { context, watch } = await openContext(browser, stack.baseUrl);
  const page = await context.newPage();
  await signInWithLink(page, await stack.signInLink('acme'), 'migrate');

  // The prompt in the top right corner, with the deadline on the list.
  await page.getByRole('button', { name: /^Actions needed \([1-9]\d*\)$/ }).click();
  await page.getByRole('heading', { level: 1, name: 'Actions needed' }).waitFor();
  const prompt = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: `Migrate to a connector: ${legacyName}` }) });
  // The deadline is the end of that day, UTC.
  await prompt.getByText(new RegExp(`^Migration deadline: ${deadline} \\d\\d:\\d\\d UTC$`)).waitFor();
  await checkPage(page, 'migrate', 'actions-needed');
  await prompt.getByRole('link', { name: 'Migrate now' }).click();

  // Connectors, Create connector: the name carried over and read-only, the description empty.
  await page.getByRole('heading', { level: 1, name: 'Connectors' }).waitFor();
  await page.getByRole('heading', { level: 2, name: 'Create connector' }).waitFor();
  const form = page.getByRole('region', { name: 'Create connector' });
  const nameField = form.getByLabel('Name', { exact: true });
  await expect(nameField.inputValue()).resolves.toBe(legacyName);
  await expect(nameField.getAttribute('readonly')).resolves.not.toBeNull();
  await expect(form.getByLabel('Description', { exact: true }).inputValue()).resolves.toBe('');
  await checkPage(page, 'migrate', 'create-connector');
  await form.getByRole('button', { name: 'Grant consent' }).click();
  await page.getByRole('alert').filter({ hasText: 'The integration was not migrated: fill in the required fields.' }).waitFor();
  await form.getByText('Enter a description: it is required').waitFor();
  await checkPage(page, 'migrate', 'description-required');
  expect((await getIntegration(stack.db, integrationId))?.settings['legacyApp']).toBeDefined();

  // The tenant's administrator consents on Entra ID (emulated) and comes back to the console.
  await form.getByLabel('Description', { exact: true }).fill('Fabrikam staff directory');
  await form.getByRole('button', { name: 'Grant consent' }).click();
  await page.getByRole('heading', { level: 2, name: 'Migration complete' }).waitFor({ timeout: 60_000 });
  // The administrator went through the tenant's admin-consent page and the sign-in.
  expect(emulator.requestsTo('login', '/adminconsent').filter((r) => r.status === 302).length).toBeGreaterThanOrEqual(1);
  const done = page.getByRole('region', { name: 'Migration complete' });
  await done.getByRole('heading', { level: 3, name: 'Remove the old Azure app' }).waitFor();
  await done.getByText(legacyClientId).waitFor();
  await done.getByText(legacyTenantId).first().waitFor();
  await done.getByRole('status', { name: 'Sync progress' }).getByText(new RegExp(`Sync All of ${legacyName}: Succeeded`)).waitFor({ timeout: 60_000 });
  await checkPage(page, 'migrate', 'migration-complete');

  const migrated = await getIntegration(stack.db, integrationId);
  expect(migrated?.name).toBe(legacyName);
  expect(migrated?.description).toBe('Fabrikam staff directory');
  expect(migrated?.settings['legacyApp']).toBeUndefined();
  const connectorId = migrated?.settings['connectorId'];
  expect(typeof connectorId).toBe('string');
  expect(await hasGrantedConsent(stack.db, accountId, String(connectorId), legacyTenantId)).toBe(true);

  // Every legacy integration is migrated: the prompt and its deadline are gone, the reminder stays.
  await page.getByRole('button', { name: /^Actions needed/ }).click();
  await page.getByRole('heading', { level: 1, name: 'Actions needed' }).waitFor();
  await page.getByRole('heading', { name: `Remove the old Azure app: ${legacyName}` }).waitFor();
  await expect(page.getByRole('link', { name: 'Migrate now' }).count()).resolves.toBe(0);
  await expect(page.getByText(/Migration deadline/).count()).resolves.toBe(0);
  await checkPage(page, 'migrate', 'actions-after');
  expect(watch.foreignRequests).toEqual([]);
  expect(watch.errors).toEqual([]);
  expect(stack.logs()).not.toContain(legacySecret);
  await context.close();
}, timeoutMs);
