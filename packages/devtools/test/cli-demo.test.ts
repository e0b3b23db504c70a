import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { close, connect } from '@dirsync/db';
import { closeRedis, openRedis } from '@dirsync/jobs';
import { groupMemberIndexes, testRedisUrl, waitFor } from '@dirsync/testkit';
import { dirsyncBin } from '@dirsync/cli';
import { type CliEnvironment, type CliResult, createCliEnvironment, parseRunReports, runCli } from '@dirsync/cli/test-support';

// `dirsync demo` end to end: its own slapd, a scheduler and a worker as child processes, three
// runs. The expected counts follow from what the demo changes (see src/commands/demo.ts): five
// titles, three users added (one of them to group 0), users 10 and 11 deleted.

// Two demos each start a slapd, a scheduler and a worker, and wait for three runs.
const timeoutMs = 300_000;

const users = 300;
const groups = 5;
const members = 20;

let cli: CliEnvironment;

beforeAll(async () => {
  cli = await createCliEnvironment('clidemo');
}, timeoutMs);

afterAll(async () => {
  await cli?.cleanup();
}, timeoutMs);

/** The database and queue prefix a demo says it made for its run. */
function runNames(stdout: string): { database: string; prefix: string } {
  const found = /^database (\S+) and queue prefix (\S+): made for this run/m.exec(stdout);
  if (!found?.[1] || !found[2]) throw new Error(`the demo named no database and prefix:\n${stdout}`);
  return { database: found[1], prefix: found[2] };
}

/** Whether the run's database and the keys under its prefix are still there. */
async function leftOver(names: { database: string; prefix: string }): Promise<{ database: boolean; keys: number }> {
  const db = connect(cli.database.url, { max: 1 });
  const redis = openRedis(testRedisUrl);
  try {
    const [row] = await db.$client<{ n: number }[]>`select count(*)::int as n from pg_database where datname = ${names.database}`;
    const keys = await redis.keys(`${names.prefix}:*`);
    return { database: row?.n !== 0, keys: keys.length };
  } finally {
    await close(db);
    await closeRedis(redis);
  }
}

/** The demo's three reports and its closing summary of what PostgreSQL held. */
function expectDemoSucceeded(result: CliResult): void {
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(result.stdout).toContain('demo finished: every run succeeded');

  // The generator's default seed decides who belongs to which group.
  const edgesOfDeleted = Array.from({ length: groups }, (_, j) => groupMemberIndexes(j, users, members)).flat().filter((i) => i === 10 || i === 11).length;
  const reports = parseRunReports(result.stdout);
  expect(reports).toHaveLength(3);
  const [first, delta, full] = reports;
  expect(first?.fields).toMatchObject({ status: 'succeeded', mode: 'full', trigger: 'schedule by scheduler' });
  expect(first?.counts).toMatchObject({ fetched: users + groups, created: users + groups, updated: 0, deleted: 0, 'members +': groups * members });
  expect(delta?.fields).toMatchObject({ status: 'succeeded', mode: 'delta', trigger: 'manual by demo' });
  expect(delta?.counts).toMatchObject({ created: 3, updated: 5, deleted: 0, 'members +': 1, 'members -': 0 });
  expect(full?.fields).toMatchObject({ status: 'succeeded', mode: 'full' });
  expect(full?.counts).toMatchObject({
    fetched: users + 3 - 2 + groups,
    created: 0,
    updated: 0,
    unchanged: users + 3 - 2 + groups,
    deleted: 2,
    'members +': 0,
    'members -': edgesOfDeleted,
  });

  // What the demo read back from its database before dropping it.
  expect(result.stdout).toMatch(new RegExp(`^\\s*group\\s+${groups}\\s+0\\s*$`, 'm'));
  expect(result.stdout).toMatch(new RegExp(`^\\s*user\\s+${users + 1}\\s+2\\s*$`, 'm'));
  expect(result.stdout).toContain(`memberships: ${groups * members + 1 - edgesOfDeleted}`);
}

test('two demos at once on the same PostgreSQL, Redis and settings both sync, change and sync again, each in a database and queue prefix it drops afterwards', async () => {
  const demo = ['demo', '--users', String(users), '--groups', String(groups), '--members', String(members)];
  // The same environment for both, as two people running `npm run demo` on one machine.
  const [one, two] = await Promise.all([runCli(cli.env, demo, { timeoutMs }), runCli(cli.env, demo, { timeoutMs })]);
  for (const result of [one, two]) expectDemoSucceeded(result);
  const [first, second] = [runNames(one.stdout), runNames(two.stdout)];
  expect(first.database).not.toBe(second.database);
  expect(first.prefix).not.toBe(second.prefix);
  expect(first.database).not.toBe(cli.database.name);
  expect(first.prefix).not.toBe(cli.prefix.prefix);
  for (const names of [first, second]) await expect(leftOver(names)).resolves.toEqual({ database: false, keys: 0 });
}, timeoutMs);

test('a demo whose worker exits at start fails at once, naming the process, its exit code and its last output, and drops its database', async () => {
  const result = await runCli(cli.env, ['demo', '--users', '20', '--groups', '2', '--members', '5', '--break-service', 'worker'], { timeoutMs: 120_000 });
  expect(result.code).toBe(1);
  expect(result.stdout).not.toContain('demo finished');
  expect(result.stderr).toMatch(/the demo's worker exited \(exit code [1-9]\d*\) while the demo needed it; its last output \(all of it in \S+demo-[0-9a-f]+-worker\.log\):/);
  // The tail quotes the worker's own complaint.
  expect(result.stderr).toMatch(/^ {2}.*DIRSYNC_METRICS_PORT/m);
  await expect(leftOver(runNames(result.stdout))).resolves.toEqual({ database: false, keys: 0 });
}, 150_000);

test('a demo stopped with Ctrl-C stops its processes, drops its database and prefix, and exits 130', async () => {
  const child = spawn(dirsyncBin, ['demo', '--users', '20', '--groups', '2', '--members', '5'], { env: { ...cli.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
  const closed = once(child, 'close');
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`the demo exited (${child.exitCode}): ${output}`);
        return output.includes('started a scheduler and a worker');
      },
      { timeoutMs: 60_000, intervalMs: 100, what: 'the demo to start its processes' },
    );
    child.kill('SIGINT');
    const [code] = (await closed) as [number | null];
    expect(code).toBe(130);
    expect(output).toContain('SIGINT: stopping the demo');
    await expect(leftOver(runNames(output))).resolves.toEqual({ database: false, keys: 0 });
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}, 120_000);
