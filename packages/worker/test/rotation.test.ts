import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import {
  addPendingCredential,
  getConnector,
  listActionsNeeded,
  listAudit,
  listConnectorCredentials,
  setCredentialGraphKeyId,
  withCurrentCredential,
} from '@dirsync/db';
import { createRotationEnqueueClient } from '@dirsync/jobs';
import { EntraTokenCache, generateCertificate, GraphClient } from '@dirsync/providers';
import { createTestQueuePrefix, testDestinations, testRedisUrl, waitFor } from '@dirsync/testkit';
import { createEntraAwareProviderFactory } from '../src/entra/index.ts';
import { rotateConnectorCredential } from '../src/rotation/index.ts';
import { createWorker } from '../src/worker.ts';
import { type EntraWorld, startEntraWorld } from './entra-helpers.ts';

// Daily rotation of the connector certificate against the emulated app registration: addKey with
// a proof signed by the current key, the switch, removeKey of keys older than the overlap, and
// the failure paths. Tests continue from the state the previous one left.

const timeoutMs = 60_000;
let world: EntraWorld;
const noWait = async () => {};
const day = (n: number) => new Date(Date.UTC(2030, 0, n, 3, 0, 0));

/** Thumbprints registered on the emulated app. */
function appThumbprints(): string[] {
  return world.app.keyCredentials.map((k) => k.customKeyIdentifier).sort();
}

async function credentials() {
  return listConnectorCredentials(world.db, world.connector.id);
}

async function thumbprints(status: string): Promise<string[]> {
  return (await credentials()).filter((c) => c.status === status).map((c) => c.thumbprint);
}

/** A token for the customer tenant through the worker's provider factory (the current certificate). */
async function syncToken(tenantId: string): Promise<string> {
  const factory = createEntraAwareProviderFactory({ db: world.db, keyRing: world.ring, tokenCache: new EntraTokenCache(), destinations: testDestinations });
  const provider = await factory('entra_id', { tenantId, connectorId: world.connector.id }, undefined, { accountId: world.accountId, integrationId: randomUUID() });
  try {
    const report = await provider.testConnection();
    if (!report.ok) throw new Error(report.checks.map((c) => c.detail).join('; '));
    return 'ok';
  } finally {
    await provider.close();
  }
}

function rotate(slot: Date | null, options: { acceptanceWaitMs?: number } = {}) {
  return rotateConnectorCredential({ db: world.db, keyRing: world.ring, connectorId: world.connector.id, slot, actor: 'test', sleep: noWait, destinations: testDestinations, ...options });
}

/** Graph requests that read the app registration (which the connector has no permission for). */
function applicationReads() {
  return world.emulator.requestsTo('graph', `/applications/${world.app.objectId}`).filter((r) => r.method === 'GET');
}

let customer: string;

beforeAll(async () => {
  world = await startEntraWorld('rotation');
  customer = (await world.consentedTenant()).tenantId;
}, timeoutMs);

afterAll(async () => {
  await world?.close();
}, timeoutMs);

test('a rotation adds a new certificate, switches token acquisition to it and keeps the old one as previous', async () => {
  const [initial] = await thumbprints('current');
  expect(appThumbprints()).toEqual([initial]);
  const result = await rotate(day(1));
  expect(result.status).toBe('rotated');
  if (result.status !== 'rotated') return;
  expect(await thumbprints('current')).toEqual([result.thumbprint]);
  expect(await thumbprints('previous')).toEqual([initial]);
  expect(appThumbprints()).toEqual([initial, result.thumbprint].sort());
  expect(result.removed).toEqual([]);
  // The proof was accepted by the emulated Graph (it checks signature, aud, iss, lifetime).
  expect(world.emulator.requestsTo('graph', '/addKey').map((r) => r.status)).toEqual([200]);
  // Syncs now authenticate with the new certificate: remove the old one from the app and sync.
  world.emulator.removeApplicationCertificate(world.app.appId, initial as string);
  expect(await syncToken(customer)).toBe('ok');
  // Registered again by hand, under a new key id, which the operator records.
  const initialCredential = (await credentials()).find((c) => c.thumbprint === initial);
  await setCredentialGraphKeyId(world.db, initialCredential?.id as string, world.emulator.addApplicationCertificate(world.app.appId, initialCredential?.certificatePem as string));
  const connector = await getConnector(world.db, world.connector.id);
  expect(connector).toMatchObject({ lastRotationStatus: 'succeeded', lastRotationError: null, rotatedSlot: day(1) });
  const audit = await listAudit(world.db, { limit: 10 });
  expect(audit.find((e) => e.action === 'connector.credential.rotated')?.details).toMatchObject({ thumbprint: result.thumbprint, previousThumbprint: initial });
  expect(JSON.stringify(audit)).not.toContain('PRIVATE KEY');
}, timeoutMs);

