import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { testAllowedNetworksSetting, testRedisUrl, waitFor } from '@dirsync/testkit';

const dirsyncBin = fileURLToPath(new URL('../../../bin/dirsync', import.meta.url));

/** A `dirsync worker` process serving an API harness's database and queue prefix. */
export interface WorkerProcess {
  readonly child: ChildProcess;
  output(): string;
  /** SIGTERM, then waits for the process to end. */
  stop(): Promise<void>;
}

/**
 * Starts `dirsync worker` as deployed (its own process, configured from the environment) on the
 * given database, queue prefix and secret key; resolves once it logs that it started.
 */
export async function startWorkerProcess(options: { databaseUrl: string; prefix: string; secretKey: string; workerId: string }): Promise<WorkerProcess> {
  const child = spawn(dirsyncBin, ['worker'], {
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: process.env['HOME'] ?? '/tmp',
      DATABASE_URL: options.databaseUrl,
      REDIS_URL: testRedisUrl,
      DIRSYNC_QUEUE_PREFIX: options.prefix,
      DIRSYNC_SECRET_KEY: options.secretKey,
      DIRSYNC_METRICS_PORT: '0',
      // The test directories are on loopback: allowed explicitly, as the platform would allow a VPN range.
      DIRSYNC_ALLOWED_NETWORKS: testAllowedNetworksSetting,
      DIRSYNC_WORKER_ID: options.workerId,
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (output += text));
  const closed = once(child, 'close');
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`the worker exited: ${output}`);
      return output.includes('"worker started"') ? true : undefined;
    },
    { timeoutMs: 30_000, what: 'the worker to start' },
  );
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await closed;
    },
  };
}
