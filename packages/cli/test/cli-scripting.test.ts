import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { connectorSchema, integrationSchema, runSchema, secretAcceptedSchema, syncAnswerSchema } from '@dirsync/contracts';
import { close, connect } from '@dirsync/db';
import { z } from 'zod';
import { dirsyncBin } from '../src/services.ts';
import { type CliEnvironment, type CliResult, createCliEnvironment } from './support/run-cli.ts';

// The command line as scripts use it, through `bin/dirsync` in child processes against the
// machine's PostgreSQL and Redis: the version, the exit codes, `--json` in the API's shapes, the
// scope flags of each LDAP kind (the README's commands, run as written) and shell completion.
// No worker runs here: a requested sync stays queued, which is what the timeout case needs.

const timeoutMs = 180_000;
const root = fileURLToPath(new URL('../../../', import.meta.url));

let cli: CliEnvironment;
let accountId: string;

beforeAll(async () => {
  cli = await createCliEnvironment('cliscript');
  accountId = ok(await cli.run(['accounts', 'add', 'acme'])).trim();
}, timeoutMs);

afterAll(async () => {
  await cli?.cleanup();
}, timeoutMs);

function ok(result: CliResult): string {
  expect(result).toMatchObject({ code: 0, stderr: '' });
  return result.stdout;
}

/** A refusal: the documented code, nothing on stdout, one `dirsync:`/commander line and no stack. */
function refused(result: CliResult, code: number): string {
  expect({ code: result.code, stdout: result.stdout }).toEqual({ code, stdout: '' });
  expect(result.stderr).not.toMatch(/^\s+at /m);
  return result.stderr;
}

test('--version prints the version every package and the root manifest carry', async () => {
  const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
  expect(manifest.version).toMatch(/^\d+\.\d+\.\d+(-[\w.]+)?$/);
  const packages = await readdir(join(root, 'packages'));
  const versions: Record<string, string> = {};
  for (const name of packages) {
    const text = await readFile(join(root, 'packages', name, 'package.json'), 'utf8').catch(() => undefined);
    if (text !== undefined) versions[name] = (JSON.parse(text) as { version: string }).version;
  }
  expect(Object.keys(versions)).toContain('cli');
  expect(new Set(Object.values(versions))).toEqual(new Set([manifest.version]));
  for (const flag of ['--version', '-V']) expect(ok(await cli.run([flag]))).toBe(`${manifest.version}\n`);
}, timeoutMs);

test('a wrong command line exits 2, something named that does not exist exits 3', async () => {
  expect(refused(await cli.run(['nonsense']), 2)).toMatch(/unknown command 'nonsense'/);
  expect(refused(await cli.run(['runs', 'list', '--no-such-flag']), 2)).toMatch(/unknown option '--no-such-flag'/);
  expect(refused(await cli.run(['runs', 'show']), 2)).toMatch(/missing required argument 'run'/);
  expect(refused(await cli.run(['runs', 'list', '--status', 'sleeping']), 2)).toMatch(/^dirsync: unknown status "sleeping"/);
  expect(refused(await cli.run(['sync', randomUUID(), '--timeout', '5']), 2)).toBe('dirsync: --timeout needs --wait\n');
  expect(refused(await cli.run(['completion', 'tcsh']), 2)).toBe('dirsync: unknown shell "tcsh": use one of bash, zsh, fish\n');
  expect((await cli.run([])).code).toBe(2);
  expect(ok(await cli.run(['--help']))).toMatch(/^Usage: dirsync/);

  const missing = randomUUID();
  expect(refused(await cli.run(['runs', 'show', missing]), 3)).toBe(`dirsync: no run ${missing}\n`);
  expect(refused(await cli.run(['integrations', 'show', missing]), 3)).toBe(`dirsync: integration ${missing} not found\n`);
  expect(refused(await cli.run(['sync', missing]), 3)).toBe(`dirsync: integration ${missing} not found\n`);
  expect(refused(await cli.run(['integrations', 'list', '--account', 'nobody']), 3)).toBe('dirsync: no account "nobody"\n');
}, timeoutMs);

