import { randomUUID } from 'node:crypto';
import { request } from 'node:https';
import { cpus, loadavg } from 'node:os';
import {
  acceptConsentRedirect,
  createAccount,
  createConnector,
  createConsentRequest,
  createIntegration,
  type Db,
  type KeyRing,
} from '@dirsync/db';
import {
  EntraTokenCache,
  entraIdSettingsSchema,
  type GeneratedCertificate,
  generateCertificate,
  GraphClient,
  groupProperties,
  userProperties,
  withMappedSources,
} from '@dirsync/providers';
import { type EntraEmulator, populateEntraTenant, startEntraEmulator, testDestinations } from '@dirsync/testkit';
import { verifyTenantConsent } from '@dirsync/worker';
import { table } from '@dirsync/cli';
import { copyFloor } from './database-floor.ts';
import { round2, seconds, startBenchHarness } from './harness.ts';

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
): Promise<{ connectorId: string; appId: string; customerTenantId: string; consentUrl: string; certificate: GeneratedCertificate }> {
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
  return { connectorId: connector.id, appId: app.appId, customerTenantId: customer.tenantId, consentUrl: consent.url, certificate };
}


/**
 * The Entra ID floor: the pages a full sync reads (the initial rounds of `users/delta` and
 * `groups/delta`, with the same `$select` and page size), fetched through the same Graph client
 * and discarded. The token is fetched before the clock starts. `cpu` is this process's CPU
 * meanwhile: the client's and the emulator's, which answers from this process.
 */
