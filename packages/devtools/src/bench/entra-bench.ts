import { request } from 'node:https';
import { cpus } from 'node:os';
import {
  acceptConsentRedirect,
  createAccount,
  createConnector,
  createConsentRequest,
  createIntegration,
  type Db,
  type KeyRing,
} from '@dirsync/db';
import { generateCertificate } from '@dirsync/providers';
import { type EntraEmulator, populateEntraTenant, startEntraEmulator, testDestinations } from '@dirsync/testkit';
import { verifyTenantConsent } from '@dirsync/worker';
import { table } from '@dirsync/cli';
import { seconds, startBenchHarness } from './harness.ts';

/** Size of the emulated tenant and where results go. */
export interface EntraBenchOptions {
  users: number;
  groups: number;
  membersPerGroup: number;
  changes: number;
  databaseUrl: string;
  redisUrl: string;
  resultsDir: string;
  log: (line: string) => void;
}

const consentRedirect = 'https://dirsync.invalid/entra/consent';

/** Follows an emulated page (admin consent, sign-in) as an administrator who approves, returning the redirect. */
function approveConsent(url: string, ca: string): Promise<URL> {
  return new Promise((resolve, reject) => {
    request(url, { ca }, (response) => {
      response.resume();
      const location = response.headers.location;
      if (response.statusCode === 302 && location) resolve(new URL(location));
      else reject(new Error(`the consent page answered ${response.statusCode ?? '?'}`));
    })
      .on('error', reject)
      .end();
  });
}

/**
 * A connector registered in the emulator (certificate uploaded) and in the database, and a
 * customer tenant that granted consent to `accountId` through the admin-consent flow (consent
 * page, the administrator's sign-in, then the checks a worker makes). Shared by the benchmark and the demo.
 */
export async function setUpEmulatedConnector(
  db: Db,
  ring: KeyRing,
  emulator: EntraEmulator,
  name: string,
  accountId: string,
): Promise<{ connectorId: string; appId: string; customerTenantId: string; consentUrl: string }> {
  const home = emulator.createTenant({ domain: 'dirsync-platform.onmicrosoft.com' });
  const certificate = await generateCertificate({ subject: `dirsync connector ${name}`, validityDays: 30 });
  const app = emulator.registerApplication({
    homeTenantId: home.tenantId,
    displayName: 'dirsync directory sync',
    certificates: [certificate.certificatePem],
    redirectUris: [consentRedirect],
  });
  const connector = await createConnector(
    db,
    ring,
    {
      name,
      description: 'Directory sync connector (emulated Entra ID)',
      clientId: app.appId,
      applicationObjectId: app.objectId,
      homeTenantId: home.tenantId,
      redirectUri: consentRedirect,
      authorityHost: emulator.authorityHost,
      graphBaseUrl: emulator.graphBaseUrl,
      tlsCaPem: emulator.caPem,
      // The key id the registration gave the first certificate: rotations remove it by this id.
      graphKeyId: app.keyCredentials[0]?.keyId ?? null,
    },
    certificate,
  );
  const customer = emulator.createTenant({ domain: 'contoso.onmicrosoft.com' });
  const consent = await createConsentRequest(db, ring, { accountId, connectorId: connector.id, tenantId: customer.tenantId });
  const consented = await acceptConsentRedirect(db, ring, (await approveConsent(consent.url, emulator.caPem)).searchParams);
  if (consented.kind !== 'sign_in') throw new Error(`consent was not answered with a sign-in: ${consented.kind}`);
  // The emulator signs in a Global Administrator of the tenant the sign-in URL names.
  const redirect = await acceptConsentRedirect(db, ring, (await approveConsent(consented.url, emulator.caPem)).searchParams);
  if (redirect.kind !== 'verify') throw new Error(`the administrator's sign-in was not answered with a code: ${redirect.kind}`);
  // The emulator listens on loopback, which only the test destination policy allows.
  const outcome = await verifyTenantConsent({ db, keyRing: ring, destinations: testDestinations }, redirect.request.nonce);
  if (outcome.outcome !== 'granted') throw new Error(`consent was not granted: ${outcome.outcome} ${outcome.detail ?? ''}`);
  return { connectorId: connector.id, appId: app.appId, customerTenantId: customer.tenantId, consentUrl: consent.url };
}


