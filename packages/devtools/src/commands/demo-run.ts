import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { dropDatabase, ensureDatabase, migrate } from '@dirsync/db';
import { removeQueuePrefix } from '@dirsync/jobs';
import { type ChildService, type Config, type Context, createContext, redisSettingsOf, startService, UserError } from '@dirsync/cli';
import { demoLogDir, demoServiceEnv } from './demo-env.ts';

/** Lines of a failed process's output quoted in the demo's error. */
const tailLines = 15;

/**
 * What one demo run owns alone: a database and a queue prefix made for it (so two demos on one
 * PostgreSQL and Redis never see each other's integrations or jobs), dropped when it ends.
 */
export interface DemoRun {
  /** Short random id, also in the names of the database, the prefix and the log files. */
  readonly id: string;
  readonly databaseUrl: string;
  readonly databaseName: string;
  readonly queuePrefix: string;
  /** `.tmp/demo-<id>-<name>.log` */
  logFile(name: string): string;
  /** Creates and migrates the database. */
  create(): Promise<void>;
  /** Drops the database and deletes the prefix's keys (whatever exists of them); safe to call more than once. */
  drop(): Promise<void>;
}

/**
 * Names a database of its own for a demo run, on the server of `DATABASE_URL`, and a queue
 * prefix of its own on `REDIS_URL`; {@link DemoRun.create} makes the database. Named first, so
 * that a Ctrl-C while the database is being made still finds what to drop.
 */
export function planDemoRun(config: Config): DemoRun {
  const id = randomBytes(5).toString('hex');
  const databaseName = `dirsync_demo_${id}`;
  const url = new URL(config.DATABASE_URL);
  url.pathname = `/${databaseName}`;
  const databaseUrl = url.toString();
  const queuePrefix = `dirsync-demo-${id}`;
  let dropped: Promise<void> | undefined;
  // A database of that name that existed before is not this run's: it is refused and never dropped.
  let foreign = false;
  const run: DemoRun = {
    id,
    databaseUrl,
    databaseName,
    queuePrefix,
    logFile: (name) => `${demoLogDir}/demo-${id}-${name}.log`,
    async create() {
      const { created } = await ensureDatabase(databaseUrl);
      if (!created) {
        foreign = true;
        throw new Error(`database ${databaseName} already exists: it is not this demo run's, so the demo neither uses nor drops it`);
      }
      await migrate(databaseUrl);
    },
    drop() {
      dropped ??= Promise.all([foreign ? undefined : dropDatabase(databaseUrl), removeQueuePrefix(redisSettingsOf(config), queuePrefix)]).then(() => undefined);
      return dropped;
    },
  };
  return run;
}

/** A port nobody listens on at the moment it is chosen (the demo's API takes it right after). */
export async function freeLocalPort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Raised when the demo is interrupted (Ctrl-C, SIGTERM): it stops what it started and exits. */
export class DemoInterrupted extends Error {
  readonly signal: NodeJS.Signals;
  constructor(signal: NodeJS.Signals) {
    super(`${signal}: stopping the demo`);
    this.signal = signal;
  }
}

/**
 * Raised when a process the demo started exits while the demo still needs it: a known failure,
 * printed whole (the process's last output included), without a stack trace.
 */
export class DemoServiceExited extends UserError {}

/**
 * The processes a demo started, watched: the first one to exit while the demo runs, or a Ctrl-C,
 * becomes the demo's failure at its next {@link DemoWatch.check} (every wait of the demo checks),
 * instead of a wait running into its timeout minutes later.
 */
export interface DemoWatch {
  /** Starts `dirsync <args>` as the demo's process `name`, its output in the run's log file. */
  start(name: string, args: readonly string[], env: Record<string, string>): ChildService;
  /** Throws the failure or interruption seen so far, if any. */
  check(): void;
  /** Resolves with the failure or interruption (for waits that are not polls). */
  readonly failed: Promise<Error>;
  /** Stops every process (last started first) and the signal handlers; the exits are expected from here on. */
  stop(): Promise<void>;
}

