import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dirsyncBin } from '@dirsync/cli';

// Two command lines share one program: the image's entry (packages/cli/src/main.ts) without the
// development commands, and bin/dirsync (packages/devtools/src/main.ts) with `demo` and `bench`,
// which its completion scripts offer too.

const productionEntry = fileURLToPath(new URL('../../cli/src/main.ts', import.meta.url));

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(file: string, args: readonly string[], extraEnv: Readonly<Record<string, string>> = {}): Promise<Result> {
  const env: Record<string, string> = { ...extraEnv };
  if (process.env['PATH'] !== undefined) env['PATH'] = process.env['PATH'];
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

const production = (args: readonly string[], env?: Readonly<Record<string, string>>) =>
  run(process.execPath, ['--disable-warning=ExperimentalWarning', productionEntry, ...args], env);
const development = (args: readonly string[], env?: Readonly<Record<string, string>>) => run(dirsyncBin, args, env);

/** The command names `--help` lists. */
function commandsOf(help: string): string[] {
  const section = help.slice(help.indexOf('Commands:'));
  return [...section.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((match) => match[1]!);
}

test('the production entry has every command but demo and bench; bin/dirsync adds just those two', async () => {
  const [prod, dev] = await Promise.all([production(['--help']), development(['--help'])]);
  expect(prod).toMatchObject({ code: 0, stderr: '' });
  expect(dev).toMatchObject({ code: 0, stderr: '' });
  const prodCommands = commandsOf(prod.stdout);
  expect(prodCommands).toEqual(expect.arrayContaining(['scheduler', 'worker', 'api', 'db', 'integrations', 'completion']));
  expect(prodCommands).not.toContain('demo');
  expect(prodCommands).not.toContain('bench');
  expect(commandsOf(dev.stdout).filter((name) => !prodCommands.includes(name)).sort()).toEqual(['bench', 'demo']);
}, 60_000);

test('the production entry refuses demo as an unknown command (usage error)', async () => {
  const result = await production(['demo']);
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(/unknown command 'demo'/);
}, 60_000);

test("bin/dirsync's completion scripts offer demo and bench with their options; the production entry's do not", async () => {
  const [prod, dev] = await Promise.all([production(['completion', 'bash']), development(['completion', 'bash'])]);
  expect(prod.code).toBe(0);
  expect(dev.code).toBe(0);
  const rootWords = (script: string) => /^ {4}''\) words='([^']*)' ;;$/m.exec(script)?.[1]?.split(' ') ?? [];
  expect(rootWords(dev.stdout)).toEqual(expect.arrayContaining(['demo', 'bench', 'completion']));
  expect(rootWords(prod.stdout)).toEqual(expect.arrayContaining(['scheduler', 'completion']));
  expect(rootWords(prod.stdout)).not.toContain('demo');
  expect(rootWords(prod.stdout)).not.toContain('bench');
  expect(dev.stdout).toMatch(/^ {4}'demo'\) words='[^']*--console/m);
  expect(dev.stdout).not.toBe(prod.stdout);
}, 60_000);

test('a refusal of a development command ends as in the production entry: one line on stderr, exit code 1', async () => {
  const result = await development(['bench', '--database', 'postgres://127.0.0.1:5432/production']);
  expect(result).toEqual({ code: 1, stdout: '', stderr: 'dirsync: the benchmark drops its database: --database must name a database called dirsync_bench…\n' });
}, 60_000);

test('both entries keep compiled modules in the compile cache, so the next command starts from it', async () => {
  const base = await mkdtemp(join(tmpdir(), 'dirsync-compile-cache-'));
  await Promise.all(['production', 'development'].map((dir) => mkdir(join(base, dir))));
  try {
    const entries = async (dir: string) => (await readdir(dir, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile()).length;
    // No NODE_COMPILE_CACHE (which would turn the cache on by itself): the entries enable it, in
    // the temporary directory's node-compile-cache.
    const [prod, dev] = await Promise.all([production(['--help'], { TMPDIR: join(base, 'production') }), development(['--help'], { TMPDIR: join(base, 'development') })]);
    expect(prod).toMatchObject({ code: 0, stderr: '' });
    expect(dev).toMatchObject({ code: 0, stderr: '' });
    // The program's own modules (some 400 with their libraries) are there, not just the entry.
    expect(await entries(join(base, 'production', 'node-compile-cache'))).toBeGreaterThan(100);
    expect(await entries(join(base, 'development', 'node-compile-cache'))).toBeGreaterThan(100);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}, 60_000);
