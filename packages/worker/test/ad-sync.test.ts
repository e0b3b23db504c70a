import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Attribute, Change, type Client, Control } from 'ldapts';
import { pino } from 'pino';
import {
  close,
  connect,
  createAccount,
  createIntegration,
  createKeyRing,
  type Db,
  generateSecretKey,
  getIntegration,
  getRun,
  type Run,
  setCursor,
} from '@dirsync/db';
import { SYNC_QUEUE } from '@dirsync/jobs';
import {
  adDirectoryCounts,
  addAdContact,
  addAdGroup,
  addAdOu,
  addAdUser,
  adNames,
  createTestCertificates,
  createTestDatabase,
  createTestQueuePrefix,
  type SharedSamba,
  sharedSamba,
  testRedisUrl,
  type TestDatabase,
  type TestQueuePrefix,
  waitFor,
  testDestinations,
} from '@dirsync/testkit';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';

// Active Directory end to end: the run's Samba DC, the AD provider built from stored settings and
// the decrypted password, the BullMQ worker, Redis and PostgreSQL. Two integrations: the seed
// directory (2,000 users, a 1,600-member group) and an OU of this file, whose tests continue from
// the state the previous one left.

const timeoutMs = 120_000;

let dc: SharedSamba;
let admin: Client;
let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let queue: Queue;
let worker: DirsyncWorker;
let accountId: string;
let ring: ReturnType<typeof createKeyRing>;
let root: string;
let scope: string;
let outside: string;
let seedIntegration: string;
let integration: string;
const dns: Record<string, string> = {};
const durations: string[] = [];

function settings(base: string, change: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    url: dc.ldapsUrl,
    bindDn: dc.reader.dn,
    tls: { caPem: dc.caPem, serverName: dc.dnsHostName },
    baseDns: [base],
    pageSize: 500,
    ...change,
  };
}

beforeAll(async () => {
  dc = await sharedSamba();
  admin = await dc.client();
  database = await createTestDatabase('adsync');
  db = connect(database.url, { max: 6 });
  prefix = createTestQueuePrefix('adsync');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  ring = createKeyRing({ current: generateSecretKey() });
  accountId = (await createAccount(db, { name: 'ad-e2e' })).id;
  worker = createWorker({ db, destinations: testDestinations, redisUrl: testRedisUrl, prefix: prefix.prefix, concurrency: 1, keyRing: ring, logger: pino({ level: 'silent' }), workerId: 'ad-e2e' });

  root = await dc.createOu('adsync');
  scope = await addAdOu(admin, root, 'Staff');
  outside = await addAdOu(admin, root, 'Leavers');
  await addAdOu(admin, scope, 'Sales');
  for (const name of ['Ann', 'Bob', 'Cid', 'Dee', 'Eve', 'Fay', 'Gus']) {
    dns[name] = await addAdUser(admin, scope, name, { mail: `${name.toLowerCase()}@dirsync.test`, title: 'Clerk', proxyAddresses: [`SMTP:${name.toLowerCase()}@dirsync.test`] });
  }
  dns['Kit'] = await addAdContact(admin, scope, 'Kit', { mail: 'kit@partner.example' });
  dns['Team'] = await addAdGroup(admin, scope, 'Team', [dns['Ann'], dns['Bob'], dns['Dee'], dns['Eve'], dns['Kit']] as string[]);
  dns['All'] = await addAdGroup(admin, scope, 'All', [dns['Team'], dns['Cid']] as string[]);

  const add = async (name: string, base: string, change: Record<string, unknown> = {}) =>
    (await createIntegration(db, { accountId, kind: 'active_directory', name, settings: settings(base, change) }, { ring, plaintext: dc.reader.password })).id;
  // Ranges of 1,000 values: the 1,600-member group is read through range retrieval.
  seedIntegration = await add('seed', dc.seed.ouDn, { rangeSize: 1000 });
  integration = await add('staff', scope);
}, timeoutMs);

