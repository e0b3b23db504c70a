import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import {
  confirmConsent,
  createAccount,
  createIntegration,
  getConsent,
  getIntegration,
  getRun,
  migrateLegacyIntegration,
  revokeConsent,
  type Run,
  setLegacyMigrationDeadline,
} from '@dirsync/db';
import { SYNC_QUEUE } from '@dirsync/jobs';
import {
  createTestQueuePrefix,
  type EmulatedTenantDirectory,
  populateEntraTenant,
  testDestinations,
  testRedisUrl,
  type TestQueuePrefix,
  waitFor,
} from '@dirsync/testkit';
import { createEntraAwareProviderFactory } from '../src/entra/index.ts';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';
import { type EntraWorld, startEntraWorld } from './entra-helpers.ts';

// One customer tenant through the whole sync path: the emulator, the Entra-aware provider factory
// (connector certificate from the encrypted store, consent check), the BullMQ worker and its
// processor, Redis and PostgreSQL. Tests continue from the state the previous one left.

const timeoutMs = 60_000;
let world: EntraWorld;
let prefix: TestQueuePrefix;
let queue: Queue;
let worker: DirsyncWorker;
let tenant: EmulatedTenantDirectory;
let integrationId: string;
let userIds: readonly string[];
let groupIds: readonly string[];
/** What the providers asked to wait (Retry-After, backoff); nothing actually waits. */
const waits: number[] = [];
let clock = new Date();
/** The worker's consent refusal policy; tests end the grace by setting graceMs to 0. */
const refusal = { graceMs: 30 * 60_000, failuresToRevoke: 2, spacingMs: 0 };

async function sync(mode: 'full' | 'delta', id = integrationId, attempts = 1): Promise<Run & { attemptsMade: number }> {
  const runId = randomUUID();
  const job = await queue.add('sync', { integrationId: id, runId, mode, trigger: 'manual', dryRun: false }, { jobId: `run.${runId}`, attempts, backoff: { type: 'fixed', delay: 10 } });
  // The job ends after its run row is written: wait for the job, then read both.
  await waitFor(async () => (await job.isCompleted()) || (await job.isFailed()), { timeoutMs: 60_000, what: `the ${mode} job to end` });
  const run = await waitFor(
    async () => {
      const found = await getRun(world.db, runId);
      return found && !['queued', 'running'].includes(found.status) ? found : undefined;
    },
    { timeoutMs: 10_000, what: `the ${mode} run to end` },
  );
  const state = await queue.getJob(job.id as string);
  return { ...run, attemptsMade: state?.attemptsMade ?? 0 };
}

async function live(type: 'user' | 'group', id = integrationId): Promise<string[]> {
  const rows = await world.db.$client<{ external_id: string }[]>`
    select external_id from directory_objects where integration_id = ${id} and type = ${type} and deleted_at is null order by 1`;
  return rows.map((r) => r.external_id);
}

async function edges(id = integrationId): Promise<string[]> {
  const rows = await world.db.$client<{ edge: string }[]>`
    select group_external_id || '>' || member_external_id as edge from memberships
    where integration_id = ${id} and deleted_at is null order by 1`;
  return rows.map((r) => r.edge);
}

function expectedEdges(directory: EmulatedTenantDirectory, groups: readonly string[]): string[] {
  return groups.flatMap((g) => directory.membersOf(g).map((m) => `${g}>${m}`)).sort();
}

async function snapshot(id = integrationId): Promise<string> {
  const objects = await world.db.$client`select * from directory_objects where integration_id = ${id} order by external_id`;
  const memberships = await world.db.$client`select * from memberships where integration_id = ${id} order by group_external_id, member_external_id`;
  return JSON.stringify({ objects, memberships });
}

