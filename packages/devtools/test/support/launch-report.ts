/**
 * How a Node process was started, as it reports it when it exits: whether Node loaded its
 * TypeScript stripper (a start that found every module in the compile cache does not), whether
 * jemalloc is mapped into it, and the allocator settings it was given.
 */
export interface LaunchReport {
  readonly stripper: boolean;
  readonly jemalloc: boolean;
  readonly mallocConf: string | null;
}

/** A `NODE_OPTIONS` value that makes a Node process print its {@link LaunchReport} to stderr as it exits. */
export const launchReporter = `--import=data:text/javascript,${encodeURIComponent(
  [
    "import { readFileSync, writeSync } from 'node:fs';",
    "process.on('exit', () => writeSync(2, '\\nlaunched: ' + JSON.stringify({",
    "  stripper: process.moduleLoadList.some((name) => name.includes('amaro')),",
    "  jemalloc: readFileSync('/proc/self/maps', 'utf8').includes('/libjemalloc.so.2'),",
    '  mallocConf: process.env.MALLOC_CONF ?? null,',
    "}) + '\\n'));",
  ].join('\n'),
)}`;

/** The report in a process's output; fails when there is none. */
export function launchReport(output: string): LaunchReport {
  const line = output.split('\n').find((l) => l.startsWith('launched: '));
  if (line === undefined) throw new Error(`no launch report in the output:\n${output}`);
  return JSON.parse(line.slice('launched: '.length)) as LaunchReport;
}
