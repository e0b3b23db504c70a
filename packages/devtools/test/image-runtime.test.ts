import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, matchesGlob } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { launchReport, launchReporter } from './support/launch-report.ts';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, waitFor, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';

// The image's file set, run: the dependency stage replayed offline (production dependencies of
// the command line only) beside the sources the runtime stage copies, in a folder of its own with
// no testkit, devtools or development dependency anywhere above it. The image's entrypoint then
// runs the processes a deployment runs: a module reached only at run time (a lazy import of a
// development package, a file the build leaves out) would stop them here. The console's pages,
// built by a stage of their own, are stood in for by one page.

const execFileAsync = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

async function dockerfileStages(): Promise<Map<string, Instruction[]>> {
  const text = await readFile(join(root, 'docker', 'Dockerfile'), 'utf8');
  const stages = new Map<string, Instruction[]>();
  let current: Instruction[] | undefined;
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [keyword = '', ...rest] = trimmed.split(/\s+/);
    if (keyword === 'FROM') {
      current = [];
      stages.set(/\bAS\s+(\S+)$/i.exec(rest.join(' '))?.[1] ?? '', current);
    } else {
      current?.push({ keyword, args: rest.join(' ') });
    }
  }
  return stages;
}

async function ignoredByContext(): Promise<(path: string) => boolean> {
  const patterns = (await readFile(join(root, 'docker', 'Dockerfile.dockerignore'), 'utf8'))
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  return (path) => {
    const parts = path.split('/');
    return parts.some((_, i) => patterns.some((pattern) => matchesGlob(parts.slice(0, i + 1).join('/'), pattern)));
  };
}

