import { randomBytes } from 'node:crypto';
import { Attribute, Change } from 'ldapts';
import { close, connect, type Db } from '@dirsync/db';
import { startSlapd, type SlapdServer } from '@dirsync/testkit';
import { type CliEnvironment, type CliResult, type CliWorker, createCliEnvironment, ldapIntegrationArgs, parseRunReports } from './support/run-cli.ts';

// An LDAP integration driven only through `bin/dirsync`, as an administrator would: created with
// the password on standard input, tested, synced by a separate `dirsync worker` process, its runs
// listed, its password replaced. The directory is a throwaway slapd with StartTLS and a test CA.

// Each command is a new process (about a second); jest's 5 s default is too short for a few of them.
const timeoutMs = 60_000;

const users = 40;
const groups = 3;
const membersPerGroup = 8;
const objects = users + groups;

let server: SlapdServer;
let cli: CliEnvironment;
let db: Db;
let worker: CliWorker | undefined;
let integrationId: string;
let firstRunId: string;
const wrongPassword = `wrong-${randomBytes(6).toString('hex')}`;
const newPassword = `new-${randomBytes(9).toString('hex')}`;

beforeAll(async () => {
  server = await startSlapd({ tls: true, data: { users, groups, membersPerGroup } });
  cli = await createCliEnvironment('cliladp');
  db = connect(cli.database.url, { max: 2 });
  expect((await cli.run(['accounts', 'add', 'acme'])).code).toBe(0);
}, timeoutMs);

afterAll(async () => {
  if (worker && worker.child.exitCode === null) await worker.stop();
  if (db) await close(db);
  await cli?.cleanup();
  await server?.stop();
}, timeoutMs);

async function storedSecret(id: string): Promise<string | null> {
  const [row] = await db.$client<{ secret_ciphertext: string | null }[]>`
    select secret_ciphertext from integrations where id = ${id}`;
  return row?.secret_ciphertext ?? null;
}

function expectOk(result: CliResult): string {
  expect(result).toMatchObject({ code: 0, stderr: '' });
  return result.stdout;
}

test('integrations add reads the password from standard input and stores it encrypted', async () => {
  const out = expectOk(await cli.run(ldapIntegrationArgs(server, 'Head office'), { input: `${server.readerPassword}\n` }));
  integrationId = out.trim();
  expect(integrationId).toMatch(/^[0-9a-f-]{36}$/);
  const secret = await storedSecret(integrationId);
  expect(secret).toBeTruthy();
  expect(secret).not.toContain(server.readerPassword);
}, timeoutMs);

test('integrations show prints settings and status but never the password', async () => {
  const out = expectOk(await cli.run(['integrations', 'show', integrationId]));
  expect(out).toMatch(/^password:\s+set \(encrypted\)$/m);
  expect(out).toMatch(/^kind:\s+ldap$/m);
  expect(out).toContain(`"url": "${server.url}"`);
  expect(out).toContain('"caPem": "-----BEGIN CERTIFICATE-----');
  expect(out).toContain('"allowInsecure": false');
  expect(out).toMatch(/^delta cursor:\s+none \(next delta runs full\)$/m);
  expect(out).not.toContain(server.readerPassword);
}, timeoutMs);

