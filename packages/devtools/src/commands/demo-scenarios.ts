// The scenarios of `dirsync demo`: loaded by its action (demo.ts) only when the demo runs.
import type { SyncMode } from '@dirsync/contracts';
import { Attribute, Change, type Client } from 'ldapts';
import {
  createAccount,
  createIntegration,
  getConnector,
  listConnectorCredentials,
  listActionsNeeded,
  countIntegrationHoldings,
  getRun,
  listRuns,
  readIntegrationContents,
  type Run,
} from '@dirsync/db';
import {
  diffTenantContents,
  type EntraEmulator,
  type EntraRealism,
  expectedTenantContents,
  generatedUser,
  groupDn,
  populateEntraTenant,
  realisticEntraBehaviour,
  type SlapdServer,
  startEntraEmulator,
  startSlapd,
  userDn,
  waitFor,
} from '@dirsync/testkit';
import { setUpEmulatedConnector } from '../bench/entra-bench.ts';
import { type Context, describeAction, describeRun, requestIntegrationSync, table } from '@dirsync/cli';
import { ldapIntegrationSettings } from '../local-directory.ts';
import { demoServiceEnv } from './demo-env.ts';
import { type DemoRun, type DemoWatch, startSchedulerAndWorker } from './demo-run.ts';

const finalStatuses = new Set(['succeeded', 'failed', 'blocked', 'dry_run']);

/**
 * The demo's integrations sync deltas when the demo asks: their scheduled deltas come once a
 * year (the first full covers that slot), so a delta due every 5 minutes never takes the
 * demo's changes before its own delta does.
 */
const demoDeltaCron = '0 0 1 1 *';

/** The integration's first run (the oldest), once it has ended. */
function firstRunOf(db: ReturnType<Context['db']>, integrationId: string): () => Promise<Run | undefined> {
  return async () => (await listRuns(db, { integrationId, limit: 50 })).at(-1);
}

async function waitForFinishedRun(watch: DemoWatch, find: () => Promise<Run | undefined>, what: string): Promise<Run> {
  return waitFor(
    async () => {
      // A process of the demo that exited, or Ctrl-C, ends the wait at once.
      watch.check();
      const run = await find();
      return run && finalStatuses.has(run.status) ? run : undefined;
    },
    { timeoutMs: 5 * 60_000, intervalMs: 200, what },
  );
}

/** Asks for a sync as another service would (enqueue client) and waits for its run to end. */
async function requestAndWait(ctx: Context, watch: DemoWatch, integrationId: string, mode: SyncMode, what: string): Promise<Run> {
  const job = await requestIntegrationSync(ctx, { integrationId, mode, trigger: 'manual', dryRun: false, requestedBy: 'demo' });
  return waitForFinishedRun(watch, () => getRun(ctx.db(), job.runId), what);
}

/** What PostgreSQL holds for an integration: live and soft-deleted objects by type, live edges. */
async function describeHoldings(ctx: Context, integrationId: string): Promise<string> {
  const holdings = await countIntegrationHoldings(ctx.db(), integrationId);
  return [
    'what PostgreSQL now holds for the integration:',
    table(['type', 'live', 'soft-deleted'], holdings.objects.map((c) => [c.type, c.live, c.deleted])),
    `memberships: ${holdings.liveMemberships}`,
  ].join('\n');
}

/** The directory changes the demo makes between syncs, described as they happen. */
async function changeDirectory(server: SlapdServer, users: number, say: (line: string) => void): Promise<void> {
  const client: Client = await server.client();
  try {
    for (const i of [1, 2, 3, 4, 5]) {
      await client.modify(userDn(i, server.suffix), new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Chief Demo Officer'] }) }));
    }
    say('  changed the title of 5 users');
    for (let k = 0; k < 3; k++) {
      const i = users + k;
      const attributes = generatedUser(i);
      await client.add(userDn(i, server.suffix), attributes);
    }
    say('  added 3 users');
    await client.modify(groupDn(0, server.suffix), new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [userDn(users, server.suffix)] }) }));
    say('  added one of them to a group');
    for (const i of [10, 11]) await client.del(userDn(i, server.suffix));
    say('  deleted 2 users (a delta cannot see deletions in a plain LDAP directory; the full sync finds them)');
  } finally {
    await client.unbind();
  }
}

