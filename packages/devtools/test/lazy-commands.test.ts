import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// Every process runs the same command tree, so whatever a command module imports at its top is in
// the memory of every other command too: a worker would carry the API server, the console, the
// scheduler and the testkit's directories. Building the tree must load none of them; each command
// loads its own when it runs.

const entries = {
  development: fileURLToPath(new URL('../src/main.ts', import.meta.url)),
  production: fileURLToPath(new URL('../../cli/src/main.ts', import.meta.url)),
};

// Records the URL of every module of the workspace (and of fastify, BullMQ, ioredis and jose) the
// process loads, and prints them when it exits.
const recorder = `
import { registerHooks } from 'node:module';
import { writeSync } from 'node:fs';
const urls = [];
registerHooks({ load(url, context, nextLoad) { if (/\\/packages\\/|\\/(fastify|bullmq|ioredis|jose)@/.test(url)) urls.push(url); return nextLoad(url, context); } });
process.on('exit', () => writeSync(1, '\\nloaded: ' + JSON.stringify(urls) + '\\n'));
`;

/** The modules `node <entry> <args>` loaded before it exited. */
function modulesLoaded(entry: string, args: readonly string[]): Promise<string[]> {
  const env: Record<string, string> = {};
  if (process.env['PATH'] !== undefined) env['PATH'] = process.env['PATH'];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--disable-warning=ExperimentalWarning', '--import', `data:text/javascript,${encodeURIComponent(recorder)}`, entry, ...args],
      { env, timeout: 60_000 },
      (error, stdout) => {
        const line = stdout.split('\n').find((l) => l.startsWith('loaded: '));
        if (line === undefined) reject(error ?? new Error(`no module list in the output:\n${stdout}`));
        else resolve(JSON.parse(line.slice('loaded: '.length)) as string[]);
      },
    );
  });
}

// The queue's clients (BullMQ, the Redis client) and jose load with the commands that use them,
// too: about a sixth of every other command's start.
const heavy = [
  /\/packages\/api\//,
  /\/packages\/console\//,
  /\/packages\/scheduler\//,
  /\/packages\/worker\//,
  /\/packages\/testkit\//,
  /\/fastify@/,
  /\/bullmq@/,
  /\/ioredis@/,
  /\/jose@/,
];

describe.each(Object.entries(entries))('the %s command line', (_name, entry) => {
  it.each(['worker --help', '--help', 'completion bash'])('loads none of the commands’ own packages for `dirsync %s`', async (command) => {
    const loaded = await modulesLoaded(entry, command.split(' '));
    // The command tree itself was read: the list is the one that matters.
    expect(loaded.some((url) => url.endsWith('/packages/cli/src/program.ts'))).toBe(true);
    expect(loaded.filter((url) => heavy.some((pattern) => pattern.test(url)))).toEqual([]);
  });
});