afterAll(async () => {
  if (durations.length > 0) process.stdout.write(`AD sync durations (ms): ${durations.join(', ')}\n`);
  await worker?.close();
  await queue?.close();
  await prefix?.cleanup();
  if (db) await close(db);
  await database?.drop();
  await admin?.unbind();
  await dc?.release();
}, timeoutMs);

async function sync(integrationId: string, mode: 'full' | 'delta', attempts = 1): Promise<Run> {
  const runId = randomUUID();
  const job = await queue.add('sync', { integrationId, runId, mode, trigger: 'manual', dryRun: false }, { jobId: `run.${runId}`, attempts, backoff: { type: 'fixed', delay: 10 } });
  // The run row is written a moment before the queue counts the attempt: wait for the job to end
  // too, so a test reading the job's attempts sees the final count.
  await waitFor(async () => (await job.isCompleted()) || (await job.isFailed()), { timeoutMs: 100_000, what: `the ${mode} job to end` });
  return waitFor(
    async () => {
      const run = await getRun(db, runId);
      return run && !['queued', 'running'].includes(run.status) ? run : undefined;
    },
    { timeoutMs: 10_000, what: `the ${mode} run to end` },
  );
}

interface Row {
  external_id: string;
  type: string;
  dn: string;
  attributes: Record<string, unknown>;
  deleted: boolean;
}

async function object(integrationId: string, dn: string): Promise<Row | undefined> {
  const [row] = await db.$client<Row[]>`
    select external_id, type, dn, attributes, deleted_at is not null as deleted from directory_objects
    where integration_id = ${integrationId} and dn = ${dn.toLowerCase()}`;
  return row;
}

async function byId(externalId: string): Promise<Row | undefined> {
  const [row] = await db.$client<Row[]>`
    select external_id, type, dn, attributes, deleted_at is not null as deleted from directory_objects
    where integration_id = ${integration} and external_id = ${externalId}`;
  return row;
}

async function idOf(name: string): Promise<string> {
  const row = await object(integration, dns[name] as string);
  if (!row) throw new Error(`${name} is not stored`);
  return row.external_id;
}

async function liveCount(integrationId: string, type?: string): Promise<number> {
  const [row] = await db.$client<{ n: number }[]>`
    select count(*)::int as n from directory_objects
    where integration_id = ${integrationId} and deleted_at is null and (${type ?? null}::text is null or type = ${type ?? null})`;
  return row?.n ?? 0;
}

/** Live edges as `group>member`, sorted. */
async function edges(integrationId: string, groupExternalId?: string): Promise<string[]> {
  const rows = await db.$client<{ edge: string }[]>`
    select group_external_id || '>' || member_external_id as edge from memberships
    where integration_id = ${integrationId} and deleted_at is null
      and (${groupExternalId ?? null}::text is null or group_external_id = ${groupExternalId ?? null})
    order by 1`;
  return rows.map((r) => r.edge);
}

const replace = (type: string, values: string[]) => new Change({ operation: 'replace', modification: new Attribute({ type, values }) });
const addMember = (dn: string) => new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [dn] }) });
const removeMember = (dn: string) => new Change({ operation: 'delete', modification: new Attribute({ type: 'member', values: [dn] }) });

