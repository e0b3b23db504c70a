import { request } from 'node:https';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { consentUrlSchema, migratedIntegrationSchema, secretAcceptedSchema, syncAnswerSchema } from '@dirsync/contracts';
import { type EmulatedTenantDirectory, type EntraEmulator, populateEntraTenant, startEntraEmulator } from '@dirsync/testkit';
import { actionsNeededJsonSchema, migrationDeadlineJsonSchema } from '../src/commands/actions.ts';
import { rotationJsonSchema } from '../src/commands/connectors.ts';
import { type CliEnvironment, type CliResult, createCliEnvironment, parseRunReports } from './support/run-cli.ts';

// The Entra ID commands as an administrator runs them: `bin/dirsync` child processes against the
// emulator, the machine's PostgreSQL and Redis, and a `dirsync worker` for the syncs.

const timeoutMs = 120_000;
const redirectUri = 'https://dirsync.test/entra/consent';

let cli: CliEnvironment;
let emulator: EntraEmulator;
let dir: string;
let caFile: string;
let home: EmulatedTenantDirectory;
let customer: EmulatedTenantDirectory;
let appId: string;
let objectId: string;

function ok(result: CliResult): string {
  if (result.code !== 0) throw new Error(`dirsync failed (${String(result.code)}): ${result.stderr}${result.stdout}`);
  return result.stdout;
}

/** The administrator opens the consent URL and approves; returns where the page sent them. */
function approve(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request(url, { ca: emulator.caPem }, (response) => {
      response.resume();
      if (response.statusCode === 302 && response.headers.location) resolve(response.headers.location);
      else reject(new Error(`consent page answered ${response.statusCode ?? '?'}`));
    })
      .on('error', reject)
      .end();
  });
}

beforeAll(async () => {
  cli = await createCliEnvironment('entracli');
  emulator = await startEntraEmulator({ membersPerRecord: 5 });
  dir = await mkdtemp(join(tmpdir(), 'dirsync-entra-cli-'));
  caFile = join(dir, 'emulator-ca.pem');
  await writeFile(caFile, emulator.caPem);
  home = emulator.createTenant({ domain: 'platform.onmicrosoft.com' });
  customer = emulator.createTenant({ domain: 'contoso.onmicrosoft.com' });
  populateEntraTenant(customer, { users: 40, groups: 4, membersPerGroup: 12 });
  const app = emulator.registerApplication({ homeTenantId: home.tenantId, displayName: 'dirsync', redirectUris: [redirectUri] });
  appId = app.appId;
  objectId = app.objectId;
}, timeoutMs);

afterAll(async () => {
  await cli?.cleanup();
  await emulator?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
}, timeoutMs);

test('connectors add generates the certificate, shows only its public part, and refuses a missing description', async () => {
  const refused = await cli.run(['connectors', 'add', '--name', 'x', '--description', '  ', '--client-id', appId, '--object-id', objectId, '--home-tenant', home.tenantId, '--redirect-uri', redirectUri]);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/^dirsync: connector description must not be empty/);

  const certificateOut = join(dir, 'connector.pem');
  const out = ok(
    await cli.run([
      'connectors', 'add', '--name', 'dirsync', '--description', 'Directory sync for customers',
      '--client-id', appId, '--object-id', objectId, '--home-tenant', home.tenantId, '--redirect-uri', redirectUri,
      '--authority-host', emulator.authorityHost, '--graph-url', emulator.graphBaseUrl, '--ca-file', caFile,
      '--certificate-out', certificateOut,
    ]),
  );
  expect(out).toMatch(/-----BEGIN CERTIFICATE-----/);
  expect(out).not.toMatch(/PRIVATE KEY/);
  const pem = await readFile(certificateOut, 'utf8');
  expect(out).toContain(pem.trim());
  // What an administrator does next: upload the certificate to the app registration, and record
  // the key id it shows.
  expect(out).toMatch(/dirsync connectors set-key-id dirsync <certificate id>/);
  const keyId = emulator.addApplicationCertificate(appId, pem);
  expect(ok(await cli.run(['connectors', 'set-key-id', 'dirsync', keyId]))).toMatch(/^key id .* recorded for certificate [0-9A-F]{40}/);

  const list = ok(await cli.run(['connectors', 'list']));
  expect(list).toMatch(/dirsync\s+.*\s+[0-9A-F]{40}/);
  const show = ok(await cli.run(['connectors', 'show', 'dirsync']));
  expect(show).toMatch(/permissions:\s+User\.Read\.All, GroupMember\.Read\.All\n/);
  expect(show).toMatch(/cloud:\s+custom/);
  expect(show).toMatch(new RegExp(`current\\s+${keyId}`));
  expect(show).not.toMatch(/PRIVATE KEY/);
}, timeoutMs);

