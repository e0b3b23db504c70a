import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { close, connect, type Db } from '@dirsync/db';
import {
  addAdGroup,
  addAdUser,
  grantTombstoneRead,
  sambaPassword,
  setAdPassword,
  type SharedSamba,
  sharedSamba,
} from '@dirsync/testkit';
import { type CliEnvironment, type CliResult, type CliWorker, createCliEnvironment, parseRunReports } from './support/run-cli.ts';

// An Active Directory integration administered only through `bin/dirsync`, against the run's
// Samba DC: created from a settings file, tested, its service-account password rotated in the
// directory and then in dirsync (tested first, stored, audited, "Sync All"), and synced again
// by hand after an interruption.

const timeoutMs = 90_000;

let dc: SharedSamba;
let cli: CliEnvironment;
let db: Db;
let worker: CliWorker | undefined;
let ou: string;
let account: { dn: string; password: string };
let integrationId: string;
const newPassword = sambaPassword();
const wrongPassword = sambaPassword();
const objects = 4;

beforeAll(async () => {
  dc = await sharedSamba();
  ou = await dc.createOu('adcli');
  const admin = await dc.client();
  try {
    const password = sambaPassword();
    account = { dn: await addAdUser(admin, ou, 'svc-dirsync', {}, { password }), password };
    const members = [await addAdUser(admin, ou, 'Ann'), await addAdUser(admin, ou, 'Bob')];
    await addAdGroup(admin, ou, 'Staff', members);
  } finally {
    await admin.unbind();
  }
  await grantTombstoneRead(dc, account.dn);
  cli = await createCliEnvironment('adcli');
  db = connect(cli.database.url, { max: 2 });
  expect((await cli.run(['accounts', 'add', 'acme'])).code).toBe(0);
}, timeoutMs);

afterAll(async () => {
  if (worker && worker.child.exitCode === null) await worker.stop();
  if (db) await close(db);
  await cli?.cleanup();
  await dc?.release();
}, timeoutMs);

function expectOk(result: CliResult): string {
  expect(result).toMatchObject({ code: 0, stderr: '' });
  return result.stdout;
}

async function storedSecret(id: string): Promise<string | null> {
  const [row] = await db.$client<{ secret_ciphertext: string | null }[]>`select secret_ciphertext from integrations where id = ${id}`;
  return row?.secret_ciphertext ?? null;
}

async function addIntegration(name: string, password: string, url = dc.ldapsUrl): Promise<string> {
  const file = join(cli.env['TMPDIR'] ?? '/tmp', `ad-settings-${name.replace(/\W/g, '')}-${process.pid}.json`);
  await writeFile(file, JSON.stringify({ baseDns: [ou], tls: { serverName: dc.dnsHostName, caPem: dc.caPem } }));
  const args = ['integrations', 'add', '--account', 'acme', '--kind', 'active_directory', '--name', name, '--url', url, '--bind-dn', account.dn, '--settings-file', file, '--password-stdin'];
  return expectOk(await cli.run(args, { input: `${password}\n` })).trim();
}

test('integrations add stores an Active Directory integration from a settings file, the password encrypted', async () => {
  integrationId = await addIntegration('Head office', account.password);
  expect(integrationId).toMatch(/^[0-9a-f-]{36}$/);
  const shown = expectOk(await cli.run(['integrations', 'show', integrationId]));
  expect(shown).toMatch(/^kind:\s+active_directory$/m);
  expect(shown).toContain(`"baseDns": [\n    "${ou}"\n  ]`);
  expect(shown).toContain('"deltaMethod": "usn"');
  expect(shown).not.toContain(account.password);
}, timeoutMs);