describe('the seed directory', () => {
  const counts = () => adDirectoryCounts(dc.seed.spec);

  test('a first sync runs full and stores every user, contact, group and membership, the 1,600-member group complete', async () => {
    const run = await sync(seedIntegration, 'delta');
    const { users, groups, contacts, memberships } = counts();
    expect(run).toMatchObject({
      status: 'succeeded',
      mode: 'full',
      created: users + groups + contacts,
      deleted: 0,
      failed: 0,
      membershipsAdded: memberships,
      issueCount: 0,
    });
    expect(run.reason).toMatch(/^no cursor/);
    durations.push(`full ${users + groups + contacts} objects / ${memberships} memberships: ${run.durationMs}`);
    expect(await liveCount(seedIntegration, 'user')).toBe(users);
    expect(await liveCount(seedIntegration, 'contact')).toBe(contacts);
    const big = await object(seedIntegration, adNames.largeGroupDn(dc.seed.ouDn, dc.seed.spec.ou));
    expect(await edges(seedIntegration, big?.external_id)).toHaveLength(dc.seed.spec.largeGroupMembers ?? 0);
    const nested = await object(seedIntegration, adNames.nestedGroupDn(dc.seed.ouDn, dc.seed.spec.ou));
    const group0 = await object(seedIntegration, adNames.groupDn(dc.seed.ouDn, dc.seed.spec.ou, 0));
    expect(await edges(seedIntegration, nested?.external_id)).toContain(`${nested?.external_id}>${group0?.external_id}`);
    expect((await getIntegration(db, seedIntegration))?.cursor).toMatchObject({ kind: 'active_directory', method: 'usn', dc: dc.dnsHostName });
  }, timeoutMs);

  test('a delta of the unchanged directory writes nothing', async () => {
    const run = await sync(seedIntegration, 'delta');
    expect(run).toMatchObject({ status: 'succeeded', mode: 'delta', created: 0, updated: 0, deleted: 0, membershipsAdded: 0, membershipsRemoved: 0 });
    durations.push(`delta without changes: ${run.durationMs}`);
  }, timeoutMs);
});