async function graphFloor(
  emulator: EntraEmulator,
  tenantId: string,
  appId: string,
  certificate: GeneratedCertificate,
): Promise<{ ms: number; requests: number; records: number; cpu: number }> {
  const settings = entraIdSettingsSchema.parse({
    tenantId,
    connectorId: randomUUID(),
    authorityHost: emulator.authorityHost,
    graphBaseUrl: emulator.graphBaseUrl,
    caPem: emulator.caPem,
  });
  const client = new GraphClient(
    settings,
    { kind: 'certificate', clientId: appId, certificatePem: certificate.certificatePem, privateKeyPem: certificate.privateKeyPem },
    { destinations: testDestinations, tokenCache: new EntraTokenCache() },
  );
  const signal = new AbortController().signal;
  const selects = {
    users: withMappedSources(['id', ...userProperties], undefined, 'user').join(','),
    groups: withMappedSources(['id', ...groupProperties, 'members'], undefined, 'group').join(','),
  };
  let requests = 0;
  let records = 0;
  try {
    await client.token(signal);
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    for (const resource of ['users', 'groups'] as const) {
      let next: string | undefined = `${settings.graphBaseUrl}/v1.0/${resource}/delta?$select=${selects[resource]}`;
      while (next !== undefined) {
        const body = (await client.getJson(next, signal, { prefer: `odata.maxpagesize=${settings.pageSize}` })) as { value?: unknown[]; '@odata.nextLink'?: string };
        requests += 1;
        records += body.value?.length ?? 0;
        next = body['@odata.nextLink'];
      }
    }
    const ms = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    return { ms, requests, records, cpu: round2((cpu.user + cpu.system) / 1e6) };
  } finally {
    await client.close();
  }
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

    log('measuring the floor: the full sync\'s Graph pages fetched and discarded…');
    const floor = await graphFloor(emulator, setup.customerTenantId, setup.appId, setup.certificate);

    log('full sync…');
    const graphBefore = emulator.requestsTo('graph').length;
    const loginBefore = emulator.requestsTo('login').length;
    // The emulator answers from this process.
    const fullCpu = await bench.cpuDuring(process.pid, () => bench.runSync(integration.id, 'full'));
    const full = fullCpu.value;
    // The peak so far (the kernel's high-water mark only grows): which sync sets the peak.
    const peakAfterFullMB = (await worker.peakRssMB()) ?? Number.NaN;
    if (full.created !== objects) throw new Error(`full sync created ${full.created} objects, expected ${objects}`);
    // Counted from the emulator's log, which keeps its latest 20,000 requests.
    const fullGraphRequests = emulator.requestsTo('graph').length - graphBefore;
    const fullTokenRequests = emulator.requestsTo('login').length - loginBefore;
    log('unchanged full sync…');
    const unchangedCpu = await bench.cpuDuring(process.pid, () => bench.runSync(integration.id, 'full'));
    const unchanged = unchangedCpu.value;
    if (unchanged.unchanged !== objects) throw new Error(`unchanged full sync found ${unchanged.unchanged} unchanged, expected ${objects}`);
    log(`changing ${options.changes} users, delta sync…`);
    const step = Math.max(1, Math.floor(options.users / options.changes));
    for (let i = 0; i < options.changes; i++) tenant.updateUser(generated.userIds[(i * step) % options.users] as string, { jobTitle: `Benchmark ${i}` });
    const graphBeforeDelta = emulator.requestsTo('graph').length;
    const delta = await bench.runSync(integration.id, 'delta');
    if (delta.updated !== options.changes) throw new Error(`delta updated ${delta.updated} objects, expected ${options.changes}`);
    const deltaGraphRequests = emulator.requestsTo('graph').length - graphBeforeDelta;
    const peakRssMB = (await worker.peakRssMB()) ?? Number.NaN;
    const allocator = await bench.workerAllocator();
    log('measuring the database floor: COPY of the objects, edges and change feed entries the sync wrote…');
    const copy = await copyFloor(options.databaseUrl, integration.id, full.id);
    if (copy.objects !== objects || copy.edges !== generated.memberships || copy.changes === 0) {
      throw new Error(`the database floor wrote ${copy.objects} objects, ${copy.edges} edges and ${copy.changes} feed rows, expected ${objects}, ${generated.memberships} and some`);
    }

    const graphPages = emulator.requestsTo('graph', '/delta').length;
    const fullSeconds = seconds(full.durationMs ?? 0);
    const floorSeconds = seconds(floor.ms);
    const ratioToFloor = Math.round((fullSeconds / floorSeconds) * 100) / 100;
    // What no sync can beat on this machine: fetching the pages and writing the rows take this
    // much CPU on its cores, and the rows take this long to write whatever else runs.
    const cpuFloor = round2((floor.cpu + copy.postgresCpu) / cpus().length);
    const copySeconds = seconds(copy.ms);
    const goals = {
      ratioToFloor: { goal: '<= 1.5', met: ratioToFloor <= 1.5 },
      peakRssMB: { goal: '<= 256', met: peakRssMB <= 256 },
    };
    const results = {
      date: new Date().toISOString(),
      directory: 'entra_id (emulated Graph over HTTPS)',
      objects,
      users: options.users,
      groups: options.groups,
      membersPerGroup: options.membersPerGroup,
      memberships: generated.memberships,
      machine: { cpus: cpus().length, loadAverage: loadavg().map((n) => Math.round(n * 100) / 100), node: process.version },
      floor: { seconds: floorSeconds, graphRequests: floor.requests, records: floor.records, cpuSeconds: floor.cpu },
      // Every row the first full sync wrote, copied again into empty tables (see the LDAP benchmark).
      databaseFloor: { seconds: copySeconds, postgresCpuSeconds: copy.postgresCpu, edgesAloneSeconds: seconds(copy.edgesAloneMs), ratioToFloor: round2(copySeconds / floorSeconds) },
      cpuFloor: { seconds: cpuFloor, ratioToFloor: round2(cpuFloor / floorSeconds) },
      fullSync: { seconds: fullSeconds, objectsPerSecond: Math.round(objects / fullSeconds), ratioToFloor, graphRequests: fullGraphRequests, tokenRequests: fullTokenRequests },
      unchangedFullSync: { seconds: seconds(unchanged.durationMs ?? 0), objectsPerSecond: Math.round(objects / seconds(unchanged.durationMs ?? 1)) },
      deltaSync: { seconds: seconds(delta.durationMs ?? 0), changes: options.changes, objectsPerSecond: Math.round(options.changes / seconds(delta.durationMs ?? 1)), graphRequests: deltaGraphRequests },
      graphDeltaRequests: graphPages,
      // The worker's CPU time during each full sync (user and system).
      worker: { peakRssMB: Math.round(peakRssMB), peakRssAfterFirstFullSyncMB: Math.round(peakAfterFullMB), allocator, cpuSeconds: { fullSync: fullCpu.worker, unchangedFullSync: unchangedCpu.worker } },
      // What the database and the emulator (this process) used meanwhile, on the same cores.
      postgres: { cpuSeconds: { fullSync: fullCpu.postgres, unchangedFullSync: unchangedCpu.postgres } },
      emulator: { cpuSeconds: { fullSync: fullCpu.directory, unchangedFullSync: unchangedCpu.directory } },
      goals,
    };
    const verdict = (goal: { goal: string; met: boolean }) => `${goal.goal}: ${goal.met ? 'met' : 'NOT met'}`;
    const rows: [string, string, string, string][] = [
      [`floor: the same Graph pages fetched and discarded (${floor.requests} requests)`, `${floorSeconds}s`, `${Math.round(objects / floorSeconds)} objects/s`, ''],
      [`database floor: COPY of the sync's ${copy.objects} objects + ${copy.edges} edges + ${copy.changes} feed rows; / floor`, `${copySeconds}s`, String(results.databaseFloor.ratioToFloor), ''],
      [`CPU floor: the CPU of both floors (client and emulator ${floor.cpu}s, PostgreSQL ${copy.postgresCpu}s) / ${cpus().length} CPUs; / floor`, `${cpuFloor}s`, String(results.cpuFloor.ratioToFloor), ''],
      [`first full sync (${fullGraphRequests} Graph requests, ${fullTokenRequests} token requests)`, `${fullSeconds}s`, `${results.fullSync.objectsPerSecond} objects/s`, ''],
      ['first full sync / floor', String(ratioToFloor), '', verdict(goals.ratioToFloor)],
      ['unchanged full sync', `${results.unchangedFullSync.seconds}s`, `${results.unchangedFullSync.objectsPerSecond} objects/s`, ''],
      [`delta, ${options.changes} changes (${deltaGraphRequests} Graph requests)`, `${results.deltaSync.seconds}s`, `${results.deltaSync.objectsPerSecond} objects/s`, ''],
      ['Graph delta pages served in all', String(graphPages), '', ''],
      ['worker CPU during the first and the unchanged full sync', `${results.worker.cpuSeconds.fullSync}s, ${results.worker.cpuSeconds.unchangedFullSync}s`, '', ''],
      ['PostgreSQL CPU during the same', `${results.postgres.cpuSeconds.fullSync}s, ${results.postgres.cpuSeconds.unchangedFullSync}s`, '', ''],
      ['emulator (this process) CPU during the same', `${results.emulator.cpuSeconds.fullSync}s, ${results.emulator.cpuSeconds.unchangedFullSync}s`, '', ''],
      [`worker peak RSS, allocator ${allocator}; by the end of the first full sync`, `${results.worker.peakRssMB} MB; ${results.worker.peakRssAfterFirstFullSyncMB} MB`, '', verdict(goals.peakRssMB)],
    ];
    log(`\n${table(['measure', 'time', 'rate', 'goal'], rows)}\n`);
    log(`load average during the run: ${results.machine.loadAverage.join(', ')} on ${results.machine.cpus} CPUs`);
    log(`results written to ${await bench.writeResults('entra-', results)}`);
    return results;
  } finally {
    await bench.close();
    await emulator.close();
  }
}
