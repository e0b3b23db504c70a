import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { createIntegration, getRun, readIntegrationContents, type Run } from '@dirsync/db';
import { SYNC_QUEUE } from '@dirsync/jobs';
import { EntraTokenCache } from '@dirsync/providers';
import {
  createTestQueuePrefix,
  diffTenantContents,
  type EmulatedTenantDirectory,
  expectedTenantContents,
  populateEntraTenant,
  realisticEntraBehaviour,
  testDestinations,
  testRedisUrl,
  type TestQueuePrefix,
  waitFor,
} from '@dirsync/testkit';
import { createEntraAwareProviderFactory } from '../src/entra/index.ts';
import { rotateConnectorCredential } from '../src/rotation/index.ts';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';
import { type EntraWorld, startEntraWorld } from './entra-helpers.ts';

// A larger tenant behaving as a real one at its most difficult, all at once (the emulator's
// `realisticEntraBehaviour`: permission and key propagation, replication lag, groups of more than
// 1,000 members split across distant pages with continuation records repeating their properties,
// repeated objects, partial records and omitted nulls, empty pages, server-chosen page sizes,
// 410 Gone with a Location, throttling per app and tenant). Every run must succeed and the copy
// must equal the tenant's own state, object by object and edge by edge. Waits the client is told
// to make (Retry-After, backoff, a new key's propagation) move the emulator's clock instead of
// taking time; the tests continue from the state the previous one left.

const timeoutMs = 180_000;
let world: EntraWorld;
let prefix: TestQueuePrefix;
let queue: Queue;
let worker: DirsyncWorker;
let tenant: EmulatedTenantDirectory;
let integrationId: string;
let users: readonly string[];
let groups: readonly string[];
let large: { all: string; half: string; nested: string };
/** How far the emulator's clock is ahead of the real one. */
let offsetMs = 0;
const realism = realisticEntraBehaviour({
  // Tight enough that full syncs are throttled several times.
  // Pages small enough that the large groups' records land on several distant pages.
  serverPageSize: { min: 20, max: 120 },
  throttle: { perAppPerTenant: { requests: 3, windowMs: 1_000 }, perTenant: { requests: 5, windowMs: 1_000 } },
});
const runs: Run[] = [];

async function sync(mode: 'full' | 'delta'): Promise<Run> {
  const runId = randomUUID();
  const job = await queue.add('sync', { integrationId, runId, mode, trigger: 'manual', dryRun: false }, { jobId: `run.${runId}`, attempts: 5, backoff: { type: 'fixed', delay: 10 } });
  await waitFor(async () => (await job.isCompleted()) || (await job.isFailed()), { timeoutMs: 120_000, what: `the ${mode} job to end` });
  const run = await waitFor(
    async () => {
      const found = await getRun(world.db, runId);
      return found && !['queued', 'running', 'retrying'].includes(found.status) ? found : undefined;
    },
    { timeoutMs: 10_000, what: `the ${mode} run to end` },
  );
  runs.push(run);
  return run;
}

async function differences(): Promise<string[]> {
  return diffTenantContents(expectedTenantContents(tenant), await readIntegrationContents(world.db, integrationId));
}

/** Lets the emulated replication catch up with every change made so far (moves its clock past the lag). */
function replicate(): void {
  offsetMs += (realism.replicationLagMs ?? 0) + 1;
}

beforeAll(async () => {
  world = await startEntraWorld('realistic', { now: () => Date.now() + offsetMs, realism });
  prefix = createTestQueuePrefix('realistic');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  worker = createWorker({
    db: world.db,
    redisUrl: testRedisUrl,
    prefix: prefix.prefix,
    concurrency: 1,
    keyRing: world.ring,
    logger: pino({ level: 'silent' }),
    workerId: 'e2e-entra-realistic',
    controlConcurrency: 0,
    runRotations: false,
    createProvider: createEntraAwareProviderFactory({
      db: world.db,
      keyRing: world.ring,
      tokenCache: new EntraTokenCache(),
      destinations: testDestinations,
      sleep: async (ms) => {
        offsetMs += ms;
      },
    }),
  });
  // The consent flow itself runs against the propagation delay: the verification asks again
  // until the tenant's tokens carry what the administrator granted.
  tenant = await world.consentedTenant();
  const generated = populateEntraTenant(tenant, { users: 4_000, groups: 40, membersPerGroup: 30 });
  users = generated.userIds;
  groups = generated.groupIds;
  const all = tenant.addGroup({ displayName: 'All staff', securityEnabled: true, mailNickname: 'allstaff' });
  tenant.addMembers(all.id, users);
  const half = tenant.addGroup({ displayName: 'Half the staff', description: null, securityEnabled: true });
  tenant.addMembers(half.id, users.filter((_, i) => i % 2 === 0));
  const nested = tenant.addGroup({ displayName: 'Groups and people', securityEnabled: true });
  tenant.addMembers(nested.id, [...groups, all.id, ...users.slice(0, 1_100)]);
  tenant.addDeviceMember(nested.id);
  large = { all: all.id, half: half.id, nested: nested.id };
  integrationId = (
    await createIntegration(world.db, {
      accountId: world.accountId,
      kind: 'entra_id',
      name: 'Contoso (realistic)',
      settings: { tenantId: tenant.tenantId, connectorId: world.connector.id },
    })
  ).id;
  replicate();
}, timeoutMs);