beforeAll(async () => {
  world = await startEntraWorld('entrasync', { membersPerRecord: 3 });
  prefix = createTestQueuePrefix('entrasync');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  worker = createWorker({
    db: world.db,
    redisUrl: testRedisUrl,
    prefix: prefix.prefix,
    concurrency: 1,
    keyRing: world.ring,
    logger: pino({ level: 'silent' }),
    workerId: 'e2e-entra',
    controlConcurrency: 0,
    runRotations: false,
    createProvider: createEntraAwareProviderFactory({
      db: world.db,
      keyRing: world.ring,
      destinations: testDestinations,
      now: () => clock,
      sleep: async (ms) => {
        waits.push(ms);
      },
      consentRefusal: refusal,
    }),
  });
  tenant = await world.consentedTenant();
  ({ userIds, groupIds } = populateEntraTenant(tenant, { users: 60, groups: 6, membersPerGroup: 10 }));
  integrationId = (
    await createIntegration(world.db, {
      accountId: world.accountId,
      kind: 'entra_id',
      name: 'Contoso',
      settings: { tenantId: tenant.tenantId, connectorId: world.connector.id, pageSize: 7 },
    })
  ).id;
}, timeoutMs);

afterAll(async () => {
  await worker?.close();
  await queue?.close();
  await prefix?.cleanup();
  await world?.close();
}, timeoutMs);

test('the first sync runs full and stores every user, group and membership', async () => {
  const run = await sync('delta');
  expect(run).toMatchObject({ status: 'succeeded', mode: 'full', created: 66, deleted: 0, failed: 0 });
  expect(run.reason).toMatch(/no cursor/);
  expect(await live('user')).toEqual([...userIds].sort());
  expect(await live('group')).toEqual([...groupIds].sort());
  expect(await edges()).toEqual(expectedEdges(tenant, groupIds));
  expect((await getIntegration(world.db, integrationId))?.cursor).toMatchObject({ kind: 'entra_id' });
  // The connector's app got the token, in the customer's tenant.
  const tokenRequests = world.emulator.requestsTo('login', '/token').filter((r) => r.tenantId === tenant.tenantId);
  expect(tokenRequests.at(-1)).toMatchObject({ status: 200, clientId: world.app.appId });
}, timeoutMs);

test('a delta applies changes, deletions both ways and membership changes spread over pages', async () => {
  const [u0, u1, u2, u3] = userIds as [string, string, string, string];
  const [g0, g1, g2] = groupIds as [string, string, string];
  tenant.updateUser(u0, { displayName: 'Renamed User', department: null });
  tenant.deleteUser(u1);
  tenant.deleteUser(u2, { permanent: true });
  const hire = tenant.addUser({ userPrincipalName: 'hire@contoso.example', displayName: 'New Hire', accountEnabled: true });
  // More new members than fit on one page (page size 7, 3 members per record).
  const joining = userIds.slice(20, 50).filter((id) => !tenant.membersOf(g1).includes(id));
  tenant.addMembers(g1, [...joining, hire.id]);
  tenant.removeMembers(g0, tenant.membersOf(g0).slice(0, 2));
  tenant.addMembers(g0, [u3]);
  tenant.deleteGroup(g2);

  const run = await sync('delta');
  expect(run).toMatchObject({ status: 'succeeded', mode: 'delta', created: 1, deleted: 3, failed: 0 });
  expect(run.updated).toBeGreaterThanOrEqual(1);
  expect(await live('user')).toEqual([...userIds.filter((id) => id !== u1 && id !== u2), hire.id].sort());
  expect(await live('group')).toEqual(groupIds.filter((id) => id !== g2).sort());
  expect(await edges()).toEqual(expectedEdges(tenant, groupIds.filter((id) => id !== g2)));
  const [renamed] = await world.db.$client<{ attributes: Record<string, unknown> }[]>`
    select attributes from directory_objects where integration_id = ${integrationId} and external_id = ${u0}`;
  expect(renamed?.attributes).toMatchObject({ displayName: 'Renamed User' });
  expect(renamed?.attributes).not.toHaveProperty('department');
}, timeoutMs);