test('connectors add --cloud takes the authority and Graph of a national cloud; consent URLs use them', async () => {
  const base = ['connectors', 'add', '--description', 'US Government tenants', '--object-id', objectId, '--home-tenant', home.tenantId, '--redirect-uri', redirectUri];
  const unknown = await cli.run([...base, '--name', 'nowhere', '--client-id', '0f0f0f0f-0000-4000-8000-000000000001', '--cloud', 'mars']);
  expect(unknown.code).not.toBe(0);
  expect(unknown.stderr).toMatch(/--cloud must be one of global, usgov, china/);
  ok(await cli.run([...base, '--name', 'gov', '--client-id', '0f0f0f0f-0000-4000-8000-000000000002', '--cloud', 'usgov']));
  const show = ok(await cli.run(['connectors', 'show', 'gov']));
  expect(show).toMatch(/cloud:\s+usgov\n/);
  expect(show).toMatch(/authority:\s+https:\/\/login\.microsoftonline\.us\n/);
  expect(show).toMatch(/graph:\s+https:\/\/graph\.microsoft\.us\n/);
  ok(await cli.run(['accounts', 'add', 'agency']));
  const url = new URL(ok(await cli.run(['connectors', 'consent-url', 'gov', '--account', 'agency', '--tenant', 'agency.onmicrosoft.us'])).trim());
  expect(`${url.origin}${url.pathname}`).toBe('https://login.microsoftonline.us/agency.onmicrosoft.us/v2.0/adminconsent');
  expect(url.searchParams.get('scope')).toBe('https://graph.microsoft.us/.default');
  // A private endpoint keeps its hand-written host beside the cloud's other one.
  ok(await cli.run([...base, '--name', 'private', '--client-id', '0f0f0f0f-0000-4000-8000-000000000003', '--cloud', 'china', '--graph-url', 'https://graph.private.example']));
  const custom = ok(await cli.run(['connectors', 'show', 'private']));
  expect(custom).toMatch(/cloud:\s+custom\n/);
  expect(custom).toMatch(/authority:\s+https:\/\/login\.chinacloudapi\.cn\n/);
  expect(custom).toMatch(/graph:\s+https:\/\/graph\.private\.example\n/);
}, timeoutMs);

test('the consent URL is signed and single use; the redirect records the consent after a token check', async () => {
  ok(await cli.run(['accounts', 'add', 'contoso']));
  const url = ok(await cli.run(['connectors', 'consent-url', 'dirsync', '--account', 'contoso', '--tenant', 'contoso.onmicrosoft.com'])).trim();
  const parsed = new URL(url);
  expect(`${parsed.origin}${parsed.pathname}`).toBe(`${emulator.authorityHost}/contoso.onmicrosoft.com/v2.0/adminconsent`);
  expect(parsed.searchParams.get('client_id')).toBe(appId);
  // v2-admin-consent.md: `scope` is required; `/.default` of the connector's own Graph.
  expect(parsed.searchParams.get('scope')).toBe(`${emulator.graphBaseUrl}/.default`);
  const consented = await approve(url);
  // The consent page's answer only yields the sign-in URL for the tenant's administrator.
  const signIn = ok(await cli.run(['connectors', 'consent-complete', consented])).trim();
  expect(signIn).toMatch(new RegExp(`^${emulator.authorityHost}/contoso\\.onmicrosoft\\.com/oauth2/v2\\.0/authorize\\?`));
  const location = await approve(signIn);
  const tokensBefore = emulator.requestsTo('login', '/token').filter((r) => r.tenantId === customer.tenantId).length;
  expect(ok(await cli.run(['connectors', 'consent-complete', location]))).toMatch(/consent granted by tenant contoso\.onmicrosoft\.com \(.*\): its administrator signed in and the token carries the required permissions/);
  // The grant rests on the redeemed sign-in and a token Entra ID issued for the tenant.
  expect(emulator.requestsTo('login', '/token').filter((r) => r.tenantId === customer.tenantId).length).toBe(tokensBefore + 2);
  const replay = await cli.run(['connectors', 'consent-complete', location]);
  expect(replay.code).not.toBe(0);
  expect(replay.stderr).toMatch(/already used/);
  // An error answer without any state (Microsoft sends some) names no request: nothing recorded.
  const stateless = new URL(redirectUri);
  stateless.searchParams.set('error', 'access_denied');
  stateless.searchParams.set('error_description', 'AADSTS65004: User declined to consent');
  const refused = await cli.run(['connectors', 'consent-complete', stateless.href]);
  expect(refused.code).toBe(1);
  expect(refused.stdout).toMatch(/^consent not granted: access_denied \(AADSTS65004: User declined to consent\)/);
  expect(refused.stderr).toMatch(/nothing was recorded/);
}, timeoutMs);

