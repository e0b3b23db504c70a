import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, matchesGlob } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// Docker cannot run here: these tests read docker/Dockerfile and its .dockerignore the way a
// build would, and check that the image carries the production packages only: the command line
// (the ENTRYPOINT) and the packages it depends on, never the testkit, the development tools (demo
// and bench), the API client for other services, or a test runner or browser.

const execFileAsync = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Development packages and tools that must never reach the image. */
const devPackages = ['@dirsync/testkit', '@dirsync/devtools', '@dirsync/client'];
const devTools = /^(@?jest|@jest\/|playwright|playwright-core|vite|@vitejs\/|@swc\/|axe-core|fast-check|oidc-provider)/;

interface Manifest {
  readonly name: string;
  readonly dependencies?: Record<string, string>;
  readonly devDependencies?: Record<string, string>;
}

/** Every workspace package: its folder under packages/ and its manifest, by package name. */
async function workspace(): Promise<Map<string, { dir: string; manifest: Manifest }>> {
  const packages = new Map<string, { dir: string; manifest: Manifest }>();
  for (const dir of await readdir(join(root, 'packages'))) {
    const text = await readFile(join(root, 'packages', dir, 'package.json'), 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const manifest = JSON.parse(text) as Manifest;
    packages.set(manifest.name, { dir, manifest });
  }
  return packages;
}

/** The workspace packages `name` needs at run time: itself and its production dependencies, recursively. */
async function productionClosure(name: string): Promise<{ packages: Set<string>; external: Set<string> }> {
  const all = await workspace();
  const packages = new Set<string>();
  const external = new Set<string>();
  const visit = (current: string) => {
    if (packages.has(current)) return;
    const entry = all.get(current);
    if (!entry) throw new Error(`${current} is not a workspace package`);
    packages.add(current);
    for (const [dependency, range] of Object.entries(entry.manifest.dependencies ?? {})) {
      if (range.startsWith('workspace:')) visit(dependency);
      else external.add(dependency);
    }
  };
  visit(name);
  return { packages, external };
}

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** The Dockerfile's stages by name, each a list of instructions (continuation lines joined). */
async function dockerfileStages(): Promise<Map<string, Instruction[]>> {
  const text = await readFile(join(root, 'docker', 'Dockerfile'), 'utf8');
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const stages = new Map<string, Instruction[]>();
  let current: Instruction[] | undefined;
  for (const line of lines) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (keyword === 'FROM') {
      const name = /\bAS\s+(\S+)$/i.exec(args)?.[1];
      if (!name) throw new Error(`a stage without a name: ${line}`);
      current = [];
      stages.set(name, current);
    } else {
      current?.push({ keyword, args });
    }
  }
  return stages;
}

/** A COPY instruction's flags, sources and destination. */
function copyOf(instruction: Instruction): { from: string | undefined; sources: string[]; destination: string } {
  const words = instruction.args.split(/\s+/);
  const flags = words.filter((word) => word.startsWith('--'));
  const paths = words.filter((word) => !word.startsWith('--'));
  const destination = paths.pop();
  if (destination === undefined || paths.length === 0) throw new Error(`COPY ${instruction.args}: no source`);
  return { from: flags.find((flag) => flag.startsWith('--from='))?.slice('--from='.length), sources: paths, destination };
}

/** Whether the build context leaves `path` (relative to the root) out, per Dockerfile.dockerignore. */
async function dockerignore(): Promise<(path: string) => boolean> {
  const patterns = (await readFile(join(root, 'docker', 'Dockerfile.dockerignore'), 'utf8'))
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  // Exceptions (!pattern) would need the full precedence rules; the file has none.
  expect(patterns.filter((pattern) => pattern.startsWith('!'))).toEqual([]);
  return (path) => {
    const parts = path.split('/');
    // A pattern that matches a folder leaves out everything in it.
    return parts.some((_, i) => patterns.some((pattern) => matchesGlob(parts.slice(0, i + 1).join('/'), pattern)));
  };
}

/**
 * The files of the build context under `source` (a file or a folder), as paths from the root: the
 * committed files, as a build from a clean checkout sees them.
 */
