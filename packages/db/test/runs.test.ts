import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import {
  approveRun,
  close,
  ConflictError,
  connect,
  createAccount,
  createIntegration,
  createRun,
  findApproval,
  finishRun,
  getRun,
  InvalidStateError,
  listRuns,
  maxStoredRunIssues,
  NotFoundError,
  requireRun,
  startRun,
  type Db,
  type Integration,
  type RunReport,
} from '../src/index.ts';
import type { SyncMode } from '@dirsync/contracts';

let database: TestDatabase;
let db: Db;
let accountId: string;

beforeAll(async () => {
  database = await createTestDatabase('runs');
  db = connect(database.url, { max: 2 });
  accountId = (await createAccount(db, { name: 'acme' })).id;
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

let integrationCount = 0;
async function newIntegration(): Promise<Integration> {
  integrationCount += 1;
  return createIntegration(db, { accountId, kind: 'ldap', name: `directory ${integrationCount}`, settings: {} });
}

/** A run that went through the whole lifecycle and ended with `report`. */
async function completedRun(integrationId: string, mode: SyncMode, report: RunReport, dryRun = false) {
  const run = await createRun(db, { integrationId, modeRequested: mode, trigger: 'schedule', dryRun });
  await startRun(db, run.id, { mode, workerId: 'worker-1' });
  return finishRun(db, run.id, report);
}

test('a run goes queued → running → finished with its report', async () => {
  const integration = await newIntegration();
  const id = randomUUID();
  const queued = await createRun(db, {
    id,
    integrationId: integration.id,
    jobId: 'sync:abc',
    modeRequested: 'delta',
    trigger: 'manual',
    dryRun: false,
    requestedBy: 'alice',
  });
  expect(queued).toMatchObject({ id, status: 'queued', modeRequested: 'delta', mode: null, trigger: 'manual', jobId: 'sync:abc' });
  expect(queued.startedAt).toBeNull();

  const running = await startRun(db, id, { mode: 'full', reason: 'no cursor: first sync runs full', workerId: 'worker-7' });
  expect(running).toMatchObject({ status: 'running', mode: 'full', reason: 'no cursor: first sync runs full', workerId: 'worker-7' });
  expect(running.startedAt).toBeInstanceOf(Date);

  const finished = await finishRun(db, id, {
    status: 'succeeded',
    fetched: 120,
    created: 100,
    updated: 5,
    unchanged: 15,
    membershipsAdded: 40,
    issues: [{ externalId: 'u-1', dn: 'uid=x,dc=test', reason: 'no entryUUID' }],
  });
  expect(finished).toMatchObject({
    status: 'succeeded',
    fetched: 120,
    created: 100,
    updated: 5,
    unchanged: 15,
    deleted: 0,
    membershipsAdded: 40,
    issueCount: 1,
    issues: [{ externalId: 'u-1', dn: 'uid=x,dc=test', reason: 'no entryUUID' }],
    error: null,
  });
  expect(finished.finishedAt).toBeInstanceOf(Date);
  expect(finished.durationMs).toEqual(expect.any(Number));
  expect(finished.durationMs).toBeGreaterThanOrEqual(0);
  expect(await getRun(db, id)).toEqual(finished);
});

test('createRun is idempotent on its id', async () => {
  const integration = await newIntegration();
  const id = randomUUID();
  const first = await createRun(db, { id, integrationId: integration.id, modeRequested: 'full', trigger: 'api' });
  await startRun(db, id, { mode: 'full', workerId: 'w' });
  const again = await createRun(db, { id, integrationId: integration.id, modeRequested: 'delta', trigger: 'schedule' });
  expect(again.id).toBe(first.id);
  expect(again).toMatchObject({ modeRequested: 'full', trigger: 'api', status: 'running' });

  const other = await newIntegration();
  await expect(createRun(db, { id, integrationId: other.id, modeRequested: 'full', trigger: 'api' })).rejects.toThrow(ConflictError);
  await expect(
    createRun(db, { integrationId: '3c9d0c1e-0000-4000-8000-000000000000', modeRequested: 'full', trigger: 'api' }),
  ).rejects.toThrow(NotFoundError);
});

test('issues are capped but counted; errors are stored; an explicit duration wins', async () => {
  const integration = await newIntegration();
  const issues = Array.from({ length: maxStoredRunIssues + 250 }, (_, i) => ({ externalId: `u-${i}`, reason: 'bad mail' }));
  const run = await completedRun(integration.id, 'full', {
    status: 'failed',
    failed: issues.length,
    issues,
    error: 'LDAP server stopped answering during paging',
    durationMs: 1234.4,
  });
  expect(run.issues).toHaveLength(maxStoredRunIssues);
  expect(run.issues[0]).toEqual({ externalId: 'u-0', reason: 'bad mail' });
  expect(run.issueCount).toBe(maxStoredRunIssues + 250);
  expect(run).toMatchObject({ status: 'failed', error: 'LDAP server stopped answering during paging', durationMs: 1234 });

  const preCapped = await completedRun(integration.id, 'delta', { status: 'succeeded', issues: issues.slice(0, 3), issueCount: 99 });
  expect(preCapped.issueCount).toBe(99);
});

test('a handed-back run can start again, clearing the previous attempt', async () => {
  const integration = await newIntegration();
  const run = await completedRun(integration.id, 'full', { status: 'failed', error: 'worker lost' });
  const restarted = await startRun(db, run.id, { mode: 'full', workerId: 'worker-2' });
  expect(restarted).toMatchObject({ status: 'running', workerId: 'worker-2', error: null, finishedAt: null, durationMs: null });
  await expect(startRun(db, randomUUID(), { mode: 'full', workerId: 'w' })).rejects.toThrow(NotFoundError);
  await expect(finishRun(db, randomUUID(), { status: 'succeeded' })).rejects.toThrow(NotFoundError);
});

test('listRuns filters by integration and status, newest first', async () => {
  const integration = await newIntegration();
  const a = await completedRun(integration.id, 'full', { status: 'succeeded' });
  const b = await completedRun(integration.id, 'delta', { status: 'failed', error: 'x' });
  const c = await createRun(db, { integrationId: integration.id, modeRequested: 'delta', trigger: 'schedule' });

  expect((await listRuns(db, { integrationId: integration.id })).map((r) => r.id)).toEqual([c.id, b.id, a.id]);
  expect((await listRuns(db, { integrationId: integration.id, status: 'failed' })).map((r) => r.id)).toEqual([b.id]);
  expect(await listRuns(db, { integrationId: integration.id, limit: 2 })).toHaveLength(2);
  expect(await listRuns(db, { integrationId: 'nope' })).toEqual([]);
  expect(await getRun(db, 'nope')).toBeUndefined();
});

describe('approval of threshold-blocked runs', () => {
  test('only a blocked run can be approved, once', async () => {
    const integration = await newIntegration();
    const succeeded = await completedRun(integration.id, 'full', { status: 'succeeded' });
    await expect(approveRun(db, succeeded.id, 'alice')).rejects.toThrow(
      new InvalidStateError(`run ${succeeded.id} is succeeded: only a run blocked by the deletion threshold can be approved`),
    );
    const queued = await createRun(db, { integrationId: integration.id, modeRequested: 'full', trigger: 'manual' });
    await expect(approveRun(db, queued.id, 'alice')).rejects.toThrow(InvalidStateError);
    await expect(approveRun(db, randomUUID(), 'alice')).rejects.toThrow(NotFoundError);

    const blocked = await completedRun(integration.id, 'full', { status: 'blocked', wouldDelete: 800 });
    const approved = await approveRun(db, blocked.id, 'alice');
    expect(approved).toMatchObject({ status: 'blocked', approvedBy: 'alice', wouldDelete: 800 });
    expect(approved.approvedAt).toBeInstanceOf(Date);
    await expect(approveRun(db, blocked.id, 'bob')).rejects.toThrow('already approved by alice');
    expect((await requireRun(db, blocked.id)).approvedBy).toBe('alice');
  });

  test('findApproval returns the latest approval until a run of its mode succeeds', async () => {
    const integration = await newIntegration();
    await completedRun(integration.id, 'full', { status: 'succeeded' });
    expect(await findApproval(db, integration.id)).toBeUndefined();

    const first = await completedRun(integration.id, 'full', { status: 'blocked', wouldDelete: 600 });
    expect(await findApproval(db, integration.id)).toBeUndefined();
    const second = await completedRun(integration.id, 'full', { status: 'blocked', wouldDelete: 650 });
    await approveRun(db, first.id, 'alice');
    expect((await findApproval(db, integration.id))?.id).toBe(first.id);
    await approveRun(db, second.id, 'alice');
    expect(await findApproval(db, integration.id)).toMatchObject({ id: second.id, wouldDelete: 650 });
    expect(await findApproval(db, integration.id, { mode: 'delta' })).toBeUndefined();
    expect((await findApproval(db, integration.id, { mode: 'full' }))?.id).toBe(second.id);

    // Deltas, failures and dry runs in between do not use the approval up.
    await completedRun(integration.id, 'delta', { status: 'succeeded' });
    await completedRun(integration.id, 'full', { status: 'failed', error: 'timeout' });
    await completedRun(integration.id, 'full', { status: 'dry_run', wouldDelete: 650 }, true);
    expect((await findApproval(db, integration.id))?.id).toBe(second.id);

    // The full sync that used it succeeds: the approval lapses, and the stale run cannot be approved again.
    await completedRun(integration.id, 'full', { status: 'succeeded', deleted: 650 });
    expect(await findApproval(db, integration.id)).toBeUndefined();
    const stale = await completedRun(integration.id, 'full', { status: 'blocked', wouldDelete: 1 });
    await completedRun(integration.id, 'full', { status: 'succeeded' });
    await expect(approveRun(db, stale.id, 'alice')).rejects.toThrow('superseded');
  });

  test('approvals are per integration', async () => {
    const one = await newIntegration();
    const two = await newIntegration();
    const blocked = await completedRun(one.id, 'full', { status: 'blocked', wouldDelete: 900 });
    await approveRun(db, blocked.id, 'alice');
    expect((await findApproval(db, one.id))?.id).toBe(blocked.id);
    expect(await findApproval(db, two.id)).toBeUndefined();
  });
});