afterAll(async () => {
  await worker?.close();
  await queue?.close();
  await prefix?.cleanup();
  await world?.close();
}, timeoutMs);

test('the first full sync of a difficult tenant stores exactly its objects and edges', async () => {
  const run = await sync('full');
  expect(run).toMatchObject({ status: 'succeeded', failed: 0, deleted: 0 });
  expect(run.created).toBe(users.length + groups.length + 3);
  expect(await differences()).toEqual([]);
  // The tenant's difficulties were met, not avoided: throttled, split across many pages.
  const graph = world.emulator.requestsTo('graph', '/v1.0/groups/delta');
  expect(graph.filter((r) => r.status === 429).length + world.emulator.requestsTo('graph', '/v1.0/users/delta').filter((r) => r.status === 429).length).toBeGreaterThan(0);
  expect(graph.filter((r) => r.status === 200).length).toBeGreaterThan(3);
  expect(tenant.membersOf(large.all).length).toBe(users.length);
}, timeoutMs);

test('an unchanged full sync rewrites nothing: no object updated, no edge removed or added', async () => {
  const run = await sync('full');
  expect(run).toMatchObject({ status: 'succeeded', created: 0, updated: 0, deleted: 0, failed: 0, membershipsAdded: 0, membershipsRemoved: 0 });
  expect(await differences()).toEqual([]);
}, timeoutMs);

test('changes reach the copy by delta: partial records keep the rest, explicit nulls clear, large groups change', async () => {
  const [u0, u1, u2, u3, u4] = users as [string, string, string, string, string];
  tenant.updateUser(u0, { jobTitle: 'Chief Realism Officer' });
  tenant.updateUser(u1, { department: null, mail: null });
  tenant.updateGroup(large.half, { description: 'every other person' });
  tenant.deleteUser(u2);
  tenant.deleteUser(u3, { permanent: true });
  const hires = Array.from({ length: 25 }, (_, i) => tenant.addUser({ userPrincipalName: `hire${i}@contoso.example`, displayName: `Hire ${i}`, department: 'Onboarding' }).id);
  tenant.addMembers(large.all, hires);
  tenant.addMembers(large.nested, hires.slice(0, 5));
  tenant.removeMembers(large.half, users.filter((_, i) => i % 2 === 0).slice(10, 410));
  tenant.removeMembers(large.nested, [u4, groups[0] as string]);
  tenant.deleteGroup(groups[1] as string);

  // Before replication caught up, a delta may see part of it; it must not corrupt anything.
  const early = await sync('delta');
  expect(early).toMatchObject({ status: 'succeeded', failed: 0 });
  replicate();
  const settled = await sync('delta');
  expect(settled).toMatchObject({ status: 'succeeded', mode: 'delta', failed: 0 });
  expect(await differences()).toEqual([]);
  const stored = await readIntegrationContents(world.db, integrationId);
  // The partial record of u0 kept every property it did not carry.
  expect(stored.objects.find((o) => o.externalId === u0)?.attributes).toMatchObject({ jobTitle: 'Chief Realism Officer', department: expect.any(String), mail: expect.any(String) });
  expect(stored.objects.find((o) => o.externalId === u1)?.attributes).not.toHaveProperty('department');
}, timeoutMs);

test('a certificate rotation needs no read of the app registration, and the tenant is read on through it', async () => {
  const rotated = await rotateConnectorCredential({
    db: world.db,
    keyRing: world.ring,
    connectorId: world.connector.id,
    slot: new Date(Date.UTC(2030, 0, 1, 3)),
    actor: 'test',
    destinations: testDestinations,
    sleep: async (ms) => {
      offsetMs += ms;
    },
  });
  expect(rotated.status).toBe('rotated');
  expect(world.emulator.requestsTo('graph', `/v1.0/applications/${world.app.objectId}`).filter((r) => r.method === 'GET')).toEqual([]);
  tenant.updateUser(users[5] as string, { displayName: 'Renamed after the rotation' });
  replicate();
  const run = await sync('delta');
  expect(run).toMatchObject({ status: 'succeeded', failed: 0, updated: 1 });
  expect(await differences()).toEqual([]);
}, timeoutMs);

test('Graph forgetting the delta token (410 Gone with a Location) makes the next delta a full sync that changes nothing', async () => {
  world.emulator.expireDeltaTokens(tenant.tenantId);
  const run = await sync('delta');
  expect(run).toMatchObject({ status: 'succeeded', mode: 'full', created: 0, updated: 0, deleted: 0, membershipsAdded: 0, membershipsRemoved: 0 });
  expect(run.reason).toMatch(/410/);
  expect(await differences()).toEqual([]);
  expect(runs.map((r) => r.status)).toEqual(runs.map(() => 'succeeded'));
}, timeoutMs);