/** The README's `integrations add` commands of each LDAP kind, continuation lines joined. */
async function readmeAddCommands(): Promise<Map<string, string>> {
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  // Configure → Directory kinds: the first sh block under each LDAP kind's `#### \`kind\`` heading.
  const start = readme.indexOf('\n### Directory kinds\n');
  expect(start).toBeGreaterThan(0);
  const section = readme.slice(start, readme.indexOf('\n### ', start + 1));
  const block = section
    .split(/\n#### /)
    .filter((part) => /^`(ldap|active_directory|domino)`/.test(part))
    .map((part) => /```sh\n([\s\S]*?)```/.exec(part)?.[1] ?? '')
    .join('');
  const commands = new Map<string, string>();
  for (const command of block.replace(/\\\n\s*/g, '').split('\n').filter((line) => line.trim() !== '')) {
    const kind = /--kind (\w+)/.exec(command)?.[1];
    if (kind !== undefined) commands.set(kind, command);
  }
  return commands;
}

/** Runs one README command line as a shell would, in a directory holding its password.txt. */
async function runReadmeCommand(command: string, directory: string): Promise<CliResult> {
  const child = spawn('bash', ['-c', command.replace(/^\.\/bin\/dirsync /, `'${dirsyncBin}' `)], { cwd: directory, env: { ...cli.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

test("the README's integrations add command of each LDAP kind works as written and stores the scope flags", async () => {
  const commands = await readmeAddCommands();
  expect([...commands.keys()].sort()).toEqual(['active_directory', 'domino', 'ldap']);
  const directory = await mkdtemp(join(tmpdir(), 'dirsync-readme-'));
  try {
    await writeFile(join(directory, 'password.txt'), 'a-reader-password\n');
    const settings: Record<string, Record<string, unknown>> = {};
    for (const [kind, command] of commands) {
      const id = ok(await runReadmeCommand(command, directory)).trim();
      const shown = integrationSchema.parse(JSON.parse(ok(await cli.run(['integrations', 'show', id, '--json']))));
      expect(shown).toMatchObject({ id, accountId, kind, hasSecret: true });
      settings[kind] = shown.settings;
    }
    expect(settings['ldap']).toMatchObject({
      users: { baseDns: ['ou=people,dc=example,dc=com'], filter: '(!(uid=svc-*))' },
      groups: { baseDns: ['ou=groups,dc=example,dc=com'] },
    });
    expect(settings['active_directory']).toMatchObject({
      baseDns: ['OU=Staff,DC=corp,DC=example,DC=com', 'OU=Groups,DC=corp,DC=example,DC=com'],
      excludeFilter: '(sAMAccountName=svc-*)',
      objectTypes: ['user', 'group'],
    });
    expect(settings['active_directory']).not.toHaveProperty('users');
    expect(settings['domino']).toMatchObject({ users: { baseDns: ['O=Acme'] }, groups: { baseDns: [''], filter: '(!(cn=LocalDomain*))' } });
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}, timeoutMs);

test('scope flags of another kind are a usage error naming the right flags; update takes them too', async () => {
  const common = ['integrations', 'add', '--account', 'acme', '--no-password', '--url', 'ldaps://dc.example.com', '--bind-dn', 'CN=r,DC=example,DC=com'];
  const ad = refused(await cli.run([...common, '--kind', 'active_directory', '--name', 'AD', '--users-base', 'OU=U,DC=example,DC=com', '--groups-base', 'OU=G,DC=example,DC=com']), 2);
  expect(ad).toMatch(/^dirsync: --users-base, --groups-base: an active_directory integration reads users, groups and contacts under one list of bases: use --base <dn>/);
  expect(ad).not.toMatch(/unknown setting/);
  const ldap = refused(await cli.run([...common, '--kind', 'ldap', '--name', 'L', '--base', 'dc=example,dc=com', '--filter', '(uid=*)']), 2);
  expect(ldap).toMatch(/^dirsync: --base, --filter: ldap integrations have bases and filters per type: use --users-base/);
  const entra = refused(await cli.run(['integrations', 'add', '--account', 'acme', '--no-password', '--kind', 'entra_id', '--name', 'E', '--tenant', 'contoso.onmicrosoft.com', '--users-base', 'ou=x']), 2);
  expect(entra).toBe('dirsync: --users-base: entra_id integrations read the whole tenant: they have no base DN or LDAP filter\n');
  // An invalid filter is the schema's problem, reported with the setting's name.
  expect(refused(await cli.run([...common, '--kind', 'active_directory', '--name', 'AD', '--base', 'DC=example,DC=com', '--filter', 'uid=a']), 2)).toMatch(/filter/);

  const id = ok(await cli.run([...common, '--kind', 'active_directory', '--name', 'AD', '--base', 'DC=example,DC=com'])).trim();
  expect(ok(await cli.run(['integrations', 'update', id, '--base', 'OU=Staff,DC=example,DC=com', '--filter', '(department=Sales)', '--object-types', 'user']))).toBe('updated\n');
  const shown = integrationSchema.parse(JSON.parse(ok(await cli.run(['integrations', 'show', id, '--json']))));
  expect(shown.settings).toMatchObject({ baseDns: ['OU=Staff,DC=example,DC=com'], filter: '(department=Sales)', objectTypes: ['user'] });
  expect(refused(await cli.run(['integrations', 'update', id, '--users-base', 'OU=U,DC=example,DC=com']), 2)).toMatch(/use --base/);
}, timeoutMs);

test('--json of lists, shows and sync: the API shapes; a sync waited for past --timeout exits 5', async () => {
  const accounts = z
    .object({ items: z.array(z.object({ id: z.string(), name: z.string(), createdAt: z.string() }).strict()) })
    .strict()
    .parse(JSON.parse(ok(await cli.run(['accounts', 'list', '--json']))));
  expect(accounts.items).toContainEqual(expect.objectContaining({ id: accountId, name: 'acme' }));

  const id = ok(
    await cli.run(['integrations', 'add', '--account', 'acme', '--kind', 'ldap', '--name', 'Json', '--no-password', '--url', 'ldaps://ldap.example.com', '--bind-dn', 'cn=r,dc=example,dc=com', '--users-base', 'ou=people,dc=example,dc=com', '--groups-base', 'ou=groups,dc=example,dc=com']),
  ).trim();
  const listed = z.object({ items: z.array(integrationSchema) }).strict().parse(JSON.parse(ok(await cli.run(['integrations', 'list', '--account', 'acme', '--json']))));
  const listedOne = listed.items.find((item) => item.id === id);
  expect(listedOne).toMatchObject({ name: 'Json', kind: 'ldap', enabled: true, hasSecret: false, lastRun: null, status: expect.any(String) });
  expect(Date.parse(listedOne!.createdAt)).not.toBeNaN();

  const queued = syncAnswerSchema.parse(JSON.parse(ok(await cli.run(['sync', id, '--full', '--json']))));
  expect(queued).toMatchObject({ mode: 'full', dryRun: false, deduplicated: false, run: { id: queued.runId, integrationId: id, status: 'queued', modeRequested: 'full' } });

  // No worker: the run stays queued and the wait runs out.
  const waited = await cli.run(['sync', id, '--full', '--wait', '--timeout', '1', '--json']);
  expect(waited).toMatchObject({ code: 5, stderr: '' });
  const answer = syncAnswerSchema.parse(JSON.parse(waited.stdout));
  expect(answer).toMatchObject({ runId: queued.runId, deduplicated: true, run: { status: 'queued' } });
  const text = await cli.run(['sync', id, '--full', '--wait', '--timeout', '1']);
  expect(text).toMatchObject({ code: 5, stdout: expect.stringMatching(/^timed out: run [0-9a-f-]{36} has not ended yet/m) });

  const runs = z.object({ items: z.array(runSchema) }).strict().parse(JSON.parse(ok(await cli.run(['runs', 'list', '--integration', id, '--json']))));
  expect(runs.items.map((run) => run.id)).toEqual([queued.runId]);
  const run = runSchema.parse(JSON.parse(ok(await cli.run(['runs', 'show', queued.runId, '--json']))));
  expect(run).toMatchObject({ id: queued.runId, status: 'queued', counts: { fetched: 0, wouldDelete: 0 }, attempt: 0 });

  const shown = integrationSchema.parse(JSON.parse(ok(await cli.run(['integrations', 'show', id, '--json']))));
  expect(shown).toMatchObject({ id, lastRun: { id: queued.runId, status: 'queued' } });
}, timeoutMs);

test('runs approve and set-password --json: the API shapes; a refusal prints nothing but its outcome and exits 1, a missing one 3', async () => {
  const missing = randomUUID();
  expect(refused(await cli.run(['runs', 'approve', missing, '--json']), 3)).toBe(`dirsync: run ${missing} not found\n`);
  expect(refused(await cli.run(['integrations', 'set-password', missing, '--password-stdin', '--json'], { input: 'p\n' }), 3)).toBe(`dirsync: integration ${missing} not found\n`);
  expect(refused(await cli.run(['integrations', 'migrate', missing, '--connector', missing, '--description', 'd', '--json']), 3)).toBe(`dirsync: connector ${missing} not found\n`);

  // A directory that is not there: Test Connection fails, so the password is refused (exit 1),
  // its checklist printed in the API's shape with no sync.
  const id = ok(
    await cli.run(['integrations', 'add', '--account', 'acme', '--kind', 'ldap', '--name', 'Approve', '--no-password', '--url', 'ldap://127.0.0.1:9', '--bind-dn', 'cn=r,dc=example,dc=com', '--users-base', 'ou=people,dc=example,dc=com', '--groups-base', 'ou=groups,dc=example,dc=com']),
  ).trim();
  const password = await cli.run(['integrations', 'set-password', id, '--password-stdin', '--json'], { input: 'not-stored-password\n' });
  expect({ code: password.code, stderr: password.stderr }).toEqual({ code: 1, stderr: 'dirsync: the new password was not stored: Test Connection failed (the old password stays in use)\n' });
  const answer = secretAcceptedSchema.extend({ sync: syncAnswerSchema.nullable() }).strict().parse(JSON.parse(password.stdout));
  expect(answer).toMatchObject({ connection: { ok: false, checks: expect.arrayContaining([expect.objectContaining({ ok: false })]) }, sync: null });
  expect(password.stdout).not.toContain('not-stored-password');
  expect(integrationSchema.parse(JSON.parse(ok(await cli.run(['integrations', 'show', id, '--json']))))).toMatchObject({ hasSecret: false, lastRun: null });

  const queued = syncAnswerSchema.parse(JSON.parse(ok(await cli.run(['sync', id, '--full', '--json']))));
  expect(refused(await cli.run(['runs', 'approve', queued.runId, '--json']), 1)).toBe(`dirsync: run ${queued.runId} is queued: only a run blocked by the deletion threshold can be approved\n`);
  // What a worker writes when the deletion threshold stops a full run (no worker runs here).
  const db = connect(cli.database.url, { max: 1 });
  try {
    await db.$client`update sync_runs set status = 'blocked', mode = 'full', would_delete = 7, started_at = now(), finished_at = now() where id = ${queued.runId}`;
  } finally {
    await close(db);
  }
  const approved = runSchema.strict().parse(JSON.parse(ok(await cli.run(['runs', 'approve', queued.runId, '--by', 'ops', '--json']))));
  expect(approved).toMatchObject({ id: queued.runId, integrationId: id, status: 'blocked', approvedBy: 'ops', counts: { wouldDelete: 7 } });
  expect(Date.parse(approved.approvedAt ?? '')).not.toBeNaN();
  expect(refused(await cli.run(['runs', 'approve', queued.runId, '--json']), 1)).toBe(`dirsync: run ${queued.runId} was already approved by ops\n`);
}, timeoutMs);

test('--json of api-keys and connectors: no token, no key, the API\'s connector shape', async () => {
  const created = await cli.run(['api-keys', 'create', '--account', 'acme', '--name', 'ci', '--scopes', 'read,sync']);
  expect(created.code).toBe(0);
  const token = created.stdout.trim();
  const keys = z
    .object({ items: z.array(z.object({ id: z.string(), accountId: z.string().nullable(), name: z.string(), scopes: z.array(z.string()), createdAt: z.string(), lastUsedAt: z.string().nullable(), revokedAt: z.string().nullable() }).strict()) })
    .strict()
    .parse(JSON.parse(ok(await cli.run(['api-keys', 'list', '--account', 'acme', '--json']))));
  expect(keys.items).toEqual([expect.objectContaining({ accountId, name: 'ci', scopes: ['read', 'sync'], lastUsedAt: null, revokedAt: null })]);

  const [clientId, objectId, homeTenant] = [randomUUID(), randomUUID(), randomUUID()];
  expect(
    (await cli.run(['connectors', 'add', '--name', 'platform', '--description', 'Directory sync for customers', '--client-id', clientId, '--object-id', objectId, '--home-tenant', homeTenant, '--redirect-uri', 'https://sync.example.com/v1/consent/callback'])).code,
  ).toBe(0);
  const shown = JSON.parse(ok(await cli.run(['connectors', 'show', 'platform', '--json']))) as Record<string, unknown>;
  const connector = connectorSchema.omit({ tenants: true }).extend({ consents: z.array(z.unknown()) }).strict().parse(shown);
  expect(connector).toMatchObject({ name: 'platform', clientId, cloud: 'global', consents: [], lastRotation: { at: null } });
  expect(connector.certificates).toHaveLength(1);
  expect(connector.currentThumbprint ?? connector.certificates[0]?.thumbprint).toMatch(/^[0-9A-F]{40}$/i);
  const listed = z.object({ items: z.array(connectorSchema.omit({ tenants: true }).strict()) }).parse(JSON.parse(ok(await cli.run(['connectors', 'list', '--json']))));
  expect(listed.items.map((item) => item.id)).toEqual([connector.id]);
  // Neither a private key nor the API token is in any of it.
  for (const text of [JSON.stringify(keys), JSON.stringify(shown)]) {
    expect(text).not.toContain(token);
    expect(text).not.toMatch(/PRIVATE KEY/);
  }
}, timeoutMs);

/** What bash completes for `words` (the last one being completed), with the generated script. */
async function bashCompletes(script: string, words: readonly string[]): Promise<string[]> {
  const quoted = words.map((w) => `'${w}'`).join(' ');
  const program = `${script}\nCOMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _dirsync; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const child = spawn('bash', ['--norc', '--noprofile', '-c', program], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  const [code] = (await once(child, 'close')) as [number | null];
  expect(code).toBe(0);
  return stdout.split('\n').filter((line) => line !== '');
}

test('completion scripts come from the command tree: bash, zsh and fish complete commands and options', async () => {
  const bash = ok(await cli.run(['completion', 'bash']));
  expect(await bashCompletes(bash, ['dirsync', 'integ'])).toEqual(['integrations']);
  expect(await bashCompletes(bash, ['dirsync', 'integrations', ''])).toEqual(expect.arrayContaining(['add', 'list', 'show', 'update', 'test', '--help']));
  expect(await bashCompletes(bash, ['dirsync', '--debug', 'integrations', 'add', '--ex'])).toEqual(['--exclude-filter']);
  expect(await bashCompletes(bash, ['dirsync', 'runs', 'list', '--j'])).toEqual(['--json']);
  expect(await bashCompletes(bash, ['dirsync', 'completion', ''])).toEqual(['-h', '--help']);

  // zsh: the function's candidates for `_describe`, which a stand-in prints (no terminal here).
  const zsh = ok(await cli.run(['completion', 'zsh']));
  expect(zsh).toMatch(/^#compdef dirsync\n/);
  const zshCompletes = async (words: readonly string[]) => {
    const program = `compdef() { :; }\n${zsh}\n_describe() { print -rl -- "\${(@P)4}"; }\nwords=(${words.map((w) => `'${w}'`).join(' ')}); CURRENT=${words.length}; _dirsync`;
    return (await shellLines('zsh', ['-f', '-c', program])).map((line) => line.split(/(?<!\\):/)[0]);
  };
  expect(await zshCompletes(['dirsync', '--debug', 'runs', ''])).toEqual(expect.arrayContaining(['list', 'show', 'approve', '--help']));
  expect(await zshCompletes(['dirsync', 'integrations', 'add', ''])).toContain('--exclude-filter');

  // fish: its own `complete -C`, with the script loaded.
  const fish = ok(await cli.run(['completion', 'fish']));
  const fishCompletes = async (line: string) => (await shellLines('fish', ['--no-config', '-c', `${fish}\ncomplete -C '${line}'`])).map((entry) => entry.split('\t')[0]);
  expect(await fishCompletes('dirsync integ')).toEqual(['integrations']);
  expect(await fishCompletes('dirsync --debug integrations add --exc')).toEqual(['--exclude-filter']);
  expect(await fishCompletes('dirsync runs list --j')).toEqual(['--json']);
}, timeoutMs);

/** The lines a shell printed running `args` (it must exit 0). */
async function shellLines(shell: string, args: readonly string[]): Promise<string[]> {
  const child = spawn(shell, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const [code] = (await once(child, 'close')) as [number | null];
  expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
  return stdout.split('\n').filter((line) => line !== '');
}