test('integrations test prints the Active Directory checklist', async () => {
  const out = expectOk(await cli.run(['integrations', 'test', integrationId]));
  const lines = out.trim().split('\n');
  // The checks, then a few entries mapped with the integration's attribute mapping, then the verdict.
  const samplesAt = lines.indexOf('mapped samples:');
  expect(samplesAt).toBeGreaterThan(0);
  expect(lines.slice(0, samplesAt).map((line) => /^(.) ([^:]+):/.exec(line)?.slice(1, 3).join(' '))).toEqual([
    '✓ connect', '✓ tls', '✓ bind', '✓ domain controller', '✓ naming context', '✓ base', '✓ tombstones', '✓ read-only', '✓ delta',
  ]);
  const samples = lines.slice(samplesAt + 1, -1);
  expect(samples.length).toBeGreaterThan(0);
  for (const sample of samples) expect(sample).toMatch(/^ {2}(user|group|contact) \S+: \{"attributes":\{.*\}$/);
  expect(lines).toContain(`✓ base: ${ou}: 3 users, 1 group, 0 contacts visible`);
  expect(lines).toContain('✓ tls: LDAPS, certificate verified against the configured CA');
  expect(lines.at(-1)).toBe('connection OK');
}, timeoutMs);

test('set-password refuses a password the directory rejects, or a server it cannot reach, and keeps the old one', async () => {
  const before = await storedSecret(integrationId);
  const wrong = await cli.run(['integrations', 'set-password', integrationId, '--password-stdin'], { input: wrongPassword });
  expect(wrong.code).toBe(1);
  expect(wrong.stdout).toMatch(/^✗ bind: invalid credentials as CN=svc-dirsync,.*: wrong password/m);
  expect(wrong.stderr).toBe('dirsync: the new password was not stored: Test Connection failed (the old password stays in use)\n');
  expect(await storedSecret(integrationId)).toBe(before);

  const down = await addIntegration('Unreachable', account.password, 'ldaps://127.0.0.1:1');
  const unreachable = await cli.run(['integrations', 'set-password', down, '--password-stdin'], { input: account.password });
  expect(unreachable.code).toBe(1);
  expect(unreachable.stdout).toMatch(/^✗ connect: cannot reach ldaps:\/\/127\.0\.0\.1:1: ECONNREFUSED$/m);
  expect((await cli.run(['integrations', 'test', integrationId])).code).toBe(0);
}, timeoutMs);

test('after the password changes in the directory, set-password tests, stores and audits the new one and runs Sync All', async () => {
  worker = await cli.startWorker('ad-cli-worker');
  const first = parseRunReports(expectOk(await cli.run(['sync', integrationId, '--full', '--wait'])));
  expect(first[0]?.counts).toMatchObject({ created: objects, failed: 0 });

  const admin = await dc.client();
  try {
    await setAdPassword(admin, account.dn, newPassword);
  } finally {
    await admin.unbind();
  }
  const stale = await cli.run(['integrations', 'test', integrationId]);
  expect(stale.code).toBe(1);
  expect(stale.stdout).toMatch(/^✗ bind: .*wrong password/m);
  const before = await storedSecret(integrationId);

  const out = expectOk(await cli.run(['integrations', 'set-password', integrationId, '--password-stdin', '--wait'], { input: newPassword }));
  const runId = /^password stored; full sync queued: run ([0-9a-f-]{36})$/m.exec(out)?.[1];
  expect(runId).toBeDefined();
  const [report] = parseRunReports(out);
  expect(report?.fields).toMatchObject({ run: runId, status: 'succeeded', mode: 'full', trigger: 'password_update by cli' });
  // The service account itself is synced: its whenChanged moved with its password.
  expect(report?.counts).toMatchObject({ fetched: objects, created: 0, updated: 1, unchanged: objects - 1, deleted: 0, failed: 0 });
  const after = await storedSecret(integrationId);
  expect(after).not.toBe(before);
  expect(after).not.toContain(newPassword);
  const audit = await db.$client<{ action: string }[]>`select action from audit_events where integration_id = ${integrationId} order by id`;
  expect(audit.map((a) => a.action)).toEqual(['integration.created', 'integration.password_updated']);
  expect((await cli.run(['integrations', 'test', integrationId])).code).toBe(0);
}, timeoutMs);

test('a manual full sync after an interruption is recorded as a recovery', async () => {
  const [report] = parseRunReports(expectOk(await cli.run(['sync', integrationId, '--full', '--recovery', '--wait'])));
  expect(report?.fields).toMatchObject({ status: 'succeeded', mode: 'full', trigger: 'recovery by cli' });
  expect(report?.counts).toMatchObject({ fetched: objects, unchanged: objects });
}, timeoutMs);

test('no command output or worker log holds a password', async () => {
  expect(await worker!.stop()).toBe(0);
  const transcript = cli.transcript();
  for (const secret of [account.password, newPassword, wrongPassword, dc.adminPassword]) expect(transcript).not.toContain(secret);
}, timeoutMs);
