import { close, connect, countIntegrationHoldings, type Db, getRun, type Run } from '@dirsync/db';
import { startSlapd, type SlapdServer, waitFor } from '@dirsync/testkit';
import { type CliEnvironment, type CliResult, type CliWorker, createCliEnvironment, ldapIntegrationArgs, parseRunReports } from './support/run-cli.ts';

// A retryable failure seen from the outside: a real `dirsync worker` syncs a slapd that is down
// for the first attempt and back for the second. In between, the run reads `retrying` (attempt 1
// of the job's attempts, with the error), and `dirsync sync --wait` keeps waiting; it ends with
// exit code 0 once the retry succeeds.

const timeoutMs = 60_000;
const users = 30;
const groups = 3;
const membersPerGroup = 6;

let server: SlapdServer;
let cli: CliEnvironment;
let db: Db;
let worker: CliWorker | undefined;

beforeAll(async () => {
  server = await startSlapd({ tls: true, data: { users, groups, membersPerGroup } });
  cli = await createCliEnvironment('cliretry');
  db = connect(cli.database.url, { max: 2 });
  expect((await cli.run(['accounts', 'add', 'acme'])).code).toBe(0);
}, timeoutMs);

afterAll(async () => {
  if (worker && worker.child.exitCode === null) await worker.stop();
  if (db) await close(db);
  await cli?.cleanup();
  await server?.stop();
}, timeoutMs);

/** Live objects and edges stored for the integration (the demo's own count of holdings). */
async function storedCounts(integrationId: string): Promise<{ objects: number; edges: number }> {
  const holdings = await countIntegrationHoldings(db, integrationId);
  return { objects: holdings.objects.reduce((n, o) => n + o.live, 0), edges: holdings.liveMemberships };
}

async function onlyRunOf(integrationId: string): Promise<Run | undefined> {
  const rows = await db.$client<{ id: string }[]>`select id from sync_runs where integration_id = ${integrationId}`;
  if (rows.length > 1) throw new Error(`expected one run, found ${rows.length}`);
  return rows[0] ? getRun(db, rows[0].id) : undefined;
}

test('slapd down for the first attempt: the run reads retrying (attempt 1 of 5, last error), sync --wait waits and exits 0', async () => {
  const added = await cli.run(
    ldapIntegrationArgs(server, 'Flaky office'),
    { input: `${server.readerPassword}\n` },
  );
  expect(added).toMatchObject({ code: 0, stderr: '' });
  const integrationId = added.stdout.trim();
  worker = await cli.startWorker('retry-worker');

  // Step 1: the directory is down (SIGKILL; data kept for the restart on the same port).
  await server.kill();
  expect(server.pid).toBeUndefined();

  let result: CliResult | undefined;
  const waiting = cli.run(['sync', integrationId, '--full', '--wait']).then((r) => (result = r));

  // Step 2: attempt 1 fails on the connection; the queue will retry, so the run reads retrying.
  const retrying = await waitFor(async () => {
    const run = await onlyRunOf(integrationId);
    return run?.status === 'retrying' ? run : undefined;
  }, { timeoutMs: 30_000, what: 'the run to read retrying' });
  expect(retrying).toMatchObject({ status: 'retrying', attempt: 1, maxAttempts: 5, error: null, finishedAt: null });
  expect(retrying.lastError).toMatch(/ECONNREFUSED|connect/i);
  // The waiting command has not taken `retrying` for an end.
  expect(result).toBeUndefined();
  // The worker logs the failed attempt once the queue took it back, a moment after the run row.
  await waitFor(async () => (worker?.output().includes('"sync attempt failed"') ? true : undefined), { timeoutMs: 10_000, what: 'the failed attempt in the log' });

  // Step 3: the directory is back before the retry (first backoff: 5–10 s).
  await server.restart();
  expect(server.pid).toEqual(expect.any(Number));
  expect(result).toBeUndefined();

  // Step 4: attempt 2 succeeds; the command prints the report and exits 0.
  const done = await waiting;
  expect(done).toMatchObject({ code: 0, stderr: '' });
  const runId = /^queued: full run ([0-9a-f-]{36}) \(job (\S+)\)$/m.exec(done.stdout)?.[1];
  expect(runId).toBe(retrying.id);
  const [report, ...others] = parseRunReports(done.stdout);
  expect(others).toEqual([]);
  expect(report?.fields).toMatchObject({ run: retrying.id, status: 'succeeded', mode: 'full', worker: 'retry-worker' });
  expect(report?.counts).toMatchObject({ fetched: users + groups, created: users + groups, failed: 0, 'members +': groups * membersPerGroup });
  expect(done.stdout).not.toMatch(/^status:\s+(failed|retrying)$/m);

  const finished = await getRun(db, retrying.id);
  expect(finished).toMatchObject({ status: 'succeeded', attempt: 2, maxAttempts: 5, error: null });
  expect(finished?.finishedAt).not.toBeNull();
  expect(await storedCounts(integrationId)).toEqual({ objects: users + groups, edges: groups * membersPerGroup });
}, timeoutMs);
