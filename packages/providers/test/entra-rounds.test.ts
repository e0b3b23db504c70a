import { randomUUID } from 'node:crypto';
import {
  type EmulatedTenantDirectory,
  type EntraEmulator,
  type GeneratedEntraTenant,
  populateEntraTenant,
  startEntraEmulator,
  testDestinations,
} from '@dirsync/testkit';
import {
  type CanonicalObject,
  type Cursor,
  createEntraIdProvider,
  encodeCertificateSecret,
  type EntraEntry,
  type EntraIdProvider,
  entraIdSettingsSchema,
  EntraTokenCache,
  type FetchPage,
  generateCertificate,
  type MemberDelta,
} from '../src/index.ts';

// Rounds shaped as a real tenant may shape them (microsoft-graph-docs-contrib concepts/
// delta-query-groups.md, "Paging through members in a large group"; delta-query-overview.md):
// a group's parts anywhere in the round, objects listed twice, empty pages with a nextLink,
// null properties left out, partial records from a delta link, 410 Gone with a Location.

let emulator: EntraEmulator;
let provider: EntraIdProvider;
let tenant: EmulatedTenantDirectory;
let generated: GeneratedEntraTenant;

interface Fetched {
  /** Every mapped object in the order handed on. */
  objects: CanonicalObject[];
  pages: number;
  memberDeltaPages: number;
  /** Member changes in the order handed on. */
  memberDeltas: MemberDelta[];
  cursor: Cursor | undefined;
}

async function read(pages: AsyncIterable<FetchPage<EntraEntry>>, onPage?: () => void): Promise<Fetched> {
  const out: Fetched = { objects: [], pages: 0, memberDeltaPages: 0, memberDeltas: [], cursor: undefined };
  for await (const page of pages) {
    out.pages += 1;
    for (const entry of page.entries) {
      const mapped = provider.map(entry);
      if (!mapped.ok) throw new Error(mapped.reason);
      out.objects.push(mapped.object);
    }
    if ((page.memberDeltas?.length ?? 0) > 0) out.memberDeltaPages += 1;
    out.memberDeltas.push(...(page.memberDeltas ?? []));
    if (page.cursor) out.cursor = page.cursor;
    onPage?.();
  }
  return out;
}

const signal = () => new AbortController().signal;

function expectWholeGroups(fetched: Fetched): void {
  const groups = fetched.objects.filter((object) => object.type === 'group');
  // Each group once, with its complete member list, and no membership handed on as changes.
  expect(groups.map((group) => group.externalId).sort()).toEqual([...tenant.groupIds.ids].sort());
  for (const group of groups) {
    expect(group.members?.map((ref) => ref.value).sort()).toEqual(tenant.membersOf(group.externalId).sort());
  }
  expect(fetched.memberDeltaPages).toBe(0);
}

beforeAll(async () => {
  emulator = await startEntraEmulator({
    membersPerRecord: 5,
    realism: { spreadGroupRecords: true, duplicateRate: 0.2, emptyPageRate: 0.2, omitNulls: true, partialRecords: true, goneWithLocation: true },
  });
  const home = emulator.createTenant({ domain: 'platform.onmicrosoft.com' });
  const certificate = await generateCertificate({ subject: 'dirsync rounds test', validityDays: 3 });
  const appId = emulator.registerApplication({ homeTenantId: home.tenantId, displayName: 'dirsync connector', certificates: [certificate.certificatePem] }).appId;
  tenant = emulator.createTenant();
  emulator.grantConsent(tenant.tenantId, appId);
  generated = populateEntraTenant(tenant, { users: 60, groups: 5, membersPerGroup: 30 });
  const settings = entraIdSettingsSchema.parse({
    tenantId: tenant.tenantId,
    connectorId: randomUUID(),
    authorityHost: emulator.authorityHost,
    graphBaseUrl: emulator.graphBaseUrl,
    caPem: emulator.caPem,
    pageSize: 4,
    retry: { baseDelayMs: 10, maxDelayMs: 200, maxWaitMs: 60_000, maxAttempts: 4 },
  });
  const secret = encodeCertificateSecret({ clientId: appId, certificatePem: certificate.certificatePem, privateKeyPem: certificate.privateKeyPem });
  provider = createEntraIdProvider(settings, secret, { tokenCache: new EntraTokenCache(), sleep: async () => undefined, destinations: testDestinations });
});

afterAll(async () => {
  await provider?.close();
  await emulator?.close();
});