async function contextFiles(source: string, ignored: (path: string) => boolean): Promise<string[]> {
  const { stdout } = await execFileAsync('git', ['ls-files', '-z', '--', source], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
  return stdout.split('\0').filter((file) => file !== '' && !ignored(file));
}

/** What a source imports at run time (`import type` is erased and left out). */
function runtimeImports(source: string): { packages: string[]; relative: string[] } {
  const specifiers: string[] = [];
  const statements = /(?:^|\n)\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?'([^']+)'/g;
  for (const match of source.matchAll(statements)) if (!match[1]) specifiers.push(match[2]!);
  for (const match of source.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)) specifiers.push(match[1]!);
  return {
    packages: specifiers
      .filter((name) => !name.startsWith('.') && !name.startsWith('node:'))
      .map((name) => (name.startsWith('@') ? name.split('/').slice(0, 2).join('/') : name.split('/')[0]!)),
    relative: specifiers.filter((name) => name.startsWith('.')),
  };
}

test("the command line's production dependencies, followed through the workspace, hold no development package", async () => {
  const { packages, external } = await productionClosure('@dirsync/cli');
  expect(packages).toContain('@dirsync/api');
  expect(packages).toContain('@dirsync/worker');
  for (const name of devPackages) expect(packages).not.toContain(name);
  expect([...external].filter((name) => devTools.test(name))).toEqual([]);
});

