import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { providerKinds, validateSettings } from '../src/index.ts';

// The settings examples of the README's "Directory kinds" section, parsed by each kind's schema:
// a renamed or removed setting fails here rather than in a reader's first integration.

const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');

/** The JSON blocks under each `#### \`kind\`` heading of the section (Configure → Directory kinds). */
function examples(): Map<string, string[]> {
  const start = readme.indexOf('\n### Directory kinds\n');
  if (start < 0) throw new Error('the README has no "Directory kinds" section');
  const end = readme.indexOf('\n### ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const found = new Map<string, string[]>();
  for (const part of section.split(/\n#### /).slice(1)) {
    const kind = /^`([a-z_]+)`/.exec(part)?.[1];
    if (kind === undefined) continue;
    found.set(kind, [...part.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1] ?? ''));
  }
  return found;
}

test('the README shows one settings example for every directory kind', () => {
  const found = examples();
  expect([...found.keys()].sort()).toEqual(Object.keys(providerKinds).sort());
  for (const [kind, blocks] of found) expect({ kind, blocks: blocks.length }).toEqual({ kind, blocks: 1 });
});

test.each(Object.keys(providerKinds))('the README example of %s is valid settings', (kind) => {
  const [block] = examples().get(kind) ?? [];
  expect(block).toBeDefined();
  const checked = validateSettings(kind, JSON.parse(block!));
  expect(checked.ok ? [] : checked.problems).toEqual([]);
  expect(checked.ok).toBe(true);
});

test('the Domino settings table names every Domino setting', () => {
  const section = readme.slice(readme.indexOf('\n#### `domino`'), readme.indexOf('\n#### `entra_id`'));
  const settings = Object.keys(providerKinds.domino.settingsSchema.parse(JSON.parse(examples().get('domino')?.[0] ?? '{}')));
  for (const name of settings.filter((n) => !['url', 'bindDn', 'tls', 'pageSize'].includes(n))) expect(section).toContain(`\`${name}`);
});