test('integrations test prints the checklist and exits 0; with a wrong password it fails on bind', async () => {
  const out = expectOk(await cli.run(['integrations', 'test', integrationId]));
  const lines = out.trim().split('\n');
  for (const check of ['connect', 'tls', 'bind', 'users base', 'groups base']) {
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^[✓!] ${check}: `)));
  }
  expect(lines).not.toContainEqual(expect.stringMatching(/^✗/));
  expect(lines.at(-1)).toBe('connection OK');

  const wrongId = expectOk(await cli.run(ldapIntegrationArgs(server, 'Wrong password'), { input: wrongPassword })).trim();
  const failed = await cli.run(['integrations', 'test', wrongId]);
  expect(failed.code).toBe(1);
  expect(failed.stdout).toMatch(/^✓ connect: /m);
  expect(failed.stdout).toMatch(/^✗ bind: /m);
  expect(failed.stdout.trim().split('\n').at(-1)).toBe('connection FAILED');
}, timeoutMs);

test('sync --full --wait runs on a worker process and prints the report', async () => {
  worker = await cli.startWorker('cli-worker-1');
  const result = await cli.run(['sync', integrationId, '--full', '--wait']);
  const out = expectOk(result);
  const queued = /^queued: full run ([0-9a-f-]{36}) \(job (\S+)\)$/m.exec(out);
  expect(queued).not.toBeNull();
  firstRunId = queued![1]!;
  const [report, ...others] = parseRunReports(out);
  expect(others).toEqual([]);
  expect(report?.fields).toMatchObject({ run: firstRunId, status: 'succeeded', mode: 'full', trigger: 'manual by cli', worker: 'cli-worker-1' });
  expect(report?.counts).toMatchObject({
    fetched: objects,
    created: objects,
    updated: 0,
    unchanged: 0,
    deleted: 0,
    failed: 0,
    'members +': groups * membersPerGroup,
  });
}, timeoutMs);

test('runs list and runs show describe the run', async () => {
  const listed = expectOk(await cli.run(['runs', 'list', '--integration', integrationId]));
  const [header, , ...rows] = listed.trim().split('\n');
  expect(header).toMatch(/^run\s+integration\s+mode\s+trigger\s+status\s+fetched\s+created\s+updated\s+deleted\s+took\s+queued$/);
  expect(rows).toHaveLength(1);
  expect(rows[0]?.split(/\s{2,}/).slice(0, 9)).toEqual([firstRunId, integrationId, 'full', 'manual', 'succeeded', String(objects), String(objects), '0', '0']);

  const shown = parseRunReports(expectOk(await cli.run(['runs', 'show', firstRunId])));
  expect(shown).toHaveLength(1);
  expect(shown[0]?.fields).toMatchObject({ run: firstRunId, status: 'succeeded', 'dry run': 'no' });
  expect(shown[0]?.counts).toMatchObject({ fetched: objects, created: objects });
}, timeoutMs);

test('a run that fails exits 1, and sync --wait --json gives the failed run in the API shape', async () => {
  const wrongId = expectOk(await cli.run(ldapIntegrationArgs(server, 'Wrong password, synced'), { input: wrongPassword })).trim();
  const result = await cli.run(['sync', wrongId, '--full', '--wait', '--json']);
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 1, stderr: '' });
  const answer = JSON.parse(result.stdout) as { runId: string; run: { id: string; integrationId: string; status: string; error: string | null } };
  expect(answer.run).toMatchObject({ id: answer.runId, integrationId: wrongId, status: 'failed', error: expect.stringMatching(/invalid credentials/i) });
  expect(result.stdout).not.toContain(wrongPassword);
}, timeoutMs);

test('runs approve of a run that was not blocked is refused with the reason', async () => {
  const result = await cli.run(['runs', 'approve', firstRunId]);
  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr).toBe(
    `dirsync: run ${firstRunId} is succeeded: only a run blocked by the deletion threshold can be approved\n`,
  );
}, timeoutMs);

test('set-password with a wrong password keeps the old one and says why', async () => {
  const before = await storedSecret(integrationId);
  const result = await cli.run(['integrations', 'set-password', integrationId, '--password-stdin'], { input: wrongPassword });
  expect(result.code).toBe(1);
  expect(result.stdout).toMatch(/^✗ bind: /m);
  expect(result.stderr).toBe('dirsync: the new password was not stored: Test Connection failed (the old password stays in use)\n');
  expect(await storedSecret(integrationId)).toBe(before);
  expect((await cli.run(['integrations', 'test', integrationId])).code).toBe(0);
}, timeoutMs);

test('set-password with the right password stores it, audits it and runs a full sync', async () => {
  // The directory administrator changes the service account's password: the stored one stops working.
  const admin = await server.client();
  try {
    await admin.modify(server.readerDn, new Change({ operation: 'replace', modification: new Attribute({ type: 'userPassword', values: [newPassword] }) }));
  } finally {
    await admin.unbind();
  }
  expect((await cli.run(['integrations', 'test', integrationId])).code).toBe(1);
  const before = await storedSecret(integrationId);

  const out = expectOk(await cli.run(['integrations', 'set-password', integrationId, '--password-stdin', '--wait'], { input: newPassword }));
  const runId = /^password stored; full sync queued: run ([0-9a-f-]{36})$/m.exec(out)?.[1];
  expect(runId).toBeDefined();
  const [report] = parseRunReports(out);
  expect(report?.fields).toMatchObject({ run: runId, status: 'succeeded', mode: 'full', trigger: 'password_update by cli' });
  expect(report?.counts).toMatchObject({ fetched: objects, created: 0, unchanged: objects, deleted: 0 });

  const after = await storedSecret(integrationId);
  expect(after).not.toBe(before);
  expect(after).not.toContain(newPassword);
  const audit = await db.$client<{ action: string; actor: string }[]>`
    select action, actor from audit_events where integration_id = ${integrationId} order by id`;
  expect(audit.map((a) => a.action)).toEqual(['integration.created', 'integration.password_updated']);
  expect(audit[1]?.actor).toBe('cli');
  const [run] = await db.$client<{ trigger: string; mode_requested: string }[]>`
    select trigger, mode_requested from sync_runs where id = ${runId!}`;
  expect(run).toEqual({ trigger: 'password_update', mode_requested: 'full' });
  expect((await cli.run(['integrations', 'test', integrationId])).code).toBe(0);
}, timeoutMs);

test('a wrong base DN blocks the sync until runs approve lets the next one delete', async () => {
  const admin = await server.client();
  try {
    await admin.add(`ou=empty,${server.suffix}`, { objectClass: ['organizationalUnit'], ou: 'empty' });
  } finally {
    await admin.unbind();
  }
  const empty = `ou=empty,${server.suffix}`;
  expect(expectOk(await cli.run(['integrations', 'update', integrationId, '--users-base', empty, '--groups-base', empty]))).toBe('updated\n');

  // A blocked run exits 4 (README, exit codes) and still prints its report.
  const blockedResult = await cli.run(['sync', integrationId, '--full', '--wait']);
  expect(blockedResult).toMatchObject({ code: 4, stderr: '' });
  const blockedOut = blockedResult.stdout;
  const [blocked] = parseRunReports(blockedOut);
  expect(blocked?.fields).toMatchObject({ status: 'blocked' });
  expect(blocked?.counts).toMatchObject({ fetched: 0, deleted: 0, 'would delete': objects });
  const blockedRun = blocked!.fields['run']!;
  // The same run for scripts: the API's run shape, the status and counts a script decides on.
  const shown = JSON.parse(expectOk(await cli.run(['runs', 'show', blockedRun, '--json']))) as Record<string, unknown>;
  expect(shown).toMatchObject({ id: blockedRun, integrationId, status: 'blocked', counts: { fetched: 0, deleted: 0, wouldDelete: objects } });
  expect(blocked?.fields['blocked']).toBe(`${objects} deletions exceed the threshold; \`dirsync runs approve ${blockedRun}\` allows them`);

  expect(expectOk(await cli.run(['runs', 'approve', blockedRun, '--by', 'alice']))).toBe(
    `approved: the next full run of ${integrationId} may delete up to ${objects} objects\n`,
  );
  const [approved] = parseRunReports(expectOk(await cli.run(['sync', integrationId, '--full', '--wait'])));
  expect(approved?.fields).toMatchObject({ status: 'succeeded' });
  expect(approved?.counts).toMatchObject({ deleted: objects, 'members -': groups * membersPerGroup });
  const [audit] = await db.$client<{ actor: string }[]>`
    select actor from audit_events where action = 'run.approved' and integration_id = ${integrationId}`;
  expect(audit?.actor).toBe('alice');
}, timeoutMs);

test('the worker stops cleanly on SIGTERM, and no output or log holds a password', async () => {
  const current = worker!;
  expect(await current.stop()).toBe(0);
  expect(current.output()).toContain('"sync finished"');
  expect(current.output()).toContain('"worker stopped"');

  const transcript = cli.transcript();
  expect(transcript).toContain(integrationId);
  for (const secret of [server.readerPassword, newPassword, wrongPassword]) expect(transcript).not.toContain(secret);
}, timeoutMs);