test("another account cannot add an integration on a tenant it holds no consent of, nor grant itself one by forging the redirect", async () => {
  ok(await cli.run(['accounts', 'add', 'fabrikam']));
  const refused = await cli.run(['integrations', 'add', '--account', 'fabrikam', '--kind', 'entra_id', '--name', 'Not mine', '--tenant', 'contoso.onmicrosoft.com', '--connector', 'dirsync']);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/^dirsync: the account holds no granted consent of tenant contoso\.onmicrosoft\.com to connector "dirsync": an Entra ID integration may use a tenant only through its own account's consent/);
  expect(ok(await cli.run(['integrations', 'list', '--account', 'fabrikam']))).not.toMatch(/Not mine/);

  // admin_consent=True typed by hand for a tenant that never consented: the token check says no.
  const lonely = emulator.createTenant({ domain: 'lonely.onmicrosoft.com' });
  const url = ok(await cli.run(['connectors', 'consent-url', 'dirsync', '--account', 'fabrikam', '--tenant', lonely.tenantId])).trim();
  const forged = new URL(redirectUri);
  forged.searchParams.set('admin_consent', 'True');
  forged.searchParams.set('tenant', lonely.tenantId);
  forged.searchParams.set('state', new URL(url).searchParams.get('state') ?? '');
  const signIn = ok(await cli.run(['connectors', 'consent-complete', forged.href])).trim();
  const answer = await cli.run(['connectors', 'consent-complete', await approve(signIn)]);
  expect(answer.code).toBe(1);
  expect(answer.stdout).toMatch(/not recorded as granted \(not_granted\): .*AADSTS700016/);
  const add = await cli.run(['integrations', 'add', '--account', 'fabrikam', '--kind', 'entra_id', '--name', 'Lonely', '--tenant', lonely.tenantId, '--connector', 'dirsync']);
  expect(add.code).not.toBe(0);
  expect(add.stderr).toMatch(/holds no granted consent/);
}, timeoutMs);

