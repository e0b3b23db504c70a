import { close, connect } from '@dirsync/db';
import { groupMemberIndexes } from '@dirsync/testkit';
import { type CliEnvironment, createCliEnvironment, parseRunReports } from './support/run-cli.ts';

// `dirsync demo` end to end: its own slapd, a scheduler and a worker as child processes, three
// runs. The expected counts follow from what the demo changes (see src/commands/demo.ts): five
// titles, three users added (one of them to group 0), users 10 and 11 deleted.

// The demo starts a slapd, a scheduler and a worker, and waits for three runs.
const timeoutMs = 180_000;

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

test('the demo syncs, changes and syncs again, and prints three reports with the expected counts', async () => {
  const result = await cli.run(['demo', '--users', String(users), '--groups', String(groups), '--members', String(members)]);
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

  // What the demo says PostgreSQL holds is what it holds.
  const db = connect(cli.database.url, { max: 1 });
  try {
    const counts = await db.$client<{ type: string; live: number; deleted: number }[]>`
      select type, count(*) filter (where deleted_at is null)::int as live, count(*) filter (where deleted_at is not null)::int as deleted
      from directory_objects group by type order by type`;
    expect(counts).toEqual([
      { type: 'group', live: groups, deleted: 0 },
      { type: 'user', live: users + 1, deleted: 2 },
    ]);
    const [edges] = await db.$client<{ n: number }[]>`select count(*)::int as n from memberships where deleted_at is null`;
    expect(edges?.n).toBe(groups * members + 1 - edgesOfDeleted);
    expect(result.stdout).toContain(`memberships: ${groups * members + 1 - edgesOfDeleted}`);
  } finally {
    await close(db);
  }
}, timeoutMs);
