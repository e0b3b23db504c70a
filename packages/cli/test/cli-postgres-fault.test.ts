import { Queue } from 'bullmq';
import postgres from 'postgres';
import { close, connect, countIntegrationHoldings, type Db, getRun, type Run } from '@dirsync/db';
import { runJobId, SYNC_QUEUE } from '@dirsync/jobs';
import { startSlapd, type SlapdServer, testPgServerUrl, testRedisUrl, waitFor } from '@dirsync/testkit';
import { type CliEnvironment, type CliWorker, createCliEnvironment, ldapIntegrationArgs } from './support/run-cli.ts';

// PostgreSQL refuses a worker mid-run: a real `dirsync worker` syncs a slapd into this file's own
// database; while the run is in flight the database stops accepting connections and the worker's
// connections are terminated. Only this database is touched: the test server's role is a
// superuser, whom `CONNECTION LIMIT` does not bind, so the database refuses everyone with
// `ALLOW_CONNECTIONS false` instead (a per-database setting, lifted afterwards).
//
// Designed behaviour: the attempt's failure cannot be written, so the run keeps reading `running`
// (attempt 1) while BullMQ holds the job for its retry; once connections are accepted again, the
// retry records the queue's reason for attempt 1 as `last_error` and ends the run `succeeded` on
// attempt 2 with exact data.

const timeoutMs = 60_000;
const users = 400;
const groups = 8;
const membersPerGroup = 25;

let server: SlapdServer;
let cli: CliEnvironment;
let db: Db;
let worker: CliWorker | undefined;
let queue: Queue | undefined;
let refusing = false;
// ALTER DATABASE … ALLOW_CONNECTIONS cannot be run from inside the database it changes.
let admin: postgres.Sql | undefined;

async function allowConnections(allow: boolean): Promise<void> {
  await admin!.unsafe(`alter database "${cli.database.name}" allow_connections ${allow}`);
  refusing = !allow;
}

beforeAll(async () => {
  server = await startSlapd({ tls: true, data: { users, groups, membersPerGroup } });
  cli = await createCliEnvironment('clipgfault');
  // One connection, opened before the fault and kept through it: the test's eyes.
  db = connect(cli.database.url, { max: 1, applicationName: 'dirsync-fault-test' });
  admin = postgres(`${testPgServerUrl}/postgres`, { max: 1, onnotice: () => {} });
  expect((await cli.run(['accounts', 'add', 'acme'])).code).toBe(0);
}, timeoutMs);

afterAll(async () => {
  if (server?.pid !== undefined) process.kill(server.pid, 'SIGCONT');
  if (refusing) await allowConnections(true);
  await admin?.end({ timeout: 5 });
  if (worker && worker.child.exitCode === null) await worker.stop();
  await queue?.close();
  if (db) await close(db);
  await cli?.cleanup();
  await server?.stop();
}, timeoutMs);

/** Live objects and edges stored for the integration (the demo's own count of holdings). */
async function storedCounts(integrationId: string): Promise<{ objects: number; edges: number }> {
  const holdings = await countIntegrationHoldings(db, integrationId);
  return { objects: holdings.objects.reduce((n, o) => n + o.live, 0), edges: holdings.liveMemberships };
}

/** What slapd itself holds: entries under ou=people and ou=groups, and their member values. */
async function directoryCounts() {
  const client = await server.client();
  try {
    const people = await client.search(`ou=people,${server.suffix}`, { scope: 'one', filter: '(objectClass=*)', attributes: ['dn'] });
    const groupEntries = await client.search(`ou=groups,${server.suffix}`, { scope: 'one', filter: '(objectClass=*)', attributes: ['member'] });
    const edges = groupEntries.searchEntries.reduce((sum, entry) => {
      const member = entry['member'];
      return sum + (Array.isArray(member) ? member.length : member === undefined ? 0 : 1);
    }, 0);
    return { objects: people.searchEntries.length + groupEntries.searchEntries.length, edges };
  } finally {
    await client.unbind();
  }
}