test('the runtime stage copies the sources of production packages only, without tests or benchmarks', async () => {
  const stages = await dockerfileStages();
  const runtime = [...stages.values()].at(-1)!;
  const { packages } = await productionClosure('@dirsync/cli');
  const all = await workspace();
  const productionDirs = new Set([...packages].map((name) => all.get(name)!.dir));
  const ignored = await dockerignore();

  const copies = runtime.filter((instruction) => instruction.keyword === 'COPY').map(copyOf);
  const fromContext = copies.filter((copy) => copy.from === undefined);
  const files = (await Promise.all(fromContext.flatMap((copy) => copy.sources.map((source) => contextFiles(source.replace(/^\.\//, '').replace(/\/$/, ''), ignored))))).flat();
  expect(files).toContain('packages/cli/src/main.ts');
  expect(files).toContain('packages/db/migrations/meta/_journal.json');

  const outside = files.filter((file) => file.includes('/') && !productionDirs.has(/^packages\/([^/]+)\//.exec(file)?.[1] ?? ''));
  expect(outside).toEqual([]);
  expect(files.filter((file) => /(^|\/)(test|bench)\//.test(file) || file.endsWith('.test.ts'))).toEqual([]);

  // What the other stages hand over: the installed production dependencies and the console's
  // built pages, nothing else.
  const handed = copies.filter((copy) => copy.from !== undefined).map((copy) => `${copy.from}: ${copy.sources.join(' ')}`);
  expect(handed.sort()).toEqual(['console: /app/packages/console/dist', 'deps: /app/node_modules', 'deps: /app/packages']);

  // Each copied source imports at run time only Node's modules, its own package's production
  // dependencies and files the image has (a module left out, as the benchmarks under **/bench
  // are, would stop every command from starting), so nothing the image runs reaches for a
  // package or file it does not carry.
  const dirOfName = new Map([...all.entries()].map(([name, entry]) => [entry.dir, name]));
  const copied = new Set(files);
  const unlisted: string[] = [];
  const missing: string[] = [];
  for (const file of files.filter((f) => f.endsWith('.ts'))) {
    const dir = /^packages\/([^/]+)\//.exec(file)?.[1];
    const manifest = all.get(dirOfName.get(dir ?? '') ?? '')?.manifest;
    if (!manifest) continue;
    const allowed = new Set([manifest.name, ...Object.keys(manifest.dependencies ?? {})]);
    const imports = runtimeImports(await readFile(join(root, file), 'utf8'));
    for (const name of imports.packages) if (!allowed.has(name)) unlisted.push(`${file}: ${name}`);
    for (const path of imports.relative) {
      const target = join(dirname(file), path);
      if (!copied.has(target)) missing.push(`${file}: ${path}`);
    }
  }
  expect(unlisted).toEqual([]);
  expect(missing).toEqual([]);
});

/**
 * Replays a stage in a new folder without Docker: its COPY instructions from the build context
 * (what the .dockerignore lets in) and the pnpm commands of its RUN instructions, installing
 * offline from this machine's pnpm store. Returns the folder (the stage's /app).
 */
async function replayStage(instructions: readonly Instruction[]): Promise<string> {
  const ignored = await dockerignore();
  const app = await mkdtemp(join(tmpdir(), 'dirsync-image-stage-'));
  try {
    for (const instruction of instructions) {
      if (instruction.keyword === 'COPY') {
        const copy = copyOf(instruction);
        expect(copy.from).toBeUndefined();
        for (const source of copy.sources) {
          const base = copy.destination.endsWith('/') ? join(app, copy.destination, source.split('/').at(-1)!) : join(app, copy.destination);
          for (const file of await contextFiles(source, ignored)) {
            const target = join(base, file.slice(source.length));
            await mkdir(dirname(target), { recursive: true });
            await cp(join(root, file), target);
          }
        }
      } else if (instruction.keyword === 'RUN') {
        for (const command of instruction.args.split('&&').map((part) => part.trim())) {
          const argv = [...command.matchAll(/"([^"]*)"|(\S+)/g)].map((match) => match[1] ?? match[2]!);
          if (argv.join(' ') === 'corepack enable') continue;
          expect(argv[0]).toBe('pnpm');
          await execFileAsync('pnpm', [...argv.slice(1), ...(argv[1] === 'install' ? ['--offline'] : [])], { cwd: app, env: { ...process.env, CI: 'true' }, timeout: 180_000 });
        }
      }
    }
  } catch (error) {
    await rm(app, { recursive: true, force: true });
    throw error;
  }
  return app;
}

test('the dependency stage installs exactly the production closure of the command line (replayed offline)', async () => {
  const stages = await dockerfileStages();
  const deps = stages.get('deps');
  expect(deps).toBeDefined();
  const { packages } = await productionClosure('@dirsync/cli');
  const all = await workspace();
  const copies = deps!.filter((instruction) => instruction.keyword === 'COPY').map(copyOf);
  const manifests = copies.flatMap((copy) => copy.sources).filter((source) => /^packages\/[^/]+\/package\.json$/.test(source));
  expect(manifests.sort()).toEqual([...packages].map((name) => `packages/${all.get(name)!.dir}/package.json`).sort());

  const installs = deps!.filter((instruction) => instruction.keyword === 'RUN' && /\bpnpm install\b/.test(instruction.args));
  expect(installs).toHaveLength(1);
  const argv = [...installs[0]!.args.matchAll(/"([^"]*)"|(\S+)/g)].map((match) => match[1] ?? match[2]!);
  expect(argv.slice(0, 2)).toEqual(['pnpm', 'install']);
  expect(argv).toEqual(expect.arrayContaining(['--frozen-lockfile', '--prod', '--filter', '@dirsync/cli...']));

  const app = await replayStage(deps!);
  try {
    const installed = await readdir(join(app, 'node_modules', '.pnpm'));
    expect(installed.length).toBeGreaterThan(50);
    expect(installed.filter((entry) => devTools.test(entry.replace(/^@([^+]+)\+/, '@$1/')))).toEqual([]);
    expect((await readdir(join(app, 'packages'))).sort()).toEqual([...packages].map((name) => all.get(name)!.dir).sort());
    for (const name of packages) {
      const dir = join(app, 'packages', all.get(name)!.dir);
      const linked = await readdir(join(dir, 'node_modules', '@dirsync')).catch(() => [] as string[]);
      expect({ name, dev: linked.filter((link) => devPackages.includes(`@dirsync/${link}`)) }).toEqual({ name, dev: [] });
      // Every production dependency is there to be imported.
      for (const dependency of Object.keys(all.get(name)!.manifest.dependencies ?? {})) {
        await expect(stat(join(dir, 'node_modules', dependency))).resolves.toBeDefined();
      }
    }
  } finally {
    await rm(app, { recursive: true, force: true });
  }
});

test("the console stage builds the console's pages from what it copies (replayed offline)", async () => {
  const stages = await dockerfileStages();
  const console = stages.get('console');
  expect(console).toBeDefined();
  const app = await replayStage(console!);
  try {
    expect(await readFile(join(app, 'packages', 'console', 'dist', 'index.html'), 'utf8')).toMatch(/<script type="module"/);
  } finally {
    await rm(app, { recursive: true, force: true });
  }
});
