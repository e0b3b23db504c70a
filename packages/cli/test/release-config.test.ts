import { readdir, readFile } from 'node:fs/promises';
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