/**
 * The Entra ID benchmark: a worker process syncs an emulated tenant (HTTPS Graph delta from the
 * emulator in this process) into a clean database: full sync, unchanged full sync, and a delta of
 * `changes` user changes. Prints objects per second and writes `entra-latest.json`.
 */
export async function runEntraBench(options: EntraBenchOptions): Promise<Record<string, unknown>> {
  const { log } = options;
  const objects = options.users + options.groups;
  const emulator = await startEntraEmulator();
  const bench = await startBenchHarness({ label: 'entra-bench', databaseUrl: options.databaseUrl, redisUrl: options.redisUrl, resultsDir: options.resultsDir });
  const { db, ring, worker } = bench;
  try {
    const account = await createAccount(db, { name: 'entra bench' });
    const setup = await setUpEmulatedConnector(db, ring, emulator, 'bench', account.id);
    log(`generating an emulated tenant of ${options.users.toLocaleString('en-US')} users and ${options.groups.toLocaleString('en-US')} groups of ${options.membersPerGroup} members…`);
    const tenant = emulator.tenant(setup.customerTenantId);
    const generated = populateEntraTenant(tenant, { users: options.users, groups: options.groups, membersPerGroup: options.membersPerGroup });
    const integration = await createIntegration(db, {
      accountId: account.id,
      kind: 'entra_id',
      name: 'emulated tenant',
      settings: { tenantId: setup.customerTenantId, connectorId: setup.connectorId },
      deleteThresholdCount: objects,
      deleteThresholdPercent: 100,
    });

    log('full sync…');
    const full = await bench.runSync(integration.id, 'full');
    if (full.created !== objects) throw new Error(`full sync created ${full.created} objects, expected ${objects}`);
    log('unchanged full sync…');
    const unchanged = await bench.runSync(integration.id, 'full');
    if (unchanged.unchanged !== objects) throw new Error(`unchanged full sync found ${unchanged.unchanged} unchanged, expected ${objects}`);
    log(`changing ${options.changes} users, delta sync…`);
    const step = Math.max(1, Math.floor(options.users / options.changes));
    for (let i = 0; i < options.changes; i++) tenant.updateUser(generated.userIds[(i * step) % options.users] as string, { jobTitle: `Benchmark ${i}` });
    const delta = await bench.runSync(integration.id, 'delta');
    if (delta.updated !== options.changes) throw new Error(`delta updated ${delta.updated} objects, expected ${options.changes}`);
    const peakRssMB = (await worker.peakRssMB()) ?? Number.NaN;

    const graphPages = emulator.requestsTo('graph', '/delta').length;
    const fullSeconds = seconds(full.durationMs ?? 0);
    const results = {
      date: new Date().toISOString(),
      directory: 'entra_id (emulated Graph over HTTPS)',
      objects,
      users: options.users,
      groups: options.groups,
      membersPerGroup: options.membersPerGroup,
      memberships: generated.memberships,
      machine: { cpus: cpus().length, node: process.version },
      fullSync: { seconds: fullSeconds, objectsPerSecond: Math.round(objects / fullSeconds) },
      unchangedFullSync: { seconds: seconds(unchanged.durationMs ?? 0), objectsPerSecond: Math.round(objects / seconds(unchanged.durationMs ?? 1)) },
      deltaSync: { seconds: seconds(delta.durationMs ?? 0), changes: options.changes, objectsPerSecond: Math.round(options.changes / seconds(delta.durationMs ?? 1)) },
      graphDeltaRequests: graphPages,
      worker: { peakRssMB: Math.round(peakRssMB) },
    };
    const rows: [string, string, string][] = [
      ['first full sync', `${fullSeconds}s`, `${results.fullSync.objectsPerSecond} objects/s`],
      ['unchanged full sync', `${results.unchangedFullSync.seconds}s`, `${results.unchangedFullSync.objectsPerSecond} objects/s`],
      [`delta, ${options.changes} changes`, `${results.deltaSync.seconds}s`, `${results.deltaSync.objectsPerSecond} objects/s`],
      ['Graph delta pages served', String(graphPages), ''],
      ['worker peak RSS', `${results.worker.peakRssMB} MB`, ''],
    ];
    log(`\n${table(['measure', 'time', 'rate'], rows)}\n`);
    log(`results written to ${await bench.writeResults('entra-', results)}`);
    return results;
  } finally {
    await bench.close();
    await emulator.close();
  }
}
