import { randomUUID } from 'node:crypto';
import { close, connect, type Db } from '@dirsync/db';
import {
  createEntraIdProvider,
  type Cursor,
  encodeCertificateSecret,
  type EntraIdProvider,
  entraIdSettingsSchema,
  EntraTokenCache,
  generateCertificate,
  type GeneratedCertificate,
} from '@dirsync/providers';
import {
  createTestDatabase,
  type EmulatedTenantDirectory,
  type EntraEmulator,
  type EntraRealism,
  populateEntraTenant,
  startEntraEmulator,
  type TestDatabase,
  testDestinations,
} from '@dirsync/testkit';
import { runSync, type SyncReport } from '../src/pipeline/index.ts';
import { createIntegrationRow } from './support/harness.ts';

// Graph may give a large group's members@delta in parts anywhere in a round, and delta records
// carry "at least the changed properties" (microsoft-graph-docs-contrib concepts/
// delta-query-groups.md and delta-query-overview.md). A full sync of an unchanged tenant must
// then write no edge, and a delta must not drop the properties a record left out. Tests continue
// from the state the previous one left.

const timeoutMs = 120_000;
const users = 1500;
const groups = 6;
const membersPerGroup = 1200;

/**
 * The tenant's behaviours per suite. Graph "may return" a group's parts together, or anywhere in
 * the round; the second suite has every shape of round the emulator can give that these tests
 * can meet without waiting (no replication lag, no throttling).
 */
const behaviours: [string, EntraRealism][] = [
  ['parts of a group in consecutive records, whole records', {}],
  [
    'parts of a group far apart, replays, empty pages, nulls omitted, partial delta records, 410 with Location',
    {
      spreadGroupRecords: true,
      duplicateRate: 0.05,
      emptyPageRate: 0.1,
      omitNulls: true,
      partialRecords: true,
      goneWithLocation: true,
    },
  ],
  ['parts far apart, each repeating the group properties', { spreadGroupRecords: true, continuationWithProperties: true, duplicateRate: 0.1 }],
];