test('an Entra integration on the connector passes Test Connection and syncs through a worker', async () => {
  const id = ok(await cli.run(['integrations', 'add', '--account', 'contoso', '--kind', 'entra_id', '--name', 'Contoso', '--tenant', 'contoso.onmicrosoft.com', '--connector', 'dirsync', '--page-size', '9'])).trim();
  expect(ok(await cli.run(['integrations', 'test', id]))).toMatch(/✓ token: .*\n✓ users: .*\n✓ groups: .*\nmapped samples:\n(?:  user [0-9a-f-]{36}: \{"attributes":\{"accountEnabled":[^\n]*"userPrincipalName":.*\n)+connection OK/);
  await cli.startWorker('entra-cli-worker');
  const sync = ok(await cli.run(['sync', id, '--wait']));
  const [report] = parseRunReports(sync);
  expect(report?.fields['status']).toBe('succeeded');
  expect(report?.counts['created']).toBe(44);
  expect(report?.counts['members +']).toBe(48);
}, timeoutMs);

test('connectors rotate adds a new certificate and keeps the previous one', async () => {
  const out = ok(await cli.run(['connectors', 'rotate', 'dirsync']));
  expect(out).toMatch(/new certificate:\s+[0-9A-F]{40}/);
  expect(out).not.toMatch(/PRIVATE KEY/);
  const show = ok(await cli.run(['connectors', 'show', 'dirsync']));
  expect(show).toMatch(/current/);
  expect(show).toMatch(/previous/);
  expect(emulator.application(appId).keyCredentials).toHaveLength(2);

  // Again, as a script reads it: the first certificate (no longer previous) leaves the app.
  const certificates = (JSON.parse(ok(await cli.run(['connectors', 'show', 'dirsync', '--json']))) as { certificates: { status: string; thumbprint: string }[] }).certificates;
  const previous = certificates.find((certificate) => certificate.status === 'previous')?.thumbprint;
  expect(previous).toMatch(/^[0-9A-F]{40}$/);
  const again = rotationJsonSchema.parse(JSON.parse(ok(await cli.run(['connectors', 'rotate', 'dirsync', '--json']))));
  if (again.status !== 'rotated') throw new Error(`not rotated: ${JSON.stringify(again)}`);
  expect(again.thumbprint).toMatch(/^[0-9A-F]{40}$/);
  expect(Date.parse(again.notAfter)).toBeGreaterThan(Date.now());
  expect(again.removed).toEqual([previous]);
  expect(again.removalErrors).toEqual([]);
  expect(emulator.application(appId).keyCredentials).toHaveLength(2);
}, timeoutMs);

test('a legacy integration is listed with the deadline, migrates only with a description, and is reminded', async () => {
  const legacyTenant = emulator.createTenant({ domain: 'fabrikam.onmicrosoft.com' });
  const legacyApp = emulator.registerApplication({ homeTenantId: legacyTenant.tenantId, displayName: 'old sync app', clientSecret: 'fabrikam-old-secret' });
  populateEntraTenant(legacyTenant, { users: 5, groups: 1, membersPerGroup: 2, seed: 3 });
  const id = ok(
    await cli.run(
      ['integrations', 'add', '--account', 'contoso', '--kind', 'entra_id', '--name', 'Fabrikam', '--tenant', legacyTenant.tenantId,
        '--legacy-client-id', legacyApp.appId, '--authority-host', emulator.authorityHost, '--graph-url', emulator.graphBaseUrl, '--ca-file', caFile, '--password-stdin'],
      { input: 'fabrikam-old-secret\n' },
    ),
  ).trim();

  // set-password --json: as PUT /v1/integrations/{id}/secret answers; a refused secret still
  // prints the checklist (sync null) and exits 1, the stored one kept.
  const passwordAnswer = secretAcceptedSchema.extend({ sync: syncAnswerSchema.nullable() }).strict();
  const refused = await cli.run(['integrations', 'set-password', id, '--password-stdin', '--json'], { input: 'fabrikam-wrong-secret\n' });
  expect({ code: refused.code, stderr: refused.stderr }).toEqual({ code: 1, stderr: 'dirsync: the new password was not stored: Test Connection failed (the old password stays in use)\n' });
  expect(passwordAnswer.parse(JSON.parse(refused.stdout))).toMatchObject({ connection: { ok: false }, sync: null });
  const stored = await cli.run(['integrations', 'set-password', id, '--password-stdin', '--wait', '--json'], { input: 'fabrikam-old-secret\n' });
  expect({ code: stored.code, stderr: stored.stderr }).toEqual({ code: 0, stderr: '' });
  const storedAnswer = passwordAnswer.parse(JSON.parse(stored.stdout));
  expect(storedAnswer).toMatchObject({ connection: { ok: true }, sync: { mode: 'full', run: { integrationId: id, trigger: 'password_update', status: 'succeeded' } } });
  expect(storedAnswer.sync?.run?.id).toBe(storedAnswer.sync?.runId);

  const deadline = migrationDeadlineJsonSchema.strict().parse(JSON.parse(ok(await cli.run(['migration-deadline', '2024-08-18', '--json']))));
  expect(deadline).toEqual({ deadline: '2024-08-18T23:59:59.999Z' });
  expect(JSON.parse(ok(await cli.run(['migration-deadline', '--json'])))).toEqual(deadline);
  const badDate = await cli.run(['migration-deadline', 'next tuesday', '--json']);
  expect({ code: badDate.code, stdout: badDate.stdout }).toEqual({ code: 2, stdout: '' });
  const actions = ok(await cli.run(['actions-needed']));
  expect(actions).toMatch(new RegExp(`migrate legacy Entra ID integration "Fabrikam" \\(${id}.*deadline 2024-08-18 PASSED`));
  const json = actionsNeededJsonSchema.parse(JSON.parse(ok(await cli.run(['actions-needed', '--json']))));
  expect(json).toEqual(
    expect.arrayContaining([{ kind: 'migrate_legacy_integration', integrationId: id, accountId: expect.any(String), name: 'Fabrikam', tenantId: legacyTenant.tenantId.toLowerCase(), deadline: deadline.deadline, overdue: true }]),
  );

  const noDescription = await cli.run(['integrations', 'migrate', id, '--connector', 'dirsync', '--description', '']);
  expect(noDescription.code).not.toBe(0);
  expect(noDescription.stderr).toMatch(/description is required/);
  const noConsent = await cli.run(['integrations', 'migrate', id, '--connector', 'dirsync', '--description', 'Fabrikam staff']);
  expect(noConsent.stderr).toMatch(/account holds no granted consent of tenant .* consent-url dirsync --account <account> --tenant/);

  const consentUrl = consentUrlSchema.strict().parse(JSON.parse(ok(await cli.run(['connectors', 'consent-url', 'dirsync', '--account', 'contoso', '--tenant', legacyTenant.tenantId, '--json']))));
  expect(Date.parse(consentUrl.expiresAt)).toBeGreaterThan(Date.now());
  ok(await cli.run(['connectors', 'consent-complete', await approve(ok(await cli.run(['connectors', 'consent-complete', await approve(consentUrl.url)])).trim())]));
  const unknown = await cli.run(['integrations', 'migrate', '00000000-0000-4000-8000-000000000000', '--connector', 'dirsync', '--description', 'x', '--json']);
  expect({ code: unknown.code, stdout: unknown.stdout }).toEqual({ code: 3, stdout: '' });
  const migrated = migratedIntegrationSchema.strict().parse(JSON.parse(ok(await cli.run(['integrations', 'migrate', id, '--connector', 'dirsync', '--description', 'Fabrikam staff', '--json']))));
  expect(migrated).toMatchObject({ id, name: 'Fabrikam', description: 'Fabrikam staff', hasSecret: false, legacyClientId: legacyApp.appId, tenantId: legacyTenant.tenantId.toLowerCase(), sync: { mode: 'full' } });
  expect(migrated.settings).not.toHaveProperty('legacyApp');
  // Migrating again: nothing to migrate, a failure (exit 1), nothing on stdout.
  const again = await cli.run(['integrations', 'migrate', id, '--connector', 'dirsync', '--description', 'Fabrikam staff', '--json']);
  expect({ code: again.code, stdout: again.stdout }).toEqual({ code: 1, stdout: '' });
  expect(again.stderr).toMatch(/not a legacy Entra ID integration/);
  const after = ok(await cli.run(['actions-needed']));
  expect(after).not.toMatch(/migrate legacy Entra ID integration "Fabrikam"/);
  expect(after).toMatch(new RegExp(`delete its old app registration ${legacyApp.appId}`));
  const runs = ok(await cli.run(['runs', 'list', '--integration', id]));
  expect(runs).toMatch(/full/);
}, timeoutMs);

test('nothing printed or logged by any command or the worker holds a private key or a secret', () => {
  const transcript = cli.transcript();
  expect(transcript).not.toMatch(/PRIVATE KEY/);
  expect(transcript).not.toContain('fabrikam-old-secret');
  expect(transcript).not.toContain('fabrikam-wrong-secret');
  expect(transcript).not.toMatch(/eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}/);
});