test('running the same slot twice does nothing the second time', async () => {
  const before = appThumbprints();
  const history = (await credentials()).length;
  expect(await rotate(day(1))).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/already rotated/) });
  expect(appThumbprints()).toEqual(before);
  expect((await credentials()).length).toBe(history);
}, timeoutMs);

test('the next rotation removes the key older than the overlap: current and previous stay', async () => {
  const [initial] = await thumbprints('previous');
  const [first] = await thumbprints('current');
  const result = await rotate(day(2));
  if (result.status !== 'rotated') throw new Error('expected a rotation');
  expect(result.removed).toEqual([initial]);
  expect(appThumbprints()).toEqual([first, result.thumbprint].sort());
  expect(await thumbprints('removed')).toEqual([initial]);
  expect(world.emulator.requestsTo('graph', '/removeKey').map((r) => r.status)).toEqual([204]);
  expect(await syncToken(customer)).toBe('ok');
  const history = await credentials();
  expect(history.map((c) => c.status)).toEqual(['current', 'previous', 'removed']);
}, timeoutMs);

test('a failed rotation is recorded and reported, the current key keeps working, and a retry finishes it', async () => {
  const [current] = await thumbprints('current');
  const appBefore = appThumbprints();
  world.emulator.injectFault({ service: 'graph', path: '/addKey', status: 500, times: 10 });
  await expect(rotate(day(3))).rejects.toThrow(/failed POST .*addKey/);
  world.emulator.faults.clear();
  expect(await thumbprints('current')).toEqual([current]);
  expect(appThumbprints()).toEqual(appBefore);
  expect(await syncToken(customer)).toBe('ok');
  const connector = await getConnector(world.db, world.connector.id);
  expect(connector).toMatchObject({ lastRotationStatus: 'failed' });
  expect(connector?.lastRotationError).toMatch(/addKey/);
  expect((await listActionsNeeded(world.db)).find((a) => a.kind === 'rotation_failed')).toMatchObject({ connectorId: world.connector.id });
  expect((await listAudit(world.db, { limit: 5 })).some((e) => e.action === 'connector.credential.rotation_failed')).toBe(true);
  const pending = await thumbprints('pending');
  expect(pending).toHaveLength(1);

  const retried = await rotate(day(3));
  if (retried.status !== 'rotated') throw new Error('expected a rotation');
  // Whether the failed addKey added it cannot be known without reading the app: the certificate
  // made by the failed attempt is given up and a new one added.
  expect(retried.thumbprint).not.toBe(pending[0]);
  expect((await credentials()).find((c) => c.thumbprint === pending[0])?.status).toBe('abandoned');
  expect((await listActionsNeeded(world.db)).some((a) => a.kind === 'rotation_failed')).toBe(false);
}, timeoutMs);

test('an attempt interrupted after addKey is resumed without adding the key twice', async () => {
  const addKeysBefore = world.emulator.requestsTo('graph', '/addKey').filter((r) => r.status === 200).length;
  // Entra ID does not accept the new key yet (as while a new key propagates), after it was added
  // to the app: the current key's token request goes through, the new key's is refused.
  world.emulator.injectFault({ service: 'login', path: '/token', status: 401, code: 'invalid_client', skip: 1 });
  await expect(rotate(day(4), { acceptanceWaitMs: 0 })).rejects.toThrow(/does not accept it yet/);
  world.emulator.faults.clear();
  const [pending] = await thumbprints('pending');
  expect(appThumbprints()).toContain(pending);
  // Its key id was stored with it: the resumed attempt needs no listing of the app.
  expect((await credentials()).find((c) => c.thumbprint === pending)?.graphKeyId).toBe(world.app.keyCredentials.find((k) => k.customKeyIdentifier === pending)?.keyId);
  const resumed = await rotate(day(4));
  expect(resumed).toMatchObject({ status: 'rotated', thumbprint: pending });
  expect(world.emulator.requestsTo('graph', '/addKey').filter((r) => r.status === 200).length).toBe(addKeysBefore + 1);
  expect(appThumbprints()).toHaveLength(2);
}, timeoutMs);

test('a refused new key is probed again within the job until Entra ID accepts it', async () => {
  const tokensBefore = world.emulator.requestsTo('login', '/token').length;
  world.emulator.injectFault({ service: 'login', path: '/token', status: 401, code: 'invalid_client', skip: 1, times: 2 });
  const result = await rotate(null);
  world.emulator.faults.clear();
  expect(result).toMatchObject({ status: 'rotated' });
  // The current key's token, two refused probes, the accepted one.
  expect(world.emulator.requestsTo('login', '/token').slice(tokensBefore).map((r) => r.status)).toEqual([200, 401, 401, 200]);
  expect(appThumbprints()).toHaveLength(2);
}, timeoutMs);

