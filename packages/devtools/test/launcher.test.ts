import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { dirsyncBin } from '@dirsync/cli';
import { type LaunchReport, launchReport, launchReporter } from './support/launch-report.ts';

// `bin/dirsync` starts Node as the image's entrypoint does: from Node's compile cache, and, for
// the long-running processes, with the image's C allocator and its settings.

const execFileAsync = promisify(execFile);
const dockerfile = fileURLToPath(new URL('../../../docker/Dockerfile', import.meta.url));

let temp: string;

beforeEach(async () => {
  temp = await mkdtemp(join(tmpdir(), 'dirsync-launcher-'));
});

afterEach(async () => {
  await rm(temp, { recursive: true, force: true });
});

/** Runs `bin/dirsync <args>` with only what a shell would give it, its temporary folder `temp`. */
async function launch(args: readonly string[]): Promise<LaunchReport> {
  const env: Record<string, string> = { TMPDIR: temp, NODE_OPTIONS: launchReporter };
  for (const name of ['PATH', 'HOME', 'LANG']) if (process.env[name] !== undefined) env[name] = process.env[name];
  const { stderr } = await execFileAsync(dirsyncBin, args, { env, timeout: 60_000 });
  return launchReport(stderr);
}

test('a start finds what the start before it compiled: the second strips no TypeScript', async () => {
  expect((await launch(['--version'])).stripper).toBe(true);
  expect((await stat(join(temp, 'node-compile-cache'))).isDirectory()).toBe(true);
  expect((await launch(['--version'])).stripper).toBe(false);
});

test("the worker, the scheduler and the API run with the image's allocator and settings, other commands with the system's", async () => {
  const imageSettings = /^ENV\b.*\bMALLOC_CONF=(\S+)/m.exec(await readFile(dockerfile, 'utf8'))?.[1];
  expect(imageSettings).toBeDefined();
  for (const command of ['worker', 'scheduler', 'api']) {
    expect({ command, ...(await launch([command, '--help'])) }).toMatchObject({ command, jemalloc: true, mallocConf: imageSettings });
  }
  expect(await launch(['--version'])).toMatchObject({ jemalloc: false, mallocConf: null });
});