describe.each(behaviours)('a tenant with %s', (_label, realism) => {
  let emulator: EntraEmulator;
  let certificate: GeneratedCertificate;
  let appId: string;
  let tenant: EmulatedTenantDirectory;
  let database: TestDatabase;
  let db: Db;
  let integrationId: string;
  let userIds: readonly string[];
  let groupIds: readonly string[];
  let cursor: Cursor | null = null;

  function provider(): EntraIdProvider {
    const settings = entraIdSettingsSchema.parse({
      tenantId: tenant.tenantId,
      connectorId: randomUUID(),
      authorityHost: emulator.authorityHost,
      graphBaseUrl: emulator.graphBaseUrl,
      caPem: emulator.caPem,
      pageSize: 20,
      retry: { baseDelayMs: 10, maxDelayMs: 200, maxWaitMs: 60_000, maxAttempts: 4 },
    });
    const secret = encodeCertificateSecret({ clientId: appId, certificatePem: certificate.certificatePem, privateKeyPem: certificate.privateKeyPem });
    return createEntraIdProvider(settings, secret, { tokenCache: new EntraTokenCache(), sleep: async () => undefined, destinations: testDestinations });
  }

  async function sync(mode: 'full' | 'delta'): Promise<SyncReport> {
    const p = provider();
    try {
      const report = await runSync({
        db,
        provider: p,
        integration: { id: integrationId, cursor: mode === 'full' ? null : cursor, deleteThresholdCount: 1000, deleteThresholdPercent: 100 },
        run: { id: randomUUID(), modeRequested: mode, dryRun: false },
        signal: new AbortController().signal,
      });
      if (report.status === 'succeeded' && report.cursor !== undefined) cursor = report.cursor;
      return report;
    } finally {
      await p.close();
    }
  }

  async function edges(): Promise<string[]> {
    const rows = await db.$client<{ edge: string }[]>`
      select group_external_id || '>' || member_external_id as edge from memberships
      where integration_id = ${integrationId} and deleted_at is null order by 1`;
    return rows.map((r) => r.edge);
  }

  /** Every stored edge row, timestamps included: equal snapshots mean no edge was written. */
  async function edgeRows(): Promise<string> {
    return JSON.stringify(await db.$client`select * from memberships where integration_id = ${integrationId} order by group_external_id, member_external_id`);
  }

  async function attributes(externalId: string): Promise<Record<string, unknown> | undefined> {
    const [row] = await db.$client<{ attributes: Record<string, unknown> }[]>`
      select attributes from directory_objects where integration_id = ${integrationId} and external_id = ${externalId}`;
    return row?.attributes;
  }

  function expectedEdges(): string[] {
    return tenant.groupIds.ids.flatMap((g) => tenant.membersOf(g).map((m) => `${g}>${m}`)).sort();
  }

  beforeAll(async () => {
    // 150 members a record: each large group comes in 8 records spread over pages of 20.
    emulator = await startEntraEmulator({ membersPerRecord: 150, realism });
    const home = emulator.createTenant({ domain: 'platform.onmicrosoft.com' });
    certificate = await generateCertificate({ subject: 'dirsync rounds test', validityDays: 3 });
    appId = emulator.registerApplication({ homeTenantId: home.tenantId, displayName: 'dirsync connector', certificates: [certificate.certificatePem] }).appId;
    tenant = emulator.createTenant();
    emulator.grantConsent(tenant.tenantId, appId);
    ({ userIds, groupIds } = populateEntraTenant(tenant, { users, groups, membersPerGroup }));
    database = await createTestDatabase('entrarounds');
    db = connect(database.url, { max: 4 });
    integrationId = await createIntegrationRow(db);
  }, timeoutMs);

  afterAll(async () => {
    if (db) await close(db);
    await database?.drop();
    await emulator?.close();
  }, timeoutMs);

  test('a full sync of groups of over 1,000 members in parts stores exactly the tenant edges', async () => {
    const report = await sync('full');
    expect(report).toMatchObject({ status: 'succeeded', mode: 'full', fetched: users + groups, created: users + groups, failed: 0 });
    expect(report.membershipsAdded).toBe(groups * membersPerGroup);
    expect(report.membershipsRemoved).toBe(0);
    expect(await edges()).toEqual(expectedEdges());
  }, timeoutMs);

  test('a second full sync of the unchanged tenant writes no edge at all', async () => {
    const before = await edgeRows();
    const report = await sync('full');
    expect(report).toMatchObject({
      status: 'succeeded',
      fetched: users + groups,
      created: 0,
      updated: 0,
      unchanged: users + groups,
      deleted: 0,
      membershipsAdded: 0,
      membershipsRemoved: 0,
    });
    expect(await edgeRows()).toBe(before);
  }, timeoutMs);

  test('a full round restarted after an expired skip token counts only the real membership changes', async () => {
    const [g0, g1] = groupIds as [string, string];
    const leaving = tenant.membersOf(g0).slice(100, 110);
    tenant.removeMembers(g0, leaving);
    const joining = userIds.filter((id) => !tenant.membersOf(g1).includes(id)).slice(0, 7);
    tenant.addMembers(g1, joining);
    // The groups round (8 records of each group, 20 records a page) has at least three pages; the
    // third finds its skip token gone, and the round starts over.
    const requestsBefore = emulator.requestsTo('graph', '/groups/delta').length;
    emulator.injectFault({ service: 'graph', path: '/groups/delta', status: 410, skip: 2 });
    const report = await sync('full');
    const statuses = emulator.requestsTo('graph', '/groups/delta').slice(requestsBefore).map((r) => r.status);
    expect(statuses.slice(0, 3)).toEqual([200, 200, 410]);
    expect(statuses.slice(3).every((status) => status === 200)).toBe(true);
    expect(statuses.length).toBeGreaterThanOrEqual(6);
    expect(report).toMatchObject({ status: 'succeeded', mode: 'full', created: 0, deleted: 0, membershipsAdded: 7, membershipsRemoved: 10 });
    expect(report.fetched).toBe(users + groups);
    expect(await edges()).toEqual(expectedEdges());
  }, timeoutMs);

  test('a delta keeps what a record leaves out, clears what it sets to null, and counts a no-op as unchanged', async () => {
    expect((await sync('delta')).mode).toBe('delta');
    const [u0, u1] = userIds as [string, string];
    const before = await attributes(u0);
    expect(before).toHaveProperty('department');
    tenant.updateUser(u0, { department: null, jobTitle: 'Lead' });
    // Changed and changed back between rounds: Graph lists it with the value it had.
    const same = tenant.users.get(u1)?.data.displayName ?? null;
    tenant.updateUser(u1, { displayName: 'Briefly renamed' });
    tenant.updateUser(u1, { displayName: same });
    const report = await sync('delta');
    expect(report).toMatchObject({ status: 'succeeded', mode: 'delta', created: 0, updated: 1, unchanged: 1, membershipsAdded: 0, membershipsRemoved: 0 });
    const after = await attributes(u0);
    const { department: _gone, ...kept } = before ?? {};
    expect(after).toEqual({ ...kept, jobTitle: 'Lead' });
  }, timeoutMs);
});
