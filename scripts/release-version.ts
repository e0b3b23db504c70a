// Turns the pending changesets into the next release: `changeset version` bumps every @dirsync
// package to one version (a fixed group) and writes their CHANGELOG.md files; this script then
// gives the root package.json the same version and adds the release's entry to the root
// CHANGELOG.md, the product's changelog, from the changesets' summaries (read before
// `changeset version` deletes them).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const changesetDir = join(root, '.changeset');

const summaries = readdirSync(changesetDir)
  .filter((name) => name.endsWith('.md') && name !== 'README.md')
  .sort()
  .map((name) => readFileSync(join(changesetDir, name), 'utf8').replace(/^---\n[\s\S]*?\n---\n/, '').trim())
  .filter((summary) => summary !== '');
if (summaries.length === 0) {
  console.error('no pending changesets: nothing to release');
  process.exit(1);
}

execFileSync(join(root, 'node_modules/.bin/changeset'), ['version'], { cwd: root, stdio: 'inherit' });

const version = (JSON.parse(readFileSync(join(root, 'packages/cli/package.json'), 'utf8')) as { version: string }).version;
const rootManifestPath = join(root, 'package.json');
const manifest = JSON.parse(readFileSync(rootManifestPath, 'utf8')) as Record<string, unknown>;
writeFileSync(rootManifestPath, `${JSON.stringify({ ...manifest, version }, null, 2)}\n`);

const changelogPath = join(root, 'CHANGELOG.md');
const changelog = readFileSync(changelogPath, 'utf8');
const entry = `## ${version}\n\n${summaries.map((summary) => `- ${summary.replace(/\n/g, '\n  ')}`).join('\n')}\n\n`;
// Newest first: the entry goes above the previous release, below the file's introduction.
const previous = changelog.search(/^## /m);
writeFileSync(changelogPath, previous < 0 ? `${changelog.trimEnd()}\n\n${entry}` : `${changelog.slice(0, previous)}${entry}${changelog.slice(previous)}`);
console.log(`released ${version}: package.json and CHANGELOG.md updated`);
