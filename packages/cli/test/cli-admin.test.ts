import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomBytes, randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { testPgServerUrl, testRunId } from '@dirsync/testkit';
import { type CliEnvironment, type CliResult, createCliEnvironment } from './support/run-cli.ts';

// The administration commands as the platform team runs them: `bin/dirsync` in a child process,
// configured only through the environment, against the machine's PostgreSQL and Redis.

// Each command is a new process (about a second); jest's 5 s default is too short for a few of them.
const timeoutMs = 60_000;

let cli: CliEnvironment;

beforeAll(async () => {
  cli = await createCliEnvironment('cliadmin');
}, timeoutMs);

afterAll(async () => {
  await cli?.cleanup();
}, timeoutMs);

/** A user mistake: a non-zero exit, nothing on stdout, short lines on stderr and no stack trace. */
function expectRefused(result: CliResult): string {
  expect(result.code).not.toBe(0);
  expect(result.code).not.toBeNull();
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(/^dirsync: /);
  expect(result.stderr).not.toMatch(/^\s+at /m);
  expect(result.stderr).not.toMatch(/Error:|node:internal/);
  return result.stderr;
}

/** Migrations checked in (the journal lists each once). */
function migrationCount(): number {
  const journal = JSON.parse(readFileSync(fileURLToPath(new URL('../../db/migrations/meta/_journal.json', import.meta.url)), 'utf8')) as { entries: unknown[] };
  return journal.entries.length;
}

test('db migrate creates a missing database and is idempotent, saying what it did', async () => {
  // Named like the testkit's databases, so a run that dies here still has it dropped.
  const name = `dirsync_t_${testRunId()}_climigrate_${randomBytes(4).toString('hex')}`;
  const url = `${testPgServerUrl}/${name}`;
  const admin = postgres(`${testPgServerUrl}/postgres`, { max: 1, onnotice: () => {} });
  try {
    const first = await cli.run(['db', 'migrate'], { env: { DATABASE_URL: url } });
    expect(first).toMatchObject({ code: 0, stdout: `created database ${name}\napplied ${migrationCount()} migrations\n` });
    const again = await cli.run(['db', 'migrate'], { env: { DATABASE_URL: url } });
    expect(again).toMatchObject({ code: 0, stdout: 'database is up to date\n' });

    const fresh = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const tables = await fresh<{ table_name: string }[]>`
        select table_name from information_schema.tables where table_schema = 'public' order by 1`;
      expect(tables.map((t) => t.table_name)).toEqual(
        expect.arrayContaining(['accounts', 'audit_events', 'directory_objects', 'integrations', 'memberships', 'sync_runs']),
      );
    } finally {
      await fresh.end({ timeout: 5 });
    }
  } finally {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.end({ timeout: 5 });
  }
}, timeoutMs);

test('accounts add prints the new id; accounts list shows it; a duplicate name is refused', async () => {
  const added = await cli.run(['accounts', 'add', 'acme']);
  expect(added.code).toBe(0);
  const id = added.stdout.trim();
  expect(id).toMatch(/^[0-9a-f-]{36}$/);

  const listed = await cli.run(['accounts', 'list']);
  expect(listed.code).toBe(0);
  const [header, rule, ...rows] = listed.stdout.trim().split('\n');
  expect(header).toMatch(/^id\s+name\s+created$/);
  expect(rule).toMatch(/^-+\s+-+\s+-+$/);
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatch(new RegExp(`^${id}\\s+acme\\s+\\d{4}-\\d\\d-\\d\\d `));

  expect(expectRefused(await cli.run(['accounts', 'add', 'acme']))).toBe('dirsync: an account named "acme" already exists\n');
}, timeoutMs);

