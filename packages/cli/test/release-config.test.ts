import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cp, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The release set-up the README's "Releases" section describes: one version for every package
// (a fixed changesets group that includes private packages), pending changesets that name only
// packages of the workspace with a bump changesets knows, the licence text in full.

const root = fileURLToPath(new URL('../../../', import.meta.url));

async function workspacePackages(): Promise<string[]> {
  const names: string[] = [];
  for (const directory of await readdir(join(root, 'packages'))) {
    const text = await readFile(join(root, 'packages', directory, 'package.json'), 'utf8').catch(() => undefined);
    if (text !== undefined) names.push((JSON.parse(text) as { name: string }).name);
  }
  return names;
}

test('changesets version every @dirsync package together, private ones included', async () => {
  const config = JSON.parse(await readFile(join(root, '.changeset', 'config.json'), 'utf8')) as {
    fixed: string[][];
    privatePackages: { version: boolean };
    baseBranch: string;
  };
  expect(config.fixed).toEqual([['@dirsync/*']]);
  expect(config.privatePackages.version).toBe(true);
  const packages = await workspacePackages();
  expect(packages.length).toBeGreaterThan(5);
  for (const name of packages) expect(name).toMatch(/^@dirsync\//);
});

test('every pending changeset names workspace packages with a major, minor or patch bump, and says what changed', async () => {
  const packages = new Set(await workspacePackages());
  const files = (await readdir(join(root, '.changeset'))).filter((name) => name.endsWith('.md') && name !== 'README.md');
  for (const file of files) {
    const text = await readFile(join(root, '.changeset', file), 'utf8');
    const match = /^---\n([\s\S]*?)\n---\n([\s\S]*)$/.exec(text);
    expect({ file, frontMatter: match !== null }).toEqual({ file, frontMatter: true });
    const bumps = match![1]!.split('\n').filter((line) => line.trim() !== '');
    expect(bumps.length).toBeGreaterThan(0);
    for (const line of bumps) {
      const bump = /^["']?(@dirsync\/[a-z-]+)["']?: (major|minor|patch)$/.exec(line);
      expect({ file, line, valid: bump !== null && packages.has(bump[1]!) }).toEqual({ file, line, valid: true });
    }
    expect(match![2]!.trim().length).toBeGreaterThan(40);
  }
});

test('LICENSE is the Apache License 2.0 in full and the manifests declare it', async () => {
  const license = await readFile(join(root, 'LICENSE'), 'utf8');
  expect(license).toMatch(/^\s+Apache License\n\s+Version 2\.0, January 2004\n\s+http:\/\/www\.apache\.org\/licenses\/\n/);
  for (const section of ['1. Definitions.', '4. Redistribution.', '9. Accepting Warranty or Additional Liability.', 'END OF TERMS AND CONDITIONS', 'APPENDIX: How to apply the Apache License to your work.']) {
    expect(license).toContain(section);
  }
  expect(license.split('\n')).toHaveLength(203);
  expect((JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { license: string }).license).toBe('Apache-2.0');
});

test('release:version on a copy of the workspace bumps every package and the root to one version and writes the changelog entry', async () => {
  const copy = await mkdtemp(join(tmpdir(), 'dirsync-release-'));
  try {
    for (const file of ['package.json', 'pnpm-workspace.yaml', 'CHANGELOG.md']) await cp(join(root, file), join(copy, file));
    await cp(join(root, '.changeset'), join(copy, '.changeset'), { recursive: true });
    await cp(join(root, 'scripts', 'release-version.ts'), join(copy, 'scripts', 'release-version.ts'), { recursive: true });
    for (const directory of await readdir(join(root, 'packages'))) {
      await cp(join(root, 'packages', directory, 'package.json'), join(copy, 'packages', directory, 'package.json')).catch(() => undefined);
    }
    await symlink(join(root, 'node_modules'), join(copy, 'node_modules'));
    const pending = (await readdir(join(copy, '.changeset'))).filter((name) => name.endsWith('.md') && name !== 'README.md');
    expect(pending.length).toBeGreaterThan(0);
    const before = (JSON.parse(await readFile(join(copy, 'package.json'), 'utf8')) as { version: string }).version;

    const child = spawn(process.execPath, ['scripts/release-version.ts'], { cwd: copy, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: copy } });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
    const [code] = (await once(child, 'close')) as [number | null];
    expect({ code, output }).toEqual({ code: 0, output: expect.stringMatching(/released \d+\.\d+\.\d+/) });

    const version = (JSON.parse(await readFile(join(copy, 'package.json'), 'utf8')) as { version: string }).version;
    expect(version).not.toBe(before);
    for (const directory of await readdir(join(copy, 'packages'))) {
      expect({ directory, version: (JSON.parse(await readFile(join(copy, 'packages', directory, 'package.json'), 'utf8')) as { version: string }).version }).toEqual({ directory, version });
    }
    const changelog = await readFile(join(copy, 'CHANGELOG.md'), 'utf8');
    const sections = changelog.split(/^## /m);
    expect(sections[0]).toMatch(/^# Changelog\n\nThe changelog of dirsync as a whole/);
    expect(sections[1]).toMatch(new RegExp(`^${version.replace(/\./g, '\\.')}\\n\\n- `));
    expect(sections[2]).toMatch(new RegExp(`^${before.replace(/\./g, '\\.')}\\n`));
    expect((await readdir(join(copy, '.changeset'))).filter((name) => name.endsWith('.md') && name !== 'README.md')).toEqual([]);
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
}, 120_000);
