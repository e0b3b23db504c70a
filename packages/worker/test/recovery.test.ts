import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import {
  createAccount,
  createIntegration,
  createKeyRing,
  type Db,
  generateSecretKey,
  getIntegration,
  getRun,
} from '@dirsync/db';
import { testRedisUrl, waitFor } from '@dirsync/testkit';
import { integrationLockKey } from '../src/lock.ts';
import { type KilledWorkerBed, startKilledWorkerBed } from './support/killed-worker.ts';
import { fixtureDirectory } from './support/scripted-provider.ts';

let bed: KilledWorkerBed;
let db: Db;
let queue: Queue;

beforeAll(async () => {
  bed = await startKilledWorkerBed('recovery');
  ({ db, queue } = bed);
});

afterAll(async () => {
  await bed?.close();
});

/** What a sync left in the database, without ids, times or run stamps. */
async function stored(integrationId: string) {
  const objects = await db.$client`
    select external_id, type, dn, attributes, content_hash, members_hash, deleted_at is null as live
    from directory_objects where integration_id = ${integrationId} order by external_id`;
  const edges = await db.$client`
    select group_external_id, member_external_id, deleted_at is null as live
    from memberships where integration_id = ${integrationId} order by 1, 2`;
  return { objects: [...objects], edges: [...edges] };
}

test('a worker killed with SIGKILL mid-sync leaves no lock behind; another finishes to the same state', async () => {
  const secretKey = generateSecretKey();
  const ring = createKeyRing({ current: secretKey });
  const accountId = (await createAccount(db, { name: 'recovery' })).id;
  const newIntegration = async (name: string) =>
    (await createIntegration(db, { accountId, kind: 'ldap', name, settings: {} }, { ring, plaintext: 'pw' })).id;
  const interrupted = await newIntegration('interrupted');
  const clean = await newIntegration('clean');

  const child = bed.spawnChild({ secretKey, hangAtPage: 3 });
  await once(child.stdout!, 'data');

  const runId = randomUUID();
  await queue.add(
    'sync',
    { integrationId: interrupted, runId, mode: 'full', trigger: 'manual', dryRun: false },
    { jobId: `run.${runId}`, attempts: 3 },
  );
  // Three pages (150 users) are written, then the directory stops answering.
  await waitFor(async () => {
    const [row] = await db.$client<{ n: number }[]>`
      select count(*)::int as n from directory_objects where integration_id = ${interrupted}`;
    return (row?.n ?? 0) >= 150;
  }, { timeoutMs: 30_000, what: 'the doomed worker to write its first pages' });
  expect((await getRun(db, runId))?.workerId).toBe('doomed-worker');
  child.kill('SIGKILL');
  await once(child, 'exit');

  bed.startRescuer({ keyRing: ring, createProvider: () => fixtureDirectory(300, 10, 30) });
  const run = await waitFor(async () => {
    const found = await getRun(db, runId);
    return found?.status === 'succeeded' ? found : undefined;
  }, { timeoutMs: 60_000, what: 'another worker to finish the interrupted sync' });
  // Write counts cover both attempts: the 150 users the killed attempt stored were created by this
  // run, even though the second attempt found them already stored.
  expect(run).toMatchObject({ workerId: 'rescuer', fetched: 310, deleted: 0, created: 310, unchanged: 150, wouldDelete: 0 });

  const redis = new Redis(testRedisUrl);
  try {
    expect(await redis.exists(integrationLockKey(bed.prefix.prefix, interrupted))).toBe(0);
  } finally {
    redis.disconnect();
  }

  const cleanRun = randomUUID();
  await queue.add('sync', { integrationId: clean, runId: cleanRun, mode: 'full', trigger: 'manual', dryRun: false }, { jobId: `run.${cleanRun}` });
  await waitFor(async () => (await getRun(db, cleanRun))?.status === 'succeeded', { timeoutMs: 30_000, what: 'the clean sync' });

  const recovered = await stored(interrupted);
  expect(recovered.objects).toHaveLength(310);
  expect(recovered.edges).toHaveLength(300);
  expect(recovered).toEqual(await stored(clean));
}, 120_000);

test('a worker frozen past its lock (SIGSTOP) cannot overwrite the run another worker finished', async () => {
  await bed.stopRescuer();
  const secretKey = generateSecretKey();
  const ring = createKeyRing({ current: secretKey });
  const accountId = (await createAccount(db, { name: 'frozen' })).id;
  const integrationId = (await createIntegration(db, { accountId, kind: 'ldap', name: 'frozen', settings: {} }, { ring, plaintext: 'pw' })).id;

  const frozen = bed.spawnChild({ secretKey, hangAtPage: 3 });
  let output = '';
  frozen.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  await waitFor(() => output.includes('ready'), { what: 'the worker to start' });

  const runId = randomUUID();
  await queue.add('sync', { integrationId, runId, mode: 'full', trigger: 'manual', dryRun: false }, { jobId: `run.${runId}`, attempts: 3 });
  await waitFor(async () => {
    const [row] = await db.$client<{ n: number }[]>`select count(*)::int as n from directory_objects where integration_id = ${integrationId}`;
    return (row?.n ?? 0) >= 150;
  }, { timeoutMs: 30_000, what: 'the first worker to write its first pages' });
  frozen.kill('SIGSTOP');

  bed.startRescuer({ keyRing: ring, createProvider: () => fixtureDirectory(300, 10, 30) });
  const finished = await waitFor(async () => {
    const found = await getRun(db, runId);
    return found?.status === 'succeeded' ? found : undefined;
  }, { timeoutMs: 60_000, what: 'the second worker to finish the run' });
  const integrationAfter = await getIntegration(db, integrationId);
  expect(integrationAfter).toMatchObject({ status: 'succeeded', lastRunId: runId });
  const dataAfter = await stored(integrationId);
  expect(dataAfter.objects).toHaveLength(310);

  frozen.kill('SIGCONT');
  // On resume its lock has expired: it stops, and every write it tries is refused.
  await waitFor(() => output.includes('stale sync attempt stopped'), { timeoutMs: 30_000, what: 'the resumed worker to stop' });
  expect(await getRun(db, runId)).toEqual(finished);
  expect(await getIntegration(db, integrationId)).toEqual(integrationAfter);
  expect(await stored(integrationId)).toEqual(dataAfter);
  frozen.kill('SIGKILL');
  await once(frozen, 'exit');
}, 120_000);