describe('integrations add refuses bad input with one clear line per problem', () => {
  const valid = [
    'integrations', 'add', '--account', 'acme', '--kind', 'ldap', '--name', 'Head office',
    '--url', 'ldaps://ldap.example.com', '--bind-dn', 'cn=reader,dc=example,dc=com',
    '--users-base', 'ou=people,dc=example,dc=com', '--groups-base', 'ou=groups,dc=example,dc=com',
  ];
  /** The valid command with some flags replaced or added. */
  function withFlags(flags: Record<string, string | true>): string[] {
    const args = [...valid];
    for (const [flag, value] of Object.entries(flags)) {
      const at = args.indexOf(flag);
      if (value === true) args.push(flag);
      else if (at >= 0) args[at + 1] = value;
      else args.push(flag, value);
    }
    return args;
  }
  // A password source, so that only the problem under test can stop the command.
  const secret = { DIRSYNC_INTEGRATION_SECRET: `pw-${randomBytes(8).toString('hex')}` };

  test.each([
    ['an invalid cron', { '--delta-cron': 'every 5 minutes' }, /^dirsync: delta schedule: "every 5 minutes" has 3 fields; a schedule needs 5/],
    ['an invalid DN', { '--bind-dn': 'cn=reader,,dc=example' }, /^ {2}- bindDn: .*not a valid DN/m],
    ['an invalid filter', { '--users-filter': '(uid=a' }, /^ {2}- users\.filter: .*"\(uid=a"/m],
    ['an invalid URL', { '--url': 'https://ldap.example.com' }, /^ {2}- url: "https:\/\/ldap\.example\.com" must start with ldap:\/\/ or ldaps:\/\/$/m],
    ['plain LDAP without --allow-insecure', { '--url': 'ldap://ldap.example.com', '--tls-mode': 'none' }, /^ {2}- tls\.allowInsecure: .*unencrypted/m],
    ['an unknown account', { '--account': 'nobody' }, /^dirsync: no account "nobody" \(create it with `dirsync accounts add`\)$/m],
    ['an unknown kind', { '--kind': 'novell' }, /^dirsync: unknown kind "novell": use one of ldap, /],
  ])('%s', async (_what, flags, expected) => {
    const stderr = expectRefused(await cli.run(withFlags(flags as Record<string, string>), { env: secret }));
    expect(stderr).toMatch(expected);
    // One line per problem: a heading and the problem, or the problem alone.
    expect(stderr.trim().split('\n').length).toBeLessThanOrEqual(2);
  }, timeoutMs);

  test('several problems are reported together, one line each', async () => {
    const stderr = expectRefused(
      await cli.run(
        withFlags({
          '--url': 'http://ldap.example.com',
          '--bind-dn': 'reader',
          '--users-filter': 'uid=*)(',
          '--groups-base': 'ou=groups,,dc=example',
          '--delta-cron': '61 * * * *',
        }),
        { env: secret },
      ),
    );
    const lines = stderr.trim().split('\n');
    expect(lines[0]).toBe('dirsync: invalid ldap settings:');
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ {2}- url: /),
        expect.stringMatching(/^ {2}- bindDn: /),
        expect.stringMatching(/^ {2}- users\.filter: /),
        expect.stringMatching(/^ {2}- groups\.baseDns\[0\]: /),
        expect.stringMatching(/^delta schedule: "61 \* \* \* \*" is not a valid cron expression/),
      ]),
    );
    expect(lines).toHaveLength(6);
  }, timeoutMs);

  test('a valid command then succeeds, and none of the refused ones stored anything', async () => {
    const added = await cli.run(valid, { env: secret });
    expect(added.code).toBe(0);
    const id = added.stdout.trim();
    const listed = await cli.run(['integrations', 'list']);
    const rows = listed.stdout.trim().split('\n').slice(2);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatch(new RegExp(`^${id}\\s`));
    expect(cli.transcript()).not.toContain(secret.DIRSYNC_INTEGRATION_SECRET);
  }, timeoutMs);
});

test('runs show and runs approve of an unknown run say so in one line', async () => {
  const unknown = randomUUID();
  expect(expectRefused(await cli.run(['runs', 'show', unknown]))).toBe(`dirsync: no run ${unknown}\n`);
  expect(expectRefused(await cli.run(['runs', 'approve', unknown]))).toBe(`dirsync: run ${unknown} not found\n`);
}, timeoutMs);

test('a command without DIRSYNC_SECRET_KEY that needs it explains what to do', async () => {
  const stderr = expectRefused(
    await cli.run(['integrations', 'add', '--account', 'acme', '--kind', 'ldap', '--name', 'x', '--url', 'ldaps://ldap.example.com',
      '--bind-dn', 'cn=reader,dc=example,dc=com', '--users-base', 'ou=people,dc=example,dc=com', '--groups-base', 'ou=groups,dc=example,dc=com'],
    { env: { DIRSYNC_SECRET_KEY: '', DIRSYNC_INTEGRATION_SECRET: 'x' } }),
  );
  expect(stderr).toMatch(/DIRSYNC_SECRET_KEY/);
}, timeoutMs);
