import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The directory of Node's compile cache for every process a test run starts (`NODE_COMPILE_CACHE`):
 * the global setup puts it in the environment the test workers and their children inherit, and
 * {@link launcherEnv} names it for children whose environment is built from scratch. Entries are
 * keyed by file content, so an edited source is compiled again.
 */
export const testCompileCache = join(tmpdir(), 'dirsync-test-compile-cache');

/**
 * The environment a test gives `bin/dirsync` before its own settings: only what the launcher needs
 * from the test runner's (PATH, HOME, LANG, TMPDIR), nothing of jest's (NODE_OPTIONS) and no
 * DIRSYNC_* setting the machine may carry, plus the compile cache, which saves about a third of
 * every command's start.
 */
export function launcherEnv(): Record<string, string> {
  const keep: Record<string, string> = { NODE_COMPILE_CACHE: testCompileCache };
  for (const name of ['PATH', 'HOME', 'LANG', 'TMPDIR']) {
    const value = process.env[name];
    if (value !== undefined) keep[name] = value;
  }
  return keep;
}
