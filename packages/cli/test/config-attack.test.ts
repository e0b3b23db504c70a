import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config.ts';

// <NAME>_FILE pointed at what an operator (or a mistaken mount) may name: files whose size the
// kernel reports as 0, symlinks into /proc, files holding credentials of something else.

const base = { DATABASE_URL: 'postgres://u:p@localhost:5432/db', REDIS_URL: 'redis://localhost:6379' };
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dirsync-config-attack-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const problemsOf = (env: Record<string, string>): string => {
  try {
    loadConfig(env);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  return '';
};

test('a file the kernel reports as empty but that reads megabytes (/proc/kallsyms) is refused as oversized, not loaded', () => {
  const message = problemsOf({ ...base, DIRSYNC_SECRET_KEY_FILE: '/proc/kallsyms' });
  expect(message).toMatch(/DIRSYNC_SECRET_KEY_FILE: \/proc\/kallsyms is larger than 65536 bytes/);
});

test('a symlink to /proc/self/environ is bounded and its content is never quoted in the problems', async () => {
  const link = join(dir, 'environ-link');
  await symlink('/proc/self/environ', link);
  const message = problemsOf({ REDIS_URL: base.REDIS_URL, DATABASE_URL_FILE: link });
  expect(message).toContain('DATABASE_URL');
  // The environment holds PATH: none of it may be echoed back.
  expect(message).not.toContain(process.env.PATH ?? '\u0000never');
});

test('a secret file of the right size is read, and a wrong one is named by path without its content', async () => {
  const good = join(dir, 'db-url');
  await writeFile(good, 'postgres://svc:S3cr3t-from-file@db:5432/dirsync\n');
  expect(loadConfig({ REDIS_URL: base.REDIS_URL, DATABASE_URL_FILE: good }).DATABASE_URL).toBe('postgres://svc:S3cr3t-from-file@db:5432/dirsync');
  const bad = join(dir, 'not-a-url');
  await writeFile(bad, 'hunter2-not-a-url');
  const message = problemsOf({ REDIS_URL: base.REDIS_URL, DATABASE_URL_FILE: bad });
  expect(message).toContain('DATABASE_URL');
  expect(message).not.toContain('hunter2');
});

test('a directory or a FIFO is refused at once as not a file (opening a FIFO must not wait for a writer)', async () => {
  const { execFileSync } = await import('node:child_process');
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  expect(problemsOf({ ...base, DIRSYNC_SECRET_KEY_FILE: fifo })).toContain(`DIRSYNC_SECRET_KEY_FILE: ${fifo} is not a file`);
  expect(problemsOf({ ...base, DIRSYNC_SECRET_KEY_FILE: dir })).toMatch(/DIRSYNC_SECRET_KEY_FILE: .* (is not a file|cannot read)/);
});