describe('an OU through its changes', () => {
  test('the first full sync stores users, the contact, groups and nested membership', async () => {
    const run = await sync(integration, 'full');
    expect(run).toMatchObject({ status: 'succeeded', mode: 'full', created: 10, membershipsAdded: 7, failed: 0, issueCount: 0 });
    const ann = await object(integration, dns['Ann'] as string);
    expect(ann).toMatchObject({ type: 'user', attributes: { mail: 'ann@dirsync.test', primarySmtpAddress: 'ann@dirsync.test', title: 'Clerk', enabled: true, lockedOut: false } });
    expect(ann?.external_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(await object(integration, dns['Kit'] as string)).toMatchObject({ type: 'contact' });
    expect(await edges(integration, await idOf('All'))).toEqual([`${await idOf('All')}>${await idOf('Cid')}`, `${await idOf('All')}>${await idOf('Team')}`].sort());
  }, timeoutMs);

  test('an attribute change is a delta update of that object only', async () => {
    await admin.modify(dns['Ann'] as string, replace('title', ['Chief Clerk']));
    const run = await sync(integration, 'delta');
    expect(run).toMatchObject({ status: 'succeeded', mode: 'delta', created: 0, updated: 1, deleted: 0 });
    expect((await object(integration, dns['Ann'] as string))?.attributes['title']).toBe('Chief Clerk');
  }, timeoutMs);

  test('a rename and a move within scope keep the external id and update the DN', async () => {
    const bob = await idOf('Bob');
    const cid = await idOf('Cid');
    await admin.modifyDN(dns['Bob'] as string, 'CN=Robert');
    await admin.modifyDN(dns['Cid'] as string, `CN=Cid,OU=Sales,${scope}`);
    const run = await sync(integration, 'delta');
    expect(run).toMatchObject({ status: 'succeeded', mode: 'delta', created: 0, deleted: 0 });
    expect(run.updated).toBeGreaterThanOrEqual(2);
    expect((await byId(bob))?.dn).toBe(`cn=robert,${scope}`.toLowerCase());
    expect((await byId(cid))?.dn).toBe(`cn=cid,ou=sales,${scope}`.toLowerCase());
    dns['Bob'] = `CN=Robert,${scope}`;
    dns['Cid'] = `CN=Cid,OU=Sales,${scope}`;
    expect(await edges(integration, await idOf('All'))).toContain(`${await idOf('All')}>${cid}`);
  }, timeoutMs);

  test('a move out of scope deletes the object and its membership for this integration', async () => {
    const dee = await idOf('Dee');
    const team = await idOf('Team');
    expect(await edges(integration, team)).toContain(`${team}>${dee}`);
    await admin.modifyDN(dns['Dee'] as string, `CN=Dee,${outside}`);
    const run = await sync(integration, 'delta');
    expect(run).toMatchObject({ status: 'succeeded', mode: 'delta', deleted: 1, created: 0 });
    expect((await byId(dee))?.deleted).toBe(true);
    expect(await edges(integration, team)).not.toContain(`${team}>${dee}`);
  }, timeoutMs);

  test('a deletion seen through its tombstone removes the object and its edges, though its groups did not change', async () => {
    const eve = await idOf('Eve');
    const team = await idOf('Team');
    const before = await edges(integration, team);
    expect(before).toContain(`${team}>${eve}`);
    await admin.del(dns['Eve'] as string);
    const run = await sync(integration, 'delta');
    expect(run).toMatchObject({ status: 'succeeded', mode: 'delta', deleted: 1, updated: 0, membershipsRemoved: 1 });
    expect((await byId(eve))?.deleted).toBe(true);
    expect(await edges(integration, team)).toEqual(before.filter((edge) => edge !== `${team}>${eve}`));
  }, timeoutMs);

  test('membership additions, removals and nesting are applied by a delta', async () => {
    const [team, all, ann, fay, gus, kit] = await Promise.all(['Team', 'All', 'Ann', 'Fay', 'Gus', 'Kit'].map(idOf));
    dns['Sub'] = await addAdGroup(admin, scope, 'Sub', [dns['Gus'] as string]);
    await admin.modify(dns['Team'] as string, [addMember(dns['Fay'] as string), removeMember(dns['Ann'] as string)]);
    await admin.modify(dns['All'] as string, addMember(dns['Sub'] as string));
    const run = await sync(integration, 'delta');
    expect(run).toMatchObject({ status: 'succeeded', mode: 'delta', created: 1, deleted: 0 });
    const sub = await idOf('Sub');
    expect(await edges(integration, team)).toEqual([`${team}>${await idOf('Bob')}`, `${team}>${fay}`, `${team}>${kit}`].sort());
    expect(await edges(integration, team)).not.toContain(`${team}>${ann}`);
    expect(await edges(integration, all)).toContain(`${all}>${sub}`);
    expect(await edges(integration, sub)).toEqual([`${sub}>${gus}`]);
  }, timeoutMs);

  test('a disabled and a re-enabled account are updates of enabled', async () => {
    const fay = dns['Fay'] as string;
    await admin.modify(fay, replace('userAccountControl', ['546']));
    const disabled = await sync(integration, 'delta');
    expect(disabled).toMatchObject({ status: 'succeeded', updated: 1 });
    expect((await object(integration, fay))?.attributes['enabled']).toBe(false);
    await admin.modify(fay, replace('userAccountControl', ['544']));
    const enabled = await sync(integration, 'delta');
    expect(enabled).toMatchObject({ status: 'succeeded', updated: 1 });
    expect((await object(integration, fay))?.attributes['enabled']).toBe(true);
  }, timeoutMs);

  test('a full sync finds the same state as the deltas did', async () => {
    const run = await sync(integration, 'full');
    expect(run).toMatchObject({ status: 'succeeded', mode: 'full', created: 0, updated: 0, deleted: 0, membershipsAdded: 0, membershipsRemoved: 0 });
  }, timeoutMs);

  test('a wrong password fails the run at once with a clear reason, and changes nothing', async () => {
    const snapshot = async () => JSON.stringify(await db.$client`select * from directory_objects where integration_id = ${integration} order by external_id`);
    const before = await snapshot();
    const cursorBefore = (await getIntegration(db, integration))?.cursor;
    const wrong = await createIntegration(db, { accountId, kind: 'active_directory', name: 'wrong', settings: settings(scope) }, { ring, plaintext: 'Not-The-Passw0rd' });
    const run = await sync(wrong.id, 'delta', 3);
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/invalid credentials as CN=dirsync-reader,CN=Users,DC=dirsync,DC=test on ldaps:\/\/.*wrong password/);
    expect(run.error).not.toContain('Not-The-Passw0rd');
    expect(await liveCount(wrong.id)).toBe(0);
    // Not retried: an authentication failure cannot heal by itself.
    const job = await queue.getJob(`run.${run.id}`);
    expect(job?.attemptsMade).toBe(1);
    expect(await snapshot()).toBe(before);
    expect((await getIntegration(db, integration))?.cursor).toEqual(cursorBefore);
  }, timeoutMs);

  test('LDAPS with another CA fails clearly and is not retried', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dirsync-other-ca-'));
    try {
      const other = await createTestCertificates(dir);
      const bad = await createIntegration(
        db,
        { accountId, kind: 'active_directory', name: 'wrong-ca', settings: settings(scope, { tls: { caPem: other.caPem, serverName: dc.dnsHostName } }) },
        { ring, plaintext: dc.reader.password },
      );
      const run = await sync(bad.id, 'full', 3);
      expect(run.status).toBe('failed');
      expect(run.error).toMatch(/TLS certificate verification failed for ldaps:\/\/.*check tls\.caPem/);
      expect((await queue.getJob(`run.${run.id}`))?.attemptsMade).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, timeoutMs);

  test('a cursor from before a restore of the DC (other invocationId) makes the delta a full sync that says why', async () => {
    const stored = (await getIntegration(db, integration))?.cursor as Record<string, unknown>;
    await setCursor(db, integration, { ...stored, invocationId: '00000000-0000-4000-8000-000000000000' });
    const run = await sync(integration, 'delta');
    expect(run).toMatchObject({ status: 'succeeded', mode: 'full', created: 0, updated: 0, deleted: 0 });
    expect(run.reason).toMatch(/invocationId of dc1\.dirsync\.test changed .*restored from backup/);
    expect((await getIntegration(db, integration))?.cursor).toMatchObject({ invocationId: stored['invocationId'] });
  }, timeoutMs);
});

/** Reanimates a tombstone under `dn`, the way AD tools restore a deleted object (Show Deleted). */
async function restoreTombstone(externalId: string, cn: string, dn: string): Promise<void> {
  const showDeleted = new Control('1.2.840.113556.1.4.417', { critical: true });
  // A tombstone is renamed "<cn>\nDEL:<objectGUID>" under CN=Deleted Objects.
  const { searchEntries } = await admin.search(
    `CN=Deleted Objects,${dc.baseDn}`,
    { filter: `(&(isDeleted=TRUE)(cn=${cn}*))`, attributes: ['cn'] },
    showDeleted,
  );
  const tombstone = searchEntries.find((entry) => entry.dn.toLowerCase().includes(externalId));
  if (!tombstone) throw new Error(`no tombstone of ${externalId}`);
  await admin.modify(
    tombstone.dn,
    [
      new Change({ operation: 'delete', modification: new Attribute({ type: 'isDeleted' }) }),
      new Change({ operation: 'replace', modification: new Attribute({ type: 'distinguishedName', values: [dn] }) }),
    ],
    showDeleted,
  );
}

describe('memberships and references after deltas', () => {
  test('users moved into the scope from outside, new or known before, get their edges to the synced groups in the next delta', async () => {
    const [team, sub, dee] = (await Promise.all(['Team', 'Sub', 'Dee'].map(idOf))) as [string, string, string];
    // Dee left for the Leavers OU earlier and is still a member of Team there.
    const deeOutside = `CN=Dee,${outside}`;
    const ivyOutside = await addAdUser(admin, outside, 'Ivy');
    await addAdGroup(admin, outside, 'Far', [ivyOutside]);
    await admin.modify(dns['Team'] as string, addMember(ivyOutside));
    await admin.modify(dns['Sub'] as string, addMember(ivyOutside));
    // Team and Sub are read again: they name members outside the scope.
    const before = await sync(integration, 'delta');
    expect(before).toMatchObject({ status: 'succeeded', created: 0 });
    expect(await edges(integration)).not.toContain(`${team}>${dee}`);

    await admin.modifyDN(ivyOutside, `CN=Ivy,${scope}`);
    await admin.modifyDN(deeOutside, `CN=Dee,${scope}`);
    dns['Ivy'] = `CN=Ivy,${scope}`;
    dns['Dee'] = `CN=Dee,${scope}`;
    const run = await sync(integration, 'delta');
    // Only the two users are read: the groups' uSNChanged did not move.
    expect(run).toMatchObject({ status: 'succeeded', mode: 'delta', fetched: 2, created: 1, restored: 1, deleted: 0, membershipsAdded: 3, membershipsRemoved: 0 });
    const ivy = await idOf('Ivy');
    expect((await byId(dee))?.deleted).toBe(false);
    const joined = (await edges(integration)).filter((edge) => edge.endsWith(`>${ivy}`) || edge.endsWith(`>${dee}`));
    expect(joined).toEqual([`${sub}>${ivy}`, `${team}>${dee}`, `${team}>${ivy}`].sort());

    // A full sync finds the same edges.
    expect(await sync(integration, 'full')).toMatchObject({ status: 'succeeded', created: 0, updated: 0, deleted: 0, membershipsAdded: 0, membershipsRemoved: 0 });
  }, timeoutMs);

  test('a manager moved out or deleted is cleared from its reports in that delta, and re-linked as the directory says when it comes back', async () => {
    dns['Max'] = await addAdUser(admin, scope, 'Max');
    dns['Nia'] = await addAdUser(admin, scope, 'Nia', { manager: dns['Max'] as string });
    dns['Ona'] = await addAdUser(admin, scope, 'Ona', { manager: dns['Max'] as string });
    expect(await sync(integration, 'delta')).toMatchObject({ status: 'succeeded', created: 3 });
    const max = await idOf('Max');
    const managers = async () => Promise.all(['Nia', 'Ona'].map(async (name) => (await object(integration, dns[name] as string))?.attributes['manager']));
    const inDirectory = async () => {
      const { searchEntries } = await admin.search(dns['Nia'] as string, { scope: 'base', attributes: ['manager'] });
      return searchEntries[0]?.['manager'];
    };
    expect(await managers()).toEqual([max, max]);

    // Moved out of the scope: deleted for this integration, its reports keep it in the directory.
    await admin.modifyDN(dns['Max'] as string, `CN=Max,${outside}`);
    expect(await sync(integration, 'delta')).toMatchObject({ status: 'succeeded', fetched: 0, deleted: 1, updated: 2 });
    expect(await managers()).toEqual([undefined, undefined]);
    // Back in: its reports did not change, it names them (directReports).
    await admin.modifyDN(`CN=Max,${outside}`, dns['Max'] as string);
    expect(await sync(integration, 'delta')).toMatchObject({ status: 'succeeded', fetched: 1, restored: 1, updated: 2 });
    expect(await managers()).toEqual([max, max]);

    // Deleted: the DC drops the links without changing the reports, the delta clears them itself.
    await admin.del(dns['Max'] as string);
    expect(await sync(integration, 'delta')).toMatchObject({ status: 'succeeded', fetched: 0, deleted: 1, updated: 2 });
    expect((await byId(max))?.deleted).toBe(true);
    expect(await managers()).toEqual([undefined, undefined]);
    // Restored from its tombstone: the DC does not give the links back (no Recycle Bin), and
    // neither does the delta.
    await restoreTombstone(max, 'Max', dns['Max'] as string);
    expect(await sync(integration, 'delta')).toMatchObject({ status: 'succeeded', mode: 'delta', restored: 1, updated: 0, deleted: 0 });
    expect((await byId(max))?.deleted).toBe(false);
    expect(await inDirectory()).toEqual([]);
    expect(await managers()).toEqual([undefined, undefined]);

    // What the deltas hold is what the directory says, down to the content hashes.
    expect(await sync(integration, 'full')).toMatchObject({ status: 'succeeded', created: 0, updated: 0, deleted: 0, restored: 0 });
  }, timeoutMs);
});