/** Watches the demo's processes and SIGINT/SIGTERM; a second signal exits at once. */
export function watchDemo(run: DemoRun): DemoWatch {
  const services: ChildService[] = [];
  let failure: Error | undefined;
  let stopping = false;
  let signalled = false;
  let stopped: Promise<void> | undefined;
  const { promise: failed, resolve: fail } = Promise.withResolvers<Error>();
  const record = (error: Error) => {
    if (failure || stopping) return;
    failure = error;
    fail(error);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(130);
    signalled = true;
    record(new DemoInterrupted(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    start(name, args, env) {
      const service = startService(name, args, env, run.logFile(name));
      const output: string[] = [];
      const keep = (chunk: Buffer) => {
        output.push(...chunk.toString('utf8').split('\n').filter((line) => line.trim() !== ''));
        if (output.length > tailLines) output.splice(0, output.length - tailLines);
      };
      service.child.stdout?.on('data', keep);
      service.child.stderr?.on('data', keep);
      // 'close' comes after the process's output has been read to its end.
      service.child.once('close', (code, signal) => {
        const how = code !== null ? `exit code ${code}` : `signal ${signal ?? 'unknown'}`;
        record(
          new DemoServiceExited(
            [`the demo's ${name} exited (${how}) while the demo needed it; its last output (all of it in ${run.logFile(name)}):`, ...output.map((line) => `  ${line}`)].join('\n'),
          ),
        );
      });
      service.child.once('error', (error) => record(new DemoServiceExited(`the demo's ${name} could not start: ${error.message}`)));
      services.push(service);
      return service;
    },
    check() {
      if (failure) throw failure;
    },
    failed,
    stop() {
      stopping = true;
      stopped ??= (async () => {
        for (const service of [...services].reverse()) await service.stop();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      })();
      return stopped;
    },
  };
}

/**
 * The environment that makes the process `name` refuse to start when `--break-service` names it
 * (a test's way to check that the demo stops at once and says which process exited and why).
 */
export function breakingEnv(breakService: string | undefined, name: string): Record<string, string> {
  return breakService === name ? { DIRSYNC_METRICS_PORT: 'none' } : {};
}

/** Starts the demo's scheduler and worker with `env`, the one `breakService` names set to refuse to start. */
export function startSchedulerAndWorker(watch: DemoWatch, run: DemoRun, env: Record<string, string>, breakService: string | undefined): void {
  watch.start('scheduler', ['scheduler'], { ...env, ...breakingEnv(breakService, 'scheduler') });
  watch.start('worker', ['worker'], { ...env, DIRSYNC_WORKER_ID: `demo-${run.id}-worker`, ...breakingEnv(breakService, 'worker') });
}

/** Options of {@link inDemoRun}. */
export interface DemoRunOptions {
  /**
   * The demo runs until it is interrupted (the console demo): Ctrl-C is its ordinary end and
   * leaves the exit code alone, where it otherwise cuts a demo short (exit code 130).
   */
  readonly untilInterrupted?: boolean;
}

/**
 * Runs a demo in a database and queue prefix of its own, made for this run and dropped when it
 * ends, whether it succeeded, failed or was interrupted: then everything it started is stopped.
 * `demo` gets the run, a context on its database and prefix, the watch of its processes, and the
 * context of the command's own environment (for settings the run's context leaves out).
 * Returns normally when interrupted; any other failure is thrown once all is stopped.
 */
export async function inDemoRun(
  say: (line: string) => void,
  demo: (run: DemoRun, ctx: Context, watch: DemoWatch, base: Context) => Promise<void>,
  options: DemoRunOptions = {},
): Promise<void> {
  const base = createContext();
  await mkdir(demoLogDir, { recursive: true });
  let run: DemoRun | undefined;
  let ctx: Context | undefined;
  let watch: DemoWatch | undefined;
  try {
    run = planDemoRun(base.config);
    // Watching (and catching Ctrl-C) from here on: whatever of the run exists gets dropped.
    watch = watchDemo(run);
    await run.create();
    watch.check();
    say(`database ${run.databaseName} and queue prefix ${run.queuePrefix}: made for this run, dropped when it ends`);
    ctx = createContext(demoServiceEnv(base, run));
    await demo(run, ctx, watch, base);
  } catch (error) {
    if (!(error instanceof DemoInterrupted)) throw error;
    say(`\n${error.message}`);
    if (!options.untilInterrupted) process.exitCode = 130;
  } finally {
    await watch?.stop();
    await ctx?.close();
    await run?.drop();
    await base.close();
  }
}
