import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { generateSecretKey } from '@dirsync/db';
import {
  type SlapdServer,
  createTestDatabase,
  createTestQueuePrefix,
  launcherEnv,
  testAllowedNetworksSetting,
  testRedisUrl,
  waitFor,
  type TestDatabase,
  type TestQueuePrefix,
} from '@dirsync/testkit';
import { dirsyncBin } from '../../src/services.ts';

/** What one `dirsync` invocation did. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Environment of the commands of one test file: its own database, queue prefix and key. */
export interface CliEnvironment {
  readonly env: Readonly<Record<string, string>>;
  readonly database: TestDatabase;
  readonly prefix: TestQueuePrefix;
  /** Runs `dirsync <args>` in this environment (`env` adds or overrides variables). */
  run(args: readonly string[], options?: { input?: string; env?: Record<string, string> }): Promise<CliResult>;
  /** Runs `dirsync <args>` and returns what it printed; throws with its stderr unless it exited 0. */
  ok(args: readonly string[], options?: { input?: string; env?: Record<string, string> }): Promise<string>;
  /** Starts `dirsync worker` in this environment. */
  startWorker(workerId: string): Promise<CliWorker>;
  /** Everything every command and worker of this environment printed so far. */
  transcript(): string;
  cleanup(): Promise<void>;
}

/** A fresh database (migrated), queue prefix and secret key, as `DATABASE_URL` and friends. */
export async function createCliEnvironment(label: string): Promise<CliEnvironment> {
  const database = await createTestDatabase(label);
  const prefix = createTestQueuePrefix(label);
  const env = {
    ...launcherEnv(),
    DATABASE_URL: database.url,
    REDIS_URL: testRedisUrl,
    DIRSYNC_QUEUE_PREFIX: prefix.prefix,
    DIRSYNC_SECRET_KEY: generateSecretKey(),
    // Test files run side by side: no process may claim a fixed port.
    DIRSYNC_METRICS_PORT: '0',
    DIRSYNC_SCHEDULER_API: 'false',
    // Every test server (slapd, Samba, the Entra emulator) listens on loopback.
    DIRSYNC_ALLOWED_NETWORKS: testAllowedNetworksSetting,
    // Refused consents are recorded after a short wait for permissions to propagate.
    DIRSYNC_CONSENT_PROPAGATION_WAIT_SECONDS: '2',
  };
  const lines: string[] = [];
  const workers: CliWorker[] = [];
  const run = async (args: readonly string[], options: { input?: string; env?: Record<string, string> } = {}) => {
    const result = await runCli({ ...env, ...options.env }, args, options);
    lines.push(`$ dirsync ${args.join(' ')}\n${result.stdout}${result.stderr}`);
    return result;
  };
  return {
    env,
    database,
    prefix,
    run,
    async ok(args, options = {}) {
      const result = await run(args, options);
      if (result.code !== 0) throw new Error(`dirsync ${args.join(' ')} exited ${String(result.code)}: ${result.stderr}`);
      return result.stdout;
    },
    async startWorker(workerId) {
      const worker = await startCliWorker(env, workerId);
      workers.push(worker);
      return worker;
    },
    transcript: () => [...lines, ...workers.map((w) => `$ dirsync worker\n${w.output()}`)].join('\n'),
    async cleanup() {
      for (const worker of workers) if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
      await prefix.cleanup();
      await database.drop();
    },
  };
}

/**
 * Runs `bin/dirsync <args>` as a child process with exactly `env`, feeding `input` to its
 * standard input, and collects what it printed.
 */
export async function runCli(
  env: Readonly<Record<string, string>>,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const child = spawn(dirsyncBin, args, { env: { ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  // A command that exits without reading its input must not fail the test with EPIPE.
  child.stdin.on('error', () => {});
  child.stdin.end(options.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  try {
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** A `dirsync worker` child process. */
export interface CliWorker {
  readonly child: ChildProcess;
  /** What it logged so far (pino JSON lines). */
  output(): string;
  /** SIGTERM and wait: the exit code (null when a signal ended it). */
  stop(): Promise<number | null>;
}

/** Starts `dirsync worker` with `env` and waits for its "worker started" log line. */
export async function startCliWorker(env: Readonly<Record<string, string>>, workerId: string): Promise<CliWorker> {
  const child = spawn(dirsyncBin, ['worker'], {
    env: { ...env, DIRSYNC_WORKER_ID: workerId, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (output += text));
  const closed = once(child, 'close');
  const worker: CliWorker = {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await closed;
      return child.exitCode;
    },
  };
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`the worker exited (${child.exitCode}): ${output}`);
        return output.includes('"worker started"');
      },
      { timeoutMs: 30_000, what: 'the worker to start' },
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return worker;
}

/** One run report as `describeRun` prints it: its header fields and its counts. */
export interface PrintedReport {
  readonly fields: Readonly<Record<string, string>>;
  readonly counts: Readonly<Record<string, number>>;
}

/**
 * Reads every run report in a command's output: `key: value` header lines, then the counts table
 * (a `fetched …` header, a dashed line, one row of numbers).
 */
export function parseRunReports(output: string): PrintedReport[] {
  const lines = output.split('\n');
  const reports: PrintedReport[] = [];
  let fields: Record<string, string> = {};
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const field = /^([a-z ]+):\s+(.*)$/.exec(line);
    if (field?.[1] === 'run') fields = {};
    if (field?.[1] !== undefined && field[2] !== undefined) fields[field[1]] = field[2];
    if (line.startsWith('fetched') && /^-+(\s+-+)+$/.test(lines[i + 1] ?? '')) {
      const names = line.trim().split(/\s{2,}/);
      const values = (lines[i + 2] ?? '').trim().split(/\s{2,}/).map(Number);
      reports.push({ fields, counts: Object.fromEntries(names.map((name, k) => [name, values[k] ?? Number.NaN])) });
      fields = {};
      i += 2;
    }
  }
  return reports;
}

/**
 * `dirsync integrations add` arguments for an `ldap` integration of account "acme" reading a TLS
 * test slapd's people and groups (the password goes on standard input).
 */
export function ldapIntegrationArgs(server: SlapdServer, name: string): string[] {
  if (!server.tls) throw new Error('ldapIntegrationArgs needs a slapd started with tls: true');
  return [
    'integrations', 'add', '--account', 'acme', '--kind', 'ldap', '--name', name,
    '--url', server.url, '--ca-file', server.tls.caFile, '--bind-dn', server.readerDn,
    '--users-base', `ou=people,${server.suffix}`, '--groups-base', `ou=groups,${server.suffix}`,
    '--password-stdin',
  ];
}