test("a pending certificate whose addKey answer was lost is abandoned and replaced, without reading the app", async () => {
  const lost = await generateCertificate({ subject: 'lost addKey answer', validityDays: 30 });
  await addPendingCredential(world.db, world.ring, world.connector.id, lost, null);
  const result = await rotate(null);
  if (result.status !== 'rotated') throw new Error('expected a rotation');
  expect(result.thumbprint).not.toBe(lost.thumbprint);
  expect((await credentials()).find((c) => c.thumbprint === lost.thumbprint)?.status).toBe('abandoned');
  expect(appThumbprints()).not.toContain(lost.thumbprint);
  expect((await listAudit(world.db, { limit: 10 })).some((e) => e.action === 'connector.credential.abandoned')).toBe(true);
}, timeoutMs);

test('a rotation that cannot prove possession fails without retry and changes nothing', async () => {
  // The current key is gone from the app (an administrator removed it): Entra refuses it.
  const [current] = await thumbprints('current');
  const credential = (await credentials()).find((c) => c.thumbprint === current);
  world.emulator.removeApplicationCertificate(world.app.appId, current as string);
  const error = await rotate(day(5)).catch((e: unknown) => e);
  // Tokens still come with the previous key (the fallback), but Graph refuses the proof signed
  // by a key the app no longer has.
  expect(error).toMatchObject({ retryable: false, message: expect.stringMatching(/Proof of possession validation failed/) });
  expect(await thumbprints('current')).toEqual([current]);
  await setCredentialGraphKeyId(world.db, credential?.id as string, world.emulator.addApplicationCertificate(world.app.appId, credential?.certificatePem as string));
}, timeoutMs);

test('the rotation queue worker runs scheduled and on-demand jobs; a slot enqueued twice runs once', async () => {
  const prefix = createTestQueuePrefix('rotation');
  const client = createRotationEnqueueClient({ connection: testRedisUrl, prefix: prefix.prefix });
  const worker = createWorker({
    db: world.db,
    redisUrl: testRedisUrl,
    prefix: prefix.prefix,
    concurrency: 1,
    keyRing: world.ring,
    logger: pino({ level: 'silent' }),
    workerId: 'rotation-test',
    destinations: testDestinations,
    controlConcurrency: 0,
  });
  try {
    const slot = day(6).toISOString();
    const first = await client.enqueueRotation({ connectorId: world.connector.id, trigger: 'schedule', scheduledFor: slot });
    const second = await client.enqueueRotation({ connectorId: world.connector.id, trigger: 'schedule', scheduledFor: slot });
    expect(second).toEqual({ jobId: first.jobId, deduplicated: true });
    const done = await waitFor(async () => {
      // Read again once completed: a job read just before it completed has no return value.
      const job = await client.queue.getJob(first.jobId);
      return (await job?.isCompleted()) ? client.queue.getJob(first.jobId) : undefined;
    }, { what: 'the scheduled rotation' });
    expect(done.returnvalue).toMatchObject({ status: 'rotated', connectorId: world.connector.id });
    expect(JSON.stringify(done.returnvalue)).not.toContain('PRIVATE');
    const manual = await client.enqueueRotation({ connectorId: world.connector.id, trigger: 'manual', requestedBy: 'ops' });
    const manualDone = await waitFor(async () => {
      // Read again once completed: a job read just before it completed has no return value.
      const job = await client.queue.getJob(manual.jobId);
      return (await job?.isCompleted()) ? client.queue.getJob(manual.jobId) : undefined;
    }, { what: 'the manual rotation' });
    expect(manualDone.returnvalue).toMatchObject({ status: 'rotated' });
    expect(appThumbprints()).toHaveLength(2);
    expect(await syncToken(customer)).toBe('ok');
  } finally {
    await worker.close();
    await client.close();
    await prefix.cleanup();
  }
}, timeoutMs);

test('every key left on the app is valid, and no rotation read the app registration', async () => {
  const now = Date.now();
  expect(world.app.keyCredentials.every((k) => k.startDateTime.getTime() <= now && now <= k.endDateTime.getTime())).toBe(true);
  expect(applicationReads()).toEqual([]);
  expect(world.emulator.requestsTo('graph', '/addKey').length).toBeGreaterThan(0);
  // The connector holds no permission to read it: the emulator refuses, as Graph would.
  const connector = world.connector;
  await withCurrentCredential(world.db, world.ring, connector.id, async (c) => {
    const client = new GraphClient(
      {
        tenantId: connector.homeTenantId,
        authorityHost: connector.authorityHost,
        graphBaseUrl: connector.graphBaseUrl,
        caPem: world.emulator.caPem,
        retry: { baseDelayMs: 1, maxDelayMs: 1, maxWaitMs: 0, maxAttempts: 1 },
        requestTimeoutMs: 10_000,
      },
      { kind: 'certificate', clientId: connector.clientId, certificatePem: c.certificatePem, privateKeyPem: c.privateKeyPem },
      { tokenCache: new EntraTokenCache(), destinations: testDestinations },
    );
    try {
      await expect(client.getJson(`${connector.graphBaseUrl}/v1.0/applications/${connector.applicationObjectId}`, new AbortController().signal)).rejects.toMatchObject({ code: 'auth' });
    } finally {
      await client.close();
    }
  });
}, timeoutMs);