test('PostgreSQL refuses the worker mid-run: the run reads running until the retry, which ends it succeeded with exact data', async () => {
  const added = await cli.run(
    ldapIntegrationArgs(server, 'Head office'),
    { input: `${server.readerPassword}\n` },
  );
  expect(added).toMatchObject({ code: 0, stderr: '' });
  const integrationId = added.stdout.trim();
  const expected = await directoryCounts();
  expect(expected).toEqual({ objects: users + groups, edges: groups * membersPerGroup });
  worker = await cli.startWorker('pg-fault-worker');
  queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: cli.prefix.prefix });

  // Step 1: slapd is frozen (SIGSTOP), so the attempt that starts stays in flight in its LDAP
  // session, after marking the run running and before writing any object.
  const slapdPid = server.pid!;
  process.kill(slapdPid, 'SIGSTOP');
  const queued = await cli.run(['sync', integrationId, '--full']);
  expect(queued).toMatchObject({ code: 0, stderr: '' });
  const runId = /^queued: full run ([0-9a-f-]{36}) \(job (\S+)\)$/m.exec(queued.stdout)?.[1];
  expect(runId).toBeDefined();
  const jobId = runJobId(runId!);
  const running = await waitFor(async () => {
    const run = await getRun(db, runId!);
    return run?.status === 'running' ? run : undefined;
  }, { timeoutMs: 30_000, what: 'attempt 1 to mark the run running' });
  expect(running).toMatchObject({ attempt: 1, maxAttempts: 5, lastError: null, error: null, workerId: 'pg-fault-worker' });
  expect(await storedCounts(integrationId)).toEqual({ objects: 0, edges: 0 });

  // Step 2: this database refuses new connections, and the worker's are terminated.
  await allowConnections(false);
  const terminated = await db.$client<{ pid: number; terminated: boolean }[]>`
    select pid, pg_terminate_backend(pid) as terminated from pg_stat_activity
    where datname = current_database() and application_name = 'dirsync-worker'`;
  expect(terminated.length).toBeGreaterThan(0);
  expect(terminated.every((row) => row.terminated)).toBe(true);
  const outsider = postgres(cli.database.url, { max: 1, connect_timeout: 5, onnotice: () => {} });
  await expect(outsider`select 1`).rejects.toThrow(/not currently accepting connections/);
  await outsider.end({ timeout: 1 });

  // Step 3: slapd answers again; the attempt's first write fails, and so does recording it.
  process.kill(slapdPid, 'SIGCONT');
  const held = await waitFor(async () => {
    const job = await queue!.getJob(jobId);
    return job && (await job.getState()) === 'delayed' && job.attemptsMade === 1 ? job : undefined;
  }, { timeoutMs: 30_000, what: 'the queue to hold the failed attempt for its retry' });
  // The terminated backend's message, or a reset of its socket: which one the worker meets first
  // depends on timing (CI once saw "read ECONNRESET").
  expect(held.failedReason).toMatch(/accepting connections|terminat|connection|ECONNRESET|EPIPE/i);
  await waitFor(() => worker!.output().includes('"could not record the failed attempt"'), {
    timeoutMs: 5_000,
    what: 'the worker to log the failure it could not record',
  });
  // The run says what the database last heard: running, attempt 1, no error, nothing written.
  const during = await getRun(db, runId!);
  expect(during).toMatchObject({ status: 'running', attempt: 1, lastError: null, error: null, finishedAt: null, fence: running.fence });
  expect(await storedCounts(integrationId)).toEqual({ objects: 0, edges: 0 });

  // Step 4: connections are accepted again before the retry (first backoff: 5–10 s).
  await allowConnections(true);

  // Step 5: attempt 2 runs the sync to the end.
  const finished: Run = await waitFor(async () => {
    const run = await getRun(db, runId!);
    return run && run.status !== 'running' && run.status !== 'queued' && run.status !== 'retrying' ? run : undefined;
  }, { timeoutMs: 40_000, what: 'the retry to end the run' });
  expect(finished).toMatchObject({ status: 'succeeded', attempt: 2, maxAttempts: 5, error: null });
  // The failure attempt 1 could not write is known from the queue: attempt 2 records it.
  expect(finished.lastError).toMatch(/not currently accepting connections/);
  expect(finished.fence).not.toBe(running.fence);
  expect(finished.finishedAt).not.toBeNull();
  // The run is recorded before the processor returns; the queue completes the job just after.
  expect(await waitFor(async () => ((await queue!.getJobState(jobId)) === 'completed' ? 'completed' : undefined), { timeoutMs: 10_000, what: 'the job to complete' })).toBe('completed');
  expect(await storedCounts(integrationId)).toEqual(expected);
  const [integration] = await db.$client<{ status: string; last_run_id: string }[]>`
    select status, last_run_id from integrations where id = ${integrationId}`;
  expect(integration).toEqual({ status: 'succeeded', last_run_id: runId });
}, timeoutMs);