/** `dirsync demo`: a generated OpenLDAP directory through a real scheduler and worker. */
export async function ldapDemo(run: DemoRun, ctx: Context, watch: DemoWatch, size: { users: number; groups: number; members: number }, breakService: string | undefined, say: (line: string) => void): Promise<void> {
  const users = size.users;
  let server: SlapdServer | undefined;
  try {
    say(`starting a throwaway slapd with ${users} users and ${size.groups} groups of ${size.members} members (StartTLS, test CA)`);
    server = await startSlapd({ tls: true, data: { users, groups: size.groups, membersPerGroup: size.members, timestamp: new Date(Date.now() - 86_400_000) } });
    say(`  ${server.url}`);

    const db = ctx.db();
    // The run's database is new: the account and its integration are this demo's alone.
    const account = await createAccount(db, { name: 'demo' });
    const integration = await createIntegration(
      db,
      {
        accountId: account.id,
        kind: 'ldap',
        name: 'Demo directory',
        description: 'generated OpenLDAP directory of the demo',
        settings: ldapIntegrationSettings(server) as Record<string, unknown>,
        deltaCron: demoDeltaCron,
      },
      { ring: ctx.keyRing(), plaintext: server.readerPassword },
    );
    say(`account "demo", integration ${integration.id} (read-only service account ${server.readerDn})`);

    startSchedulerAndWorker(watch, run, demoServiceEnv(ctx, run), breakService);
    say(`started a scheduler and a worker (logs in .tmp/demo-${run.id}-*.log)\n`);

    say('1. the scheduler sees the new integration and enqueues its first sync (a full sync: there is no cursor yet)');
    const first = await waitForFinishedRun(watch, firstRunOf(db, integration.id), 'the first scheduled sync');
    say(`${describeRun(first)}\n`);

    say('2. changing the directory:');
    await changeDirectory(server, users, say);
    say('   asking for a delta sync now (as another service would, through the enqueue client)');
    const deltaRun = await requestAndWait(ctx, watch, integration.id, 'delta', 'the delta sync');
    say(`${describeRun(deltaRun)}\n`);

    say('3. a full sync (mark and sweep) finds the deleted entries');
    const fullRun = await requestAndWait(ctx, watch, integration.id, 'full', 'the full sync');
    say(`${describeRun(fullRun)}\n`);

    say(await describeHoldings(ctx, integration.id));
    say('\nall runs:');
    const runs = await listRuns(db, { integrationId: integration.id, limit: 10 });
    say(table(['run', 'mode', 'trigger', 'status', 'created', 'updated', 'unchanged', 'deleted'], runs.reverse().map((r) => [r.id, r.mode, r.trigger, r.status, r.created, r.updated, r.unchanged, r.deleted])));
    const failed = [first, deltaRun, fullRun].filter((r) => r.status !== 'succeeded');
    if (failed.length > 0) {
      process.exitCode = 1;
      say(`\n${failed.length} run(s) did not succeed: see ${run.logFile('worker')}`);
    } else {
      say('\ndemo finished: every run succeeded');
    }
  } finally {
    await watch.stop();
    await server?.stop();
  }
}

/** The difficulties a realistic emulated tenant puts on, in words. */
function describeRealism(realism: EntraRealism): string {
  const parts: string[] = [];
  if (realism.consentPropagationMs) parts.push(`permissions reach tokens ${realism.consentPropagationMs / 1000} s after consent`);
  if (realism.keyPropagationMs) parts.push(`new certificates are accepted up to ${realism.keyPropagationMs / 1000} s after they are added`);
  if (realism.replicationLagMs) parts.push(`changes reach delta queries ${realism.replicationLagMs / 1000} s late`);
  if (realism.spreadGroupRecords) parts.push('large groups are split across distant pages');
  if (realism.continuationWithProperties) parts.push('their continuation records repeat every property');
  if (realism.duplicateRate) parts.push(`${Math.round(realism.duplicateRate * 100)}% of objects come twice`);
  if (realism.partialRecords) parts.push('changed objects carry only the changed properties');
  if (realism.omitNulls) parts.push('null properties are left out');
  if (realism.emptyPageRate) parts.push('some pages are empty but go on');
  if (realism.serverPageSize) parts.push('the server chooses page sizes');
  if (realism.goneWithLocation) parts.push('expired delta tokens answer 410 Gone');
  if (realism.throttle) parts.push('requests are throttled per app and tenant');
  if (realism.consentErrorsWithoutState) parts.push('consent errors come back without state');
  return parts.join('; ');
}

