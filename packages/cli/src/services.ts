import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { promisify } from 'node:util';

/** The repository's `bin/dirsync` launcher. */
export const dirsyncBin = fileURLToPath(new URL('../../../bin/dirsync', import.meta.url));

/** The script the image's build runs to load every command's modules into Node's compile cache. */
const warmScript = fileURLToPath(new URL('./warm-compile-cache.ts', import.meta.url));

/**
 * Runs the compile cache's warm-up (warm-compile-cache.ts) in a child of this process's Node, with
 * its flags (V8's are part of the cache's key) and environment, so that a service started next finds
 * every module of ours compiled, as a deployed one finds them in the cache its image's build warmed.
 * Fails where this process has no compile cache (`NODE_COMPILE_CACHE`, which `bin/dirsync` sets).
 */
export async function warmCompileCache(): Promise<void> {
  await promisify(execFile)(process.execPath, [...process.execArgv, warmScript], { timeout: 120_000 });
}

/** A `dirsync` child process (worker or scheduler) started by the demo or the benchmark. */
export interface ChildService {
  readonly name: string;
  readonly child: ChildProcess;
  /** Peak resident memory in MB so far (Linux VmHWM), or undefined once it exited. */
  peakRssMB(): Promise<number | undefined>;
  /** SIGTERM and wait for a clean exit (SIGKILL after the deadline). */
  stop(timeoutMs?: number): Promise<void>;
}

/**
 * The environment of a child process: the parent's, with `env` on top. A setting `env` gives
 * replaces the parent's `<NAME>_FILE` too, which the child would otherwise refuse as set twice.
 */
export function childEnvironment(parent: Record<string, string | undefined>, env: Record<string, string>): Record<string, string | undefined> {
  const inherited = { ...parent };
  for (const name of Object.keys(env)) delete inherited[`${name}_FILE`];
  return { ...inherited, ...env };
}

/**
 * Starts `dirsync <args>` as a separate process with the given environment, its output going to
 * `logFile`, so the demo and the benchmark exercise the same processes a deployment runs.
 */
export function startService(name: string, args: readonly string[], env: Record<string, string>, logFile: string): ChildService {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(dirsyncBin, args, { env: childEnvironment(process.env, env), stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = once(child, 'exit');
  return {
    name,
    child,
    async peakRssMB() {
      if (child.exitCode !== null || child.pid === undefined) return undefined;
      // bin/dirsync execs node, so the pid is the node process itself.
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
      const kb = /VmHWM:\s+(\d+)\s+kB/.exec(status)?.[1];
      return kb ? Number(kb) / 1024 : undefined;
    },
    async stop(timeoutMs = 30_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      log.end();
    },
  };
}
