import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// Packs @dirsync/client, and @dirsync/contracts it imports at run time, as they are published:
// JavaScript and declarations built by tsc into dist/, the package.json `publishConfig` fields
// (exports to dist/) in place of the workspace's (exports to the .ts sources), `workspace:`
// versions replaced by the packages' versions. `npm pack` makes the tarballs.
//
//   node packages/client/scripts/pack.ts <destination directory>

const run = promisify(execFile);
const packagesDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

/** Workspace packages the client's tarball needs, dependencies first. */
export const packedPackages = ['contracts', 'client'] as const;

interface PackageJson {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  publishConfig?: Record<string, unknown>;
  [field: string]: unknown;
}

async function manifest(dir: string): Promise<PackageJson> {
  return JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as PackageJson;
}

/** The package.json as published: publishConfig applied, workspace versions pinned, no dev fields. */
function published(pkg: PackageJson, versions: Record<string, string>): PackageJson {
  const { publishConfig = {}, scripts: _scripts, devDependencies: _dev, ...rest } = pkg;
  const dependencies = Object.fromEntries(
    Object.entries(pkg.dependencies ?? {}).map(([name, range]) => [name, range.startsWith('workspace:') ? (versions[name] ?? range) : range]),
  );
  const { access: _access, registry: _registry, tag: _tag, ...fields } = publishConfig;
  return { ...rest, ...fields, dependencies };
}

/** Builds and packs the packages into `destination`; returns the tarball paths by package name. */
export async function packClientTarballs(destination: string): Promise<Record<string, string>> {
  await mkdir(destination, { recursive: true });
  const manifests = await Promise.all(packedPackages.map((name) => manifest(join(packagesDir, name))));
  const versions = Object.fromEntries(manifests.map((pkg) => [pkg.name, pkg.version]));
  const tarballs: Record<string, string> = {};
  const staging = await mkdtemp(join(tmpdir(), 'dirsync-pack-'));
  try {
    for (const [index, name] of packedPackages.entries()) {
      const source = join(packagesDir, name);
      const pkg = manifests[index] as PackageJson;
      const dir = join(staging, name);
      await run(process.execPath, [tsc, '-p', join(source, 'tsconfig.build.json'), '--outDir', join(dir, 'dist'), '--sourceMap', 'false'], { cwd: source });
      await cp(join(source, 'README.md'), join(dir, 'README.md'));
      await writeFile(join(dir, 'package.json'), `${JSON.stringify(published(pkg, versions), null, 2)}\n`);
      const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', destination], { cwd: dir });
      const [packed] = JSON.parse(stdout) as Array<{ filename: string }>;
      if (packed === undefined) throw new Error(`npm pack made no tarball for ${pkg.name}`);
      tarballs[pkg.name] = join(destination, packed.filename);
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return tarballs;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const destination = process.argv[2];
  if (destination === undefined) {
    process.stderr.write('usage: node packages/client/scripts/pack.ts <destination directory>\n');
    process.exit(2);
  }
  for (const [name, file] of Object.entries(await packClientTarballs(resolve(destination)))) process.stdout.write(`${name}: ${file}\n`);
}
