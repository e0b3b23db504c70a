import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// The lint rule `sql-only-in-db` (.dependency-cruiser.cjs) is what keeps every SQL statement in
// this package; this runs dependency-cruiser itself on modules written for the occasion.

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const depcruise = join(root, 'node_modules/.bin/depcruise');

interface CruiseViolation {
  rule: { name: string };
  from: string;
  to: string;
}

async function violationsOf(files: readonly string[]): Promise<CruiseViolation[]> {
  const args = [...files, '--config', '.dependency-cruiser.cjs', '--output-type', 'json'];
  // depcruise exits non-zero when it finds violations; its JSON report is on stdout either way.
  const stdout = await promisify(execFile)(depcruise, args, { cwd: root, maxBuffer: 64 * 1024 * 1024 }).then(
    (result) => result.stdout,
    (error: { stdout?: string }) => {
      if (typeof error.stdout !== 'string' || error.stdout === '') throw error;
      return error.stdout;
    },
  );
  const report = JSON.parse(stdout) as { summary: { violations: CruiseViolation[] } };
  return report.summary.violations.filter((v) => v.rule.name === 'sql-only-in-db');
}

const rawSql = `import postgres from 'postgres';\nimport { sql } from 'drizzle-orm';\nexport const clients = [postgres, sql];\n`;

// Hidden folders outside src/: no compiler or test run of another package picks them up.
const scratch = (pkg: string) => join(root, 'packages', pkg, `.sql-boundary-${randomUUID()}`);
const made: string[] = [];

async function moduleIn(pkg: string, name: string, text: string): Promise<string> {
  const dir = scratch(pkg);
  made.push(dir);
  await mkdir(dir, { recursive: true });
  const file = join(dir, name);
  await writeFile(file, text);
  return relative(root, file);
}

afterAll(async () => {
  await Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true })));
});

test('lint refuses a PostgreSQL client or drizzle-orm imported outside packages/db', async () => {
  const scheduler = await moduleIn('scheduler', 'raw.ts', rawSql);
  const worker = await moduleIn('worker', 'raw.ts', rawSql);
  const violations = await violationsOf([scheduler, worker]);
  const pairs = violations.map((v) => `${v.from} -> ${/drizzle-orm/.test(v.to) ? 'drizzle-orm' : 'postgres'}`).sort();
  expect(pairs).toEqual([`${scheduler} -> drizzle-orm`, `${scheduler} -> postgres`, `${worker} -> drizzle-orm`, `${worker} -> postgres`].sort());
});

test('lint lets packages/db and tests use them', async () => {
  const db = await moduleIn('db', 'raw.ts', rawSql);
  const test = await moduleIn('scheduler', 'raw.test.ts', rawSql);
  expect(await violationsOf([db, test])).toEqual([]);
});

test('the sources as they stand import no SQL client outside packages/db', async () => {
  const sources = ['scheduler', 'worker', 'jobs', 'providers', 'cli', 'client'].map((pkg) => `packages/${pkg}/src`);
  expect(await violationsOf(sources)).toEqual([]);
});
