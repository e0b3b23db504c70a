import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { waitFor } from '@dirsync/testkit';
import { dirsyncBin } from '../src/services.ts';
import { type CliEnvironment, createCliEnvironment } from './support/run-cli.ts';

// The installation-wide series (read from PostgreSQL and Redis, the same in every process) are
// exported by the scheduler, not by every `dirsync api` replica, unless a setting says otherwise.

const timeoutMs = 120_000;
let cli: CliEnvironment;

beforeAll(async () => {
  cli = await createCliEnvironment('instmetrics');
}, timeoutMs);

afterAll(async () => {
  await cli?.cleanup();
}, timeoutMs);

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Starts `dirsync api`, scrapes its metrics port once, stops it. */
async function scrapeApi(extra: Record<string, string>): Promise<string> {
  const metricsPort = await freePort();
  const child = spawn(dirsyncBin, ['api'], {
    env: { ...cli.env, ...extra, PORT: String(await freePort()), DIRSYNC_METRICS_PORT: String(metricsPort), DIRSYNC_API_HOST: '127.0.0.1', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
  const closed = once(child, 'close');
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`dirsync api exited: ${output}`);
        return output.includes('"api started"');
      },
      { timeoutMs: 60_000, what: 'dirsync api to start' },
    );
    return await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  } finally {
    child.kill('SIGTERM');
    await closed;
  }
}

test('an API replica exports its process metrics only by default, the installation-wide series when told to', async () => {
  const byDefault = await scrapeApi({});
  expect(byDefault).toMatch(/^process_cpu_seconds_total /m);
  expect(byDefault).not.toMatch(/^dirsync_/m);

  const told = await scrapeApi({ DIRSYNC_INSTALLATION_METRICS: 'true' });
  expect(told).toMatch(/^dirsync_queue_jobs\{/m);
  expect(told).toMatch(/^dirsync_actions_needed\{kind="grant_consent"\} 0$/m);

  const wrong = await cli.run(['api'], { env: { DIRSYNC_INSTALLATION_METRICS: 'sometimes' } });
  expect(wrong.code).not.toBe(0);
  expect(wrong.stderr).toContain('DIRSYNC_INSTALLATION_METRICS must be auto, true or false');
}, timeoutMs);