/** `dirsync demo --entra`: an emulated tenant synced through a connector by real processes. */
export async function entraDemo(
  run: DemoRun,
  ctx: Context,
  watch: DemoWatch,
  size: { users: number; groups: number; members: number },
  realistic: boolean,
  breakService: string | undefined,
  say: (line: string) => void,
): Promise<void> {
  let emulator: EntraEmulator | undefined;
  try {
    const db = ctx.db();
    // A demo tenant is small: a tight budget makes the throttling (429 + Retry-After) show.
    const realism = realistic ? realisticEntraBehaviour({ throttle: { perAppPerTenant: { requests: 8, windowMs: 1_000 }, perTenant: { requests: 12, windowMs: 1_000 } } }) : undefined;
    emulator = await startEntraEmulator(realism ? { realism } : {});
    say(`started the Entra ID / Microsoft Graph emulator: authority ${emulator.authorityHost}, Graph ${emulator.graphBaseUrl} (HTTPS, its own CA, trusted by this connector only)`);
    if (realism) say(`  behaving as a real tenant at its most difficult: ${describeRealism(realism)}`);
    const connectorName = `demo-${Date.now().toString(36)}`;
    // The run's database is new: the account, connector and integration are this demo's alone.
    const account = await createAccount(db, { name: 'demo' });
    const setup = await setUpEmulatedConnector(db, ctx.keyRing(), emulator, connectorName, account.id);
    say(`connector "${connectorName}": app ${setup.appId}, certificate generated (private key stored encrypted)`);
    say(`the customer's administrator opened the admin-consent URL and approved:\n  ${setup.consentUrl.replace(/state=[^&]+/, 'state=…')}`);
    const tenant = emulator.tenant(setup.customerTenantId);
    const generated = populateEntraTenant(tenant, { users: size.users, groups: size.groups, membersPerGroup: size.members });
    say(`emulated tenant ${setup.customerTenantId}: ${size.users} users, ${size.groups} groups of ${size.members} members`);
    if (realistic) {
      // Groups larger than a page of members: Graph spreads them over several records and pages.
      const everyone = tenant.addGroup({ displayName: 'All staff', mailNickname: 'allstaff', securityEnabled: true });
      tenant.addMembers(everyone.id, generated.userIds);
      const nested = tenant.addGroup({ displayName: 'Everyone and the demo groups', securityEnabled: true });
      tenant.addMembers(nested.id, [...generated.userIds.slice(0, Math.ceil(generated.userIds.length / 2)), ...generated.groupIds]);
      say(`  and 2 large groups: "All staff" (${generated.userIds.length} members) and one of ${tenant.membersOf(nested.id).length} users and groups`);
    }

    const integration = await createIntegration(db, {
      accountId: account.id,
      kind: 'entra_id',
      name: 'Contoso (Entra ID)',
      description: 'emulated Microsoft Entra ID tenant of the demo',
      settings: { tenantId: setup.customerTenantId, connectorId: setup.connectorId },
      deltaCron: demoDeltaCron,
    });
    say(`account "demo", integration ${integration.id}`);

    startSchedulerAndWorker(watch, run, demoServiceEnv(ctx, run), breakService);
    say(`started a scheduler and a worker (logs in .tmp/demo-${run.id}-*.log)\n`);

    say('1. the scheduler enqueues the first sync (full: the initial Graph delta rounds) and the connector\'s first daily certificate rotation');
    const first = await waitForFinishedRun(watch, firstRunOf(db, integration.id), 'the first scheduled sync');
    say(`${describeRun(first)}\n`);
    const rotated = await waitFor(async () => {
      watch.check();
      const connector = await getConnector(db, setup.connectorId);
      return connector?.lastRotationStatus ? connector : undefined;
    }, { timeoutMs: 2 * 60_000, intervalMs: 200, what: 'the scheduled certificate rotation' });
    say(`certificate rotation: ${rotated.lastRotationStatus}${rotated.lastRotationError ? ` (${rotated.lastRotationError})` : ''}; certificates of the connector:`);
    const history = await listConnectorCredentials(db, setup.connectorId);
    say(table(['thumbprint', 'status', 'valid until'], history.map((h) => [h.thumbprint, h.status, h.notAfter])));
    say(`the app registration now holds ${emulator.application(setup.appId).keyCredentials.length} certificates (current and previous)\n`);

    say('2. changing the tenant:');
    const [u0, u1, u2] = generated.userIds as [string, string, string];
    for (const id of generated.userIds.slice(0, 5)) tenant.updateUser(id, { jobTitle: 'Chief Demo Officer' });
    say('  changed the job title of 5 users');
    const hires = [1, 2, 3].map((n) => tenant.addUser({ userPrincipalName: `new.hire${n}@contoso.example`, displayName: `New Hire ${n}` }));
    say('  added 3 users');
    tenant.addMembers(generated.groupIds[0] as string, hires.map((h) => h.id));
    tenant.removeMembers(generated.groupIds[1] as string, tenant.membersOf(generated.groupIds[1] as string).slice(0, 2));
    say('  added them to a group and removed 2 members from another');
    tenant.deleteUser(u1);
    tenant.deleteUser(u2, { permanent: true });
    const changedAt = Date.now();
    say('  deleted 2 users (one to the recycle bin, one for good): Graph reports both as @removed, so the delta deletes them');
    tenant.updateUser(u0, { department: null });
    say('  cleared the department of one user (Graph sends the changed property as null; the others stay)');
    const deltaRun = await requestAndWait(ctx, watch, integration.id, 'delta', 'the delta sync');
    say(`${describeRun(deltaRun)}\n`);

    say('3. Graph forgets the delta token (as after 7 days): the next delta runs as a full sync and says why');
    emulator.expireDeltaTokens(setup.customerTenantId);
    const expiredRun = await requestAndWait(ctx, watch, integration.id, 'delta', 'the delta sync after expiry');
    say(`${describeRun(expiredRun)}\n`);
    const runs = [first, deltaRun, expiredRun];

    let differences: string[] = [];
    if (realism) {
      say('4. every change is visible to Graph once replication caught up: one more delta, then the copy is compared with the tenant');
      const replicated = changedAt + (realism.replicationLagMs ?? 0);
      await waitFor(async () => { watch.check(); return Date.now() >= replicated ? true : undefined; }, { timeoutMs: 60_000, intervalMs: 100, what: 'the emulated replication' });
      const settledRun = await requestAndWait(ctx, watch, integration.id, 'delta', 'the last delta sync');
      say(`${describeRun(settledRun)}\n`);
      runs.push(settledRun);
    }
    differences = diffTenantContents(expectedTenantContents(tenant), await readIntegrationContents(db, integration.id));
    const expected = expectedTenantContents(tenant);
    say(
      differences.length === 0
        ? `the synced copy equals the emulated tenant: ${expected.objects.length} objects and ${expected.edges.length} memberships, every property and edge compared`
        : `the synced copy differs from the emulated tenant:\n${differences.map((d) => `  ${d}`).join('\n')}`,
    );
    if (realism) say(`Graph requests answered by the emulator: ${emulator.requests.length} (${emulator.requests.filter((r) => r.status === 429).length} throttled with 429)`);

    say(await describeHoldings(ctx, integration.id));
    const actions = await listActionsNeeded(db);
    say(`\nactions needed: ${actions.length === 0 ? 'none' : ''}`);
    for (const action of actions) say(`- ${describeAction(action)}`);
    const failed = runs.filter((r) => r.status !== 'succeeded');
    if (failed.length > 0 || rotated.lastRotationStatus !== 'succeeded' || differences.length > 0) {
      process.exitCode = 1;
      say(`\nsomething did not succeed: see ${run.logFile('worker')}`);
    } else {
      say('\ndemo finished: every run and the certificate rotation succeeded, and the copy equals the tenant');
    }
  } finally {
    await watch.stop();
    await emulator?.close();
  }
}