test('a delta with nothing new changes nothing', async () => {
  const before = await snapshot();
  const run = await sync('delta');
  expect(run).toMatchObject({ status: 'succeeded', mode: 'delta', created: 0, updated: 0, deleted: 0, membershipsAdded: 0, membershipsRemoved: 0 });
  expect(await snapshot()).toBe(before);
}, timeoutMs);

test('an expired delta token (410) turns the delta into a full sync that says why', async () => {
  world.emulator.injectFault({ service: 'graph', path: '/users/delta', status: 410 });
  tenant.addUser({ userPrincipalName: 'late@contoso.example', displayName: 'Late' });
  const run = await sync('delta');
  expect(run).toMatchObject({ status: 'succeeded', mode: 'full', created: 1, deleted: 0 });
  expect(run.reason).toMatch(/delta cursor rejected \(Graph expired the delta token: .*410 resyncRequired/);
  world.emulator.expireDeltaTokens(tenant.tenantId);
  const again = await sync('delta');
  // Unchanged groups, even those spread over pages, keep their edges untouched.
  expect(again).toMatchObject({ status: 'succeeded', mode: 'full', created: 0, deleted: 0, membershipsAdded: 0, membershipsRemoved: 0 });
  expect(again.reason).toMatch(/syncStateNotFound/);
  expect(await edges()).toEqual(expectedEdges(tenant, tenant.groupIds.ids));
}, timeoutMs);

test('a full sync finds deletions by absence; a storm of 429s and 503s does not fail it', async () => {
  const gone = userIds[10] as string;
  tenant.deleteUser(gone, { permanent: true });
  waits.length = 0;
  world.emulator.injectFault({ service: 'graph', path: '/users/delta', status: 429, retryAfterSeconds: 3, times: 8 });
  world.emulator.injectFault({ service: 'graph', path: '/groups/delta', status: 503, times: 4 });
  const run = await sync('full', integrationId, 3);
  expect(run).toMatchObject({ status: 'succeeded', mode: 'full', deleted: 1, attemptsMade: 1 });
  expect(await live('user')).not.toContain(gone);
  expect(waits.filter((w) => w === 3000)).toHaveLength(8);
  expect(waits.length).toBe(12);
}, timeoutMs);

test('a refusal within the grace after the grant is retried, waiting for permissions to propagate; the consent stays granted', async () => {
  const before = await snapshot();
  world.emulator.revokeConsent(tenant.tenantId, world.app.appId);
  const run = await sync('delta', integrationId, 3);
  // Retryable: every attempt was made, none of them revoked anything.
  expect(run).toMatchObject({ status: 'failed', attemptsMade: 3 });
  expect(run.error).toMatch(/waiting for permissions to propagate \(within the grace after the grant/);
  expect(await snapshot()).toBe(before);
  expect((await getIntegration(world.db, integrationId))?.status).not.toBe('needs_consent');
  expect(await getConsent(world.db, world.accountId, world.connector.id, tenant.tenantId)).toMatchObject({ status: 'granted', authFailures: 0 });
}, timeoutMs);

test('past the grace, refusals are counted run by run and a run that reads the tenant resets the count', async () => {
  refusal.graceMs = 0;
  const run = await sync('delta', integrationId, 1);
  expect(run.error).toMatch(/waiting for permissions to propagate \(refused run 1 of 2 /);
  expect(await getConsent(world.db, world.accountId, world.connector.id, tenant.tenantId)).toMatchObject({ status: 'granted', authFailures: 1 });
  expect((await getIntegration(world.db, integrationId))?.status).not.toBe('needs_consent');

  world.emulator.grantConsent(tenant.tenantId, world.app.appId);
  expect(await sync('delta')).toMatchObject({ status: 'succeeded', mode: 'delta' });
  expect(await getConsent(world.db, world.accountId, world.connector.id, tenant.tenantId)).toMatchObject({ status: 'granted', authFailures: 0, lastAuthFailureAt: null });
}, timeoutMs);

test('past the grace and enough refused runs, the consent is revoked: nothing deleted, the integration needs consent', async () => {
  const before = await snapshot();
  world.emulator.revokeConsent(tenant.tenantId, world.app.appId);
  tenant.deleteUser(userIds[11] as string);
  expect((await sync('delta', integrationId, 1)).error).toMatch(/refused run 1 of 2 /);
  const run = await sync('delta', integrationId, 3);
  expect(run.status).toBe('failed');
  expect(run.error).toMatch(/^auth: .*consent/);
  expect(run.attemptsMade).toBe(1);
  expect(await snapshot()).toBe(before);
  expect((await getIntegration(world.db, integrationId))?.status).toBe('needs_consent');
  expect((await getConsent(world.db, world.accountId, world.connector.id, tenant.tenantId))?.status).toBe('revoked');

  // Until consent is granted again, runs stop before calling Entra ID.
  const tokensBefore = world.emulator.requestsTo('login', '/token').length;
  const refused = await sync('delta', integrationId, 3);
  expect(refused).toMatchObject({ status: 'failed', attemptsMade: 1 });
  expect(refused.error).toMatch(/account holds no granted consent of tenant .*: its consent is revoked/);
  expect(world.emulator.requestsTo('login', '/token').length).toBe(tokensBefore);

  await world.grantConsent(tenant.tenantId);
  expect((await getIntegration(world.db, integrationId))?.status).toBe('new');
  const resumed = await sync('delta');
  expect(resumed).toMatchObject({ status: 'succeeded', mode: 'delta', deleted: 1 });
  refusal.graceMs = 30 * 60_000;
}, timeoutMs);

describe('tenant ownership', () => {
  let otherAccount: string;

  beforeAll(async () => {
    otherAccount = (await createAccount(world.db, { name: 'another customer' })).id;
  });

  test("another account's integration naming a consented tenant is refused before anything is read", async () => {
    // Stored directly, as an integration made before creation checked ownership would be.
    const foreign = (
      await createIntegration(world.db, {
        accountId: otherAccount,
        kind: 'entra_id',
        name: 'Not my tenant',
        settings: { tenantId: tenant.tenantId, connectorId: world.connector.id },
      })
    ).id;
    const requestsBefore = world.emulator.requests.length;
    const run = await sync('full', foreign, 3);
    expect(run).toMatchObject({ status: 'failed', attemptsMade: 1, fetched: 0 });
    expect(run.error).toMatch(/^auth: this integration's account holds no granted consent of tenant .*: its consent has not been requested by this account/);
    // Nothing reached Entra ID or Graph: no token, no page.
    expect(world.emulator.requests.length).toBe(requestsBefore);
    expect(await live('user', foreign)).toEqual([]);
    expect((await getIntegration(world.db, foreign))?.status).toBe('needs_consent');
    // The owner's consent is untouched.
    expect((await getConsent(world.db, world.accountId, world.connector.id, tenant.tenantId))?.status).toBe('granted');
  }, timeoutMs);

  test("an account that revokes its consent stops syncing; another account's consent of the same tenant is its own", async () => {
    // The second account's administrator consents too: the tenant had consented already, so the
    // redirect alone is not enough and a platform administrator confirms it.
    expect(await world.grantConsent(tenant.tenantId, otherAccount)).toMatchObject({ outcome: 'confirmation_required' });
    await confirmConsent(world.db, { accountId: otherAccount, connectorId: world.connector.id, tenantId: tenant.tenantId, actor: 'test' });
    const theirs = (
      await createIntegration(world.db, {
        accountId: otherAccount,
        kind: 'entra_id',
        name: 'Shared tenant',
        settings: { tenantId: tenant.tenantId, connectorId: world.connector.id },
      })
    ).id;

    expect(await revokeConsent(world.db, { accountId: world.accountId, connectorId: world.connector.id, tenantId: tenant.tenantId, actor: 'test' })).toBe(true);
    const before = await snapshot();
    const requestsBefore = world.emulator.requests.length;
    const refused = await sync('delta', integrationId, 3);
    expect(refused).toMatchObject({ status: 'failed', attemptsMade: 1 });
    expect(refused.error).toMatch(/its consent is revoked/);
    expect(world.emulator.requests.length).toBe(requestsBefore);
    expect(await snapshot()).toBe(before);

    const other = await sync('full', theirs);
    expect(other).toMatchObject({ status: 'succeeded', mode: 'full' });
    expect(await live('user', theirs)).toEqual(await live('user'));

    expect(await world.grantConsent(tenant.tenantId)).toMatchObject({ outcome: 'confirmation_required' });
    await confirmConsent(world.db, { accountId: world.accountId, connectorId: world.connector.id, tenantId: tenant.tenantId, actor: 'test' });
    expect((await sync('delta')).status).toBe('succeeded');
  }, timeoutMs);
});

describe('legacy integrations', () => {
  let legacyTenant: EmulatedTenantDirectory;
  let legacyId: string;
  let legacyAppId: string;

  beforeAll(async () => {
    legacyTenant = world.emulator.createTenant();
    legacyAppId = world.emulator.registerApplication({ homeTenantId: legacyTenant.tenantId, displayName: 'old sync app', clientSecret: 'old-app-secret-1' }).appId;
    populateEntraTenant(legacyTenant, { users: 12, groups: 2, membersPerGroup: 4, seed: 9 });
    legacyId = (
      await createIntegration(
        world.db,
        {
          accountId: world.accountId,
          kind: 'entra_id',
          name: 'Fabrikam (legacy)',
          settings: {
            tenantId: legacyTenant.tenantId,
            legacyApp: { clientId: legacyAppId },
            authorityHost: world.emulator.authorityHost,
            graphBaseUrl: world.emulator.graphBaseUrl,
            caPem: world.emulator.caPem,
          },
        },
        { ring: world.ring, plaintext: 'old-app-secret-1' },
      )
    ).id;
  });

  test('sync with their own app until the migration deadline, then fail clearly and change nothing', async () => {
    await setLegacyMigrationDeadline(world.db, new Date(clock.getTime() + 24 * 3600_000));
    expect(await sync('full', legacyId)).toMatchObject({ status: 'succeeded', created: 14 });
    const before = await snapshot(legacyId);
    clock = new Date(clock.getTime() + 2 * 24 * 3600_000);
    legacyTenant.deleteUser(legacyTenant.userIds.ids[0] as string);
    const run = await sync('delta', legacyId, 3);
    expect(run).toMatchObject({ status: 'failed', attemptsMade: 1 });
    expect(run.error).toMatch(/passed its migration deadline .* migrate it to a connector/);
    expect(await snapshot(legacyId)).toBe(before);
  }, timeoutMs);

  test('after migration to the connector the first run is a full sync with the connector app', async () => {
    await world.grantConsent(legacyTenant.tenantId);
    await migrateLegacyIntegration(world.db, { integrationId: legacyId, connectorId: world.connector.id, description: 'Fabrikam staff', actor: 'test' });
    const run = await sync('delta', legacyId);
    expect(run).toMatchObject({ status: 'succeeded', mode: 'full', deleted: 1 });
    expect(run.reason).toMatch(/no cursor/);
    const last = world.emulator.requestsTo('login', '/token').filter((r) => r.tenantId === legacyTenant.tenantId).at(-1);
    expect(last).toMatchObject({ status: 200, clientId: world.app.appId });
    expect((await getIntegration(world.db, legacyId))?.name).toBe('Fabrikam (legacy)');
    expect((await sync('delta', legacyId)).mode).toBe('delta');
  }, timeoutMs);
});