it('hands each group on once, whole, however its parts are spread; a user listed twice is flagged as a repeat', async () => {
  const fetched = await read(provider.fetchFull(signal()));
  expectWholeGroups(fetched);
  const users = fetched.objects.filter((object) => object.type === 'user');
  expect(users.filter((user) => user.repeat !== true).map((user) => user.externalId).sort()).toEqual([...generated.userIds].sort());
  // The round replayed some users (duplicateRate): each replay is flagged, none is new.
  const repeats = users.filter((user) => user.repeat === true);
  expect(repeats.length).toBeGreaterThan(0);
  for (const user of repeats) expect(generated.userIds).toContain(user.externalId);
  // A full round's objects are whole.
  expect(fetched.objects.some((object) => object.partial !== undefined)).toBe(false);
  expect(fetched.cursor).toBeDefined();
});

it('reads the groups round alongside the users round, a groups page asked for only after each users page handed on', async () => {
  const before = { users: emulator.requestsTo('graph', '/users/delta').length, groups: emulator.requestsTo('graph', '/groups/delta').length };
  const counts: { users: number; groups: number }[] = [];
  const fetched = await read(provider.fetchFull(signal()), () => {
    counts.push({
      users: emulator.requestsTo('graph', '/users/delta').length - before.users,
      groups: emulator.requestsTo('graph', '/groups/delta').length - before.groups,
    });
  });
  expectWholeGroups(fetched);
  const groupRequests = emulator.requestsTo('graph', '/groups/delta').length - before.groups;
  const userRequests = emulator.requestsTo('graph', '/users/delta').length - before.users;
  expect(groupRequests).toBeGreaterThan(1);
  expect(userRequests).toBeGreaterThan(groupRequests);
  // The first users page is handed on before any groups page is asked for.
  expect(counts[0]).toEqual({ users: 1, groups: 0 });
  // Never more groups pages than users pages handed on: a read-ahead of one page, not a round.
  for (const count of counts) expect(count.groups).toBeLessThanOrEqual(count.users);
  // The groups round was over before the users round's last page was handed on.
  const lastUsersPage = counts.findIndex((count) => count.users === userRequests);
  expect(counts[lastUsersPage]?.groups).toBe(groupRequests);
});

it('starts the groups over when the round expires midway (410 Gone with a Location), dropping members removed meanwhile', async () => {
  const before = emulator.requestsTo('graph', '/groups/delta').length;
  let expired = false;
  const fetched = await read(provider.fetchFull(signal()), () => {
    // Two pages of groups read: the tenant changes and its state tokens expire.
    if (expired || emulator.requestsTo('graph', '/groups/delta').length - before < 2) return;
    expired = true;
    for (const group of tenant.groupIds.ids) tenant.removeMembers(group, tenant.membersOf(group).slice(0, 12));
    emulator.expireDeltaTokens(tenant.tenantId);
  });
  expect(expired).toBe(true);
  const gone = emulator.requestsTo('graph', '/groups/delta').slice(before).filter((request) => request.status === 410);
  expect(gone).toHaveLength(1);
  expectWholeGroups(fetched);
});

it('reads delta records as partial (what a record leaves out is not cleared, an explicit null is) and member changes once per group', async () => {
  const { cursor } = await read(provider.fetchFull(signal()));
  const [u0, u1] = generated.userIds as [string, string];
  tenant.updateUser(u0, { jobTitle: 'Lead' });
  tenant.updateUser(u1, { department: null });
  const [g0, g1] = tenant.groupIds.ids as [string, string];
  const joining = generated.userIds.filter((id) => !tenant.membersOf(g0).includes(id)).slice(0, 12);
  const leaving = tenant.membersOf(g1).slice(0, 9);
  tenant.addMembers(g0, joining);
  tenant.removeMembers(g1, leaving);
  const delta = await read(provider.fetchDelta(cursor as Cursor, signal()));
  // Spread over records and pages by Graph, merged into one change per group.
  const byGroup = new Map(delta.memberDeltas.map((change) => [change.groupExternalId, change]));
  expect(byGroup.size).toBe(delta.memberDeltas.length);
  expect(byGroup.get(g0)?.added.map((ref) => ref.value).sort()).toEqual([...joining].sort());
  expect(byGroup.get(g0)?.removed).toEqual([]);
  expect(byGroup.get(g1)?.removed.map((ref) => ref.value).sort()).toEqual([...leaving].sort());
  const changed = new Map(delta.objects.map((object) => [object.externalId, object]));
  expect(changed.get(u0)).toMatchObject({ attributes: { jobTitle: 'Lead' }, partial: { cleared: [] } });
  expect(Object.keys(changed.get(u0)?.attributes ?? {})).toEqual(['jobTitle']);
  expect(changed.get(u1)).toMatchObject({ attributes: {}, partial: { cleared: ['department'] } });
});