/** Copies what a stage's COPY instructions take from the build context (committed files) into `app`. */
async function copyFromContext(app: string, instructions: readonly Instruction[], ignored: (path: string) => boolean): Promise<void> {
  for (const instruction of instructions.filter((i) => i.keyword === 'COPY')) {
    const words = instruction.args.split(/\s+/);
    if (words.some((word) => word.startsWith('--from='))) continue;
    const paths = words.filter((word) => !word.startsWith('--'));
    const destination = paths.pop()!;
    for (const source of paths.map((path) => path.replace(/^\.\//, '').replace(/\/$/, ''))) {
      const base = destination.endsWith('/') ? join(app, destination, source.split('/').at(-1)!) : join(app, destination);
      const { stdout } = await execFileAsync('git', ['ls-files', '-z', '--', source], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
      for (const file of stdout.split('\0').filter((f) => f !== '' && !ignored(f))) {
        const target = join(base, file.slice(source.length));
        await mkdir(dirname(target), { recursive: true });
        await cp(join(root, file), target);
      }
    }
  }
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

let app: string;
let entrypoint: string[];
let imageEnv: Record<string, string>;
let database: TestDatabase;
let prefix: TestQueuePrefix;

beforeAll(async () => {
  const stages = await dockerfileStages();
  const deps = stages.get('deps')!;
  const runtime = [...stages.values()].at(-1)!;
  const ignored = await ignoredByContext();
  app = await mkdtemp(join(tmpdir(), 'dirsync-image-runtime-'));
  await copyFromContext(app, deps, ignored);
  for (const instruction of deps.filter((i) => i.keyword === 'RUN')) {
    for (const command of instruction.args.split('&&').map((part) => part.trim())) {
      const argv = [...command.matchAll(/"([^"]*)"|(\S+)/g)].map((match) => match[1] ?? match[2]!);
      if (argv[0] !== 'pnpm') continue;
      await execFileAsync('pnpm', [...argv.slice(1), ...(argv[1] === 'install' ? ['--offline'] : [])], { cwd: app, env: { ...process.env, CI: 'true' }, timeout: 180_000 });
    }
  }
  await copyFromContext(app, runtime, ignored);
  await mkdir(join(app, 'packages', 'console', 'dist'), { recursive: true });
  await writeFile(join(app, 'packages', 'console', 'dist', 'index.html'), '<!doctype html><title>dirsync</title>\n');
  const declared = runtime.find((i) => i.keyword === 'ENTRYPOINT')!.args;
  entrypoint = JSON.parse(declared) as string[];
  // The runtime stage's settings, its folder standing for the image's WORKDIR, and this machine's
  // jemalloc (scripts/bootstrap.sh installs it) for the link the stage makes to Debian's.
  const workdir = runtime.find((i) => i.keyword === 'WORKDIR')!.args;
  const jemalloc = (await readdir('/usr/lib', { withFileTypes: true }))
    .filter((entry) => entry.isDirectory() && entry.name.endsWith('-linux-gnu'))
    .map((entry) => join('/usr/lib', entry.name, 'libjemalloc.so.2'))
    .find((path) => existsSync(path));
  imageEnv = {};
  for (const instruction of runtime.filter((i) => i.keyword === 'ENV')) {
    for (const [, name = '', value = ''] of instruction.args.matchAll(/(\w+)=(\S+)/g)) {
      if (name === 'LD_PRELOAD') {
        expect(value).toBe('/usr/local/lib/libjemalloc.so.2');
        expect(jemalloc).toBeDefined();
        imageEnv[name] = jemalloc!;
      } else {
        imageEnv[name] = value === workdir || value.startsWith(`${workdir}/`) ? app + value.slice(workdir.length) : value;
      }
    }
  }
  // Its node commands as the build runs them: no database, no setting but the image's. The
  // ownership commands around them need root and a `node` user; here this test's user is both.
  const buildEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir(), ...imageEnv };
  for (const instruction of runtime.filter((i) => i.keyword === 'RUN')) {
    for (const command of instruction.args.split('&&').map((part) => part.trim())) {
      const argv = command.replace(/\s*>\s*\/dev\/null$/, '').split(/\s+/);
      if (argv[0] === 'node') await execFileAsync(process.execPath, argv.slice(1), { cwd: app, env: buildEnv, timeout: 120_000 });
    }
  }
  database = await createTestDatabase('image_runtime');
  prefix = createTestQueuePrefix('image-runtime');
}, 300_000);

afterAll(async () => {
  await prefix?.cleanup();
  await database?.drop();
  if (app) await rm(app, { recursive: true, force: true });
});

/** The environment of a container: no setting of this machine's, nothing of the test runner's. */
function containerEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: tmpdir(),
    ...imageEnv,
    DATABASE_URL: database.url,
    REDIS_URL: testRedisUrl,
    DIRSYNC_QUEUE_PREFIX: prefix.prefix,
    DIRSYNC_SECRET_KEY: Buffer.alloc(32, 7).toString('base64'),
    DIRSYNC_API_HOST: '127.0.0.1',
    ...extra,
  };
}

function command(args: readonly string[], env = containerEnv()) {
  expect(entrypoint[0]).toBe('node');
  return execFileAsync(process.execPath, [...entrypoint.slice(1), ...args], { cwd: app, env, timeout: 120_000 });
}

test('the image tree holds no development package where Node would look for one', async () => {
  for (const name of ['testkit', 'devtools', 'client']) {
    await expect(readFile(join(app, 'node_modules', '@dirsync', name, 'package.json'))).rejects.toThrow();
    await expect(readFile(join(app, 'packages', 'cli', 'node_modules', '@dirsync', name, 'package.json'))).rejects.toThrow();
  }
  await expect(readFile(join(app, 'packages', 'devtools', 'package.json'))).rejects.toThrow();
});

test("the entrypoint prints its help, migrates, and every process kind starts, becomes ready and stops cleanly", async () => {
  const help = await command(['--help']);
  expect(help.stdout).toMatch(/^Usage: dirsync/);
  expect(help.stdout).not.toMatch(/^\s+(demo|bench)\b/m);
  expect((await command(['db', 'migrate'])).stdout).toMatch(/applied \d+ migrations|database is up to date/);
  expect((await command(['accounts', 'add', 'acme'])).stdout.trim()).toMatch(/^[0-9a-f-]{36}$/);

  for (const kind of ['scheduler', 'worker', 'api']) {
    const port = await freePort();
    const metricsPort = await freePort();
    const env = containerEnv({ PORT: String(port), DIRSYNC_METRICS_PORT: String(metricsPort), NODE_OPTIONS: launchReporter });
    const child = spawn(process.execPath, [...entrypoint.slice(1), kind], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
    const closed = once(child, 'close');
    try {
      const probe = kind === 'worker' ? metricsPort : port;
      const ready = await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`${kind} exited: ${output}`);
          const response = await fetch(`http://127.0.0.1:${probe}/readyz`).catch(() => undefined);
          return response?.status === 200 ? response : undefined;
        },
        { timeoutMs: 60_000, what: `the ${kind} to be ready` },
      );
      expect({ kind, body: await ready.json() }).toMatchObject({ kind, body: { ready: true } });
      if (kind !== 'worker') expect((await fetch(`http://127.0.0.1:${port}/console/`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
      await closed;
    }
    expect({ kind, code: child.exitCode, errors: output.split('\n').filter((line) => /"level":(50|60)/.test(line)) }).toEqual({ kind, code: 0, errors: [] });
    // Every module of the process was in the compile cache the build warmed, and the image's
    // allocator is the process's.
    expect({ kind, ...launchReport(output) }).toMatchObject({ kind, stripper: false, jemalloc: true, mallocConf: imageEnv['MALLOC_CONF'] });
  }
}, 300_000);

test('without the compile cache the build warmed, a start strips its TypeScript and holds the stripper', async () => {
  const empty = await mkdtemp(join(tmpdir(), 'dirsync-image-no-cache-'));
  try {
    const run = await command(['--version'], containerEnv({ NODE_COMPILE_CACHE: empty, NODE_OPTIONS: launchReporter }));
    expect(launchReport(run.stderr).stripper).toBe(true);
    const warmed = await command(['--version'], containerEnv({ NODE_OPTIONS: launchReporter }));
    expect(launchReport(warmed.stderr).stripper).toBe(false);
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});
