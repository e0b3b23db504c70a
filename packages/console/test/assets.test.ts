import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { consoleAssetsDir } from '../index.ts';

test('the install step built the console: an index page whose scripts are bundled, none from elsewhere', async () => {
  const html = await readFile(join(consoleAssetsDir, 'index.html'), 'utf8');
  const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? '');
  expect(sources.length).toBeGreaterThan(0);
  for (const source of sources) expect(source).toMatch(/^\/console\//);
  const assets = await readdir(join(consoleAssetsDir, 'assets'));
  expect(assets.some((name) => name.endsWith('.js'))).toBe(true);
});
