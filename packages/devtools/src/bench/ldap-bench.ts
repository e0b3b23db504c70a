import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cpus, loadavg, tmpdir } from 'node:os';
import { once } from 'node:events';
import { text } from 'node:stream/consumers';
import { fileURLToPath } from 'node:url';
import { Attribute, Change } from 'ldapts';
import { changeRangeOfRun, createAccount, createIntegration, type Db, readChanges } from '@dirsync/db';
import { startSlapd, userDn, type SlapdServer } from '@dirsync/testkit';
import { ldapIntegrationSettings } from '../local-directory.ts';
import { copyFloor } from './database-floor.ts';
import { type BenchHarness, processCpuSeconds, round2, seconds, startBenchHarness, timed } from './harness.ts';
import { type FloorSearch, groupsSearch, type ReadFigures, usersSearch } from './ldapts-read.ts';
import { table } from '@dirsync/cli';

/** Size of the benchmark directory and where results go. */
export interface LdapBenchOptions {
  users: number;
  groups: number;
  membersPerGroup: number;
  changes: number;
  databaseUrl: string;
  redisUrl: string;
  resultsDir: string;
  log: (line: string) => void;
}

/** A floor's child process may take this long (as long as a sync may); a stalled one is killed. */
const floorDeadlineMs = 30 * 60_000;

/** Runs a floor's child process to its end: its standard output, or an error naming how it ended. */
async function runChild(command: string, args: readonly string[], input?: string): Promise<string> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'], timeout: floorDeadlineMs, killSignal: 'SIGKILL' });
  // A child that ends before reading its input must not crash this process with EPIPE.
  child.stdin.on('error', () => undefined);
  child.stdin.end(input ?? '');
  const output = text(child.stdout);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) throw new Error(`${command} ${code === null ? `was killed (${String(signal)})` : `exited ${code}`}`);
  return output;
}

/** What the `ldapsearch` floor took, and the CPU it and slapd used. */
interface LdapsearchFloor {
  readonly ms: number;
  /** The users' search alone, which the sync makes before the groups'. */
  readonly usersMs: number;
  /** CPU seconds of the ldapsearch processes and of slapd. */
  readonly clientCpu: number;
  readonly directoryCpu: number;
}

/**
 * (a) `ldapsearch` paged dump of every user, then every group, with the attributes the sync asks
 * for, to /dev/null: the directory's own floor. Each search runs under a shell whose `times`
 * reports the CPU of its child, which Node does not tell.
 */
async function ldapsearchDump(server: SlapdServer): Promise<LdapsearchFloor> {
  // The password goes in a file only this user can read: a command line is visible to every user
  // of the machine, and ldapsearch cannot read it from a pipe.
  const dir = await mkdtemp(join(tmpdir(), 'dirsync-bench-ldapsearch-'));
  try {
    const passwordFile = join(dir, 'reader.pw');
    await writeFile(passwordFile, server.readerPassword, { mode: 0o600 });
    const search = ({ filter, attributes }: FloorSearch) =>
      timed(async () => {
        // `times` in the C locale (a decimal point whatever the machine's): the shell's user and
        // system time, then its children's, as "0m0.512s 0m0.104s".
        const output = await runChild('bash', [
          '-c', 'ldapsearch "$@" > /dev/null || exit $?; LC_ALL=C; times', 'ldapsearch',
          '-x', '-LLL', '-o', 'nettimeout=60', '-H', server.url, '-D', server.readerDn, '-y', passwordFile, '-b', server.suffix,
          '-E', 'pr=1000/noprompt', filter, ...attributes,
        ]);
        const children = [...(output.trim().split('\n').at(-1) ?? '').matchAll(/(\d+)m(\d+\.\d+)s/g)];
        if (children.length !== 2) throw new Error(`cannot read the CPU time of ldapsearch from ${JSON.stringify(output.slice(-200))}`);
        return children.reduce((sum, [, minutes, secs]) => sum + Number(minutes) * 60 + Number(secs), 0);
      });
    const directoryBefore = await processCpuSeconds(server.pid);
    const users = await search(usersSearch);
    const groups = await search(groupsSearch);
    const directoryCpu = round2((await processCpuSeconds(server.pid)) - directoryBefore);
    return { ms: users.ms + groups.ms, usersMs: users.ms, clientCpu: round2(users.value + groups.value), directoryCpu };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * (a') The same entries read with ldapts alone and discarded: the client library's floor. Read by
 * a process of its own started with this one's V8 flags (bin/dirsync's, the worker's): it holds
 * nothing else, as the worker holds little besides its read.
 */
async function ldaptsFloor(server: SlapdServer): Promise<ReadFigures> {
  const script = fileURLToPath(new URL('./ldapts-read.ts', import.meta.url));
  // The password goes by stdin: a command line is visible to every user of the machine.
  const output = await runChild(process.execPath, [...process.execArgv, script, server.url, server.readerDn, server.suffix], server.readerPassword);
  if (output === '') throw new Error("the ldapts floor's process printed nothing");
  return JSON.parse(output) as ReadFigures;
}

/** Changes `count` users' titles through LDAP (what the delta must pick up). */
async function changeUsers(server: SlapdServer, count: number, users: number): Promise<void> {
  const client = await server.client();
  try {
    const step = Math.max(1, Math.floor(users / count));
    for (let i = 0; i < count; i++) {
      await client.modify(
        userDn(i * step, server.suffix),
        new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: [`Benchmark ${Date.now()}`] }) }),
      );
    }
  } finally {
    await client.unbind();
  }
}


/**
 * Reads an account's whole change feed through the same function the API serves it with, in
 * pages of the largest size: what a consumer catching up from the start costs.
 */
async function readWholeFeed(db: Db, accountId: string): Promise<{ ms: number; entries: number }> {
  const started = performance.now();
  let entries = 0;
  let after = '0';
  for (;;) {
    const page = await readChanges(db, accountId, after, 1000);
    if ('refused' in page) throw new Error(`the change feed refused cursor ${after}: ${page.refused}`);
    entries += page.items.length;
    after = page.cursor;
    if (!page.hasMore) break;
  }
  return { ms: performance.now() - started, entries };
}

/** Runs the LDAP benchmark, prints the table and writes the JSON results. */
export async function runLdapBench(options: LdapBenchOptions): Promise<Record<string, unknown>> {
  const { log } = options;
  const objects = options.users + options.groups;
  log(`generating and loading ${options.users.toLocaleString('en-US')} users and ${options.groups.toLocaleString('en-US')} groups of ${options.membersPerGroup} members…`);
  const load = await timed(() =>
    startSlapd({
      // Entries stamped a day back, as in a directory that was not bulk-loaded a moment ago: the
      // delta must then read only what changed.
      data: { users: options.users, groups: options.groups, membersPerGroup: options.membersPerGroup, timestamp: new Date(Date.now() - 86_400_000) },
    }),
  );
  const server = load.value;
  let ldapsearch: LdapsearchFloor;
  let client: ReadFigures;
  let bench: BenchHarness;
  try {
    // Read before the worker starts: its start-up would take a core from the reads.
    log('measuring the directory floors: ldapsearch, ldapts…');
    ldapsearch = await ldapsearchDump(server);
    client = await ldaptsFloor(server);
    if (client.entries !== objects) throw new Error(`ldapts read ${client.entries} entries, expected ${objects}`);
    bench = await startBenchHarness({ label: 'bench', databaseUrl: options.databaseUrl, redisUrl: options.redisUrl, resultsDir: options.resultsDir });
  } catch (error) {
    await server.stop();
    throw error;
  }
  const { db, ring, worker } = bench;
  try {
    const account = await createAccount(db, { name: 'bench' });
    const integration = await createIntegration(
      db,
      {
        accountId: account.id,
        kind: 'ldap',
        name: 'bench directory',
        settings: ldapIntegrationSettings(server),
        deleteThresholdCount: objects,
        deleteThresholdPercent: 100,
      },
      { ring, plaintext: server.readerPassword },
    );

    log('full sync…');
    const fullCpu = await bench.cpuDuring(server.pid, () => bench.runSync(integration.id, 'full'));
    const full = fullCpu.value;
    // The peak so far (the kernel's high-water mark only grows): which sync sets the peak.
    const peakAfterFullMB = (await worker.peakRssMB()) ?? Number.NaN;
    if (full.created !== objects) throw new Error(`full sync created ${full.created} objects, expected ${objects}`);
    log('unchanged full sync…');
    const unchangedCpu = await bench.cpuDuring(server.pid, () => bench.runSync(integration.id, 'full'));
    const unchanged = unchangedCpu.value;
    if (unchanged.unchanged !== objects) throw new Error(`unchanged full sync found ${unchanged.unchanged} unchanged, expected ${objects}`);
    log(`changing ${options.changes} users, delta sync…`);
    await changeUsers(server, options.changes, options.users);
    const delta = await bench.runSync(integration.id, 'delta');
    if (delta.updated !== options.changes) throw new Error(`delta updated ${delta.updated} objects, expected ${options.changes}`);
    const peakRssMB = (await worker.peakRssMB()) ?? Number.NaN;
    const allocator = await bench.workerAllocator();
    log('measuring the database floor: COPY of the objects, edges and change feed entries the sync wrote…');
    const copy = await copyFloor(options.databaseUrl, integration.id, full.id);
    const edges = options.groups * Math.min(options.membersPerGroup, options.users);
    if (copy.objects !== objects || copy.edges !== edges || copy.changes === 0) {
      throw new Error(`the database floor wrote ${copy.objects} objects, ${copy.edges} edges and ${copy.changes} feed rows, expected ${objects}, ${edges} and some`);
    }
    log('reading the change feed…');
    const fullEntries = (await changeRangeOfRun(db, full.id))?.count ?? 0;
    const deltaEntries = (await changeRangeOfRun(db, delta.id))?.count ?? 0;
    const feed = await readWholeFeed(db, account.id);

    const fullSeconds = seconds(full.durationMs ?? 0);
    const unchangedSeconds = seconds(unchanged.durationMs ?? 0);
    const deltaSeconds = seconds(delta.durationMs ?? 0);
    const slowerFloor = Math.max(client.ms, copy.ms) / 1000;
    const cpuBound = round2((fullCpu.worker + fullCpu.postgres + fullCpu.directory) / cpus().length);
    // Two more floors for this machine: the CPU the floors took on its cores, and the order of the
    // sync's work (it reads the users before the groups, and a group's members resolve only to
    // users already read, so its edges wait for the users' read, here by the faster reader).
    const cpuFloor = round2((ldapsearch.clientCpu + ldapsearch.directoryCpu + copy.postgresCpu) / cpus().length);
    const orderFloor = seconds(ldapsearch.usersMs + copy.edgesAloneMs);
    const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
    const objectsPerSecond = Math.round(objects / fullSeconds);
    const goals = {
      objectsPerSecond: { goal: '>= 20000', met: objectsPerSecond >= 20_000 },
      ratioToSlowerFloor: { goal: '<= 1.5', met: fullSeconds <= 1.5 * slowerFloor },
      unchangedToFirst: { goal: '<= 0.5', met: unchangedSeconds <= 0.5 * fullSeconds },
      deltaSyncSeconds: { goal: '< 1', met: deltaSeconds < 1 },
      peakRssMB: { goal: '<= 256', met: peakRssMB <= 256 },
    };
    const results = {
      date: new Date().toISOString(),
      objects,
      users: options.users,
      groups: options.groups,
      membersPerGroup: options.membersPerGroup,
      memberships: edges,
      machine: { cpus: cpus().length, loadAverage: loadavg().map((n) => Math.round(n * 100) / 100), node: process.version },
      load: { seconds: seconds(load.ms) },
      floors: {
        ldapsearchSeconds: seconds(ldapsearch.ms),
        ldaptsSeconds: seconds(client.ms),
        // Objects, edges and change feed rows as the first full sync wrote them.
        copySeconds: seconds(copy.ms),
        copyRows: copy.objects + copy.edges + copy.changes,
        copyChangeRows: copy.changes,
        cpu: {
          seconds: cpuFloor,
          objectsPerSecond: Math.round(objects / cpuFloor),
          ldapsearchCpuSeconds: ldapsearch.clientCpu,
          slapdCpuSeconds: ldapsearch.directoryCpu,
          postgresCpuSeconds: copy.postgresCpu,
        },
        order: {
          seconds: orderFloor,
          usersReadSeconds: seconds(ldapsearch.usersMs),
          edgesAloneSeconds: seconds(copy.edgesAloneMs),
          ratioToSlowerFloor: ratio(orderFloor, slowerFloor),
        },
      },
      fullSync: {
        seconds: fullSeconds,
        objectsPerSecond,
        ratioToSlowerFloor: ratio(fullSeconds, slowerFloor),
        ratioToLdapsearch: ratio(fullSeconds, ldapsearch.ms / 1000),
      },
      unchangedFullSync: { seconds: unchangedSeconds, objectsPerSecond: Math.round(objects / Math.max(unchangedSeconds, 0.001)), ratioToFirst: ratio(unchangedSeconds, fullSeconds) },
      deltaSync: { seconds: deltaSeconds, changes: options.changes },
      // The worker's CPU time during each full sync (user and system).
      worker: { peakRssMB: Math.round(peakRssMB), peakRssAfterFirstFullSyncMB: Math.round(peakAfterFullMB), allocator, cpuSeconds: { fullSync: fullCpu.worker, unchangedFullSync: unchangedCpu.worker } },
      // What the two other processes on the same cores used meanwhile.
      postgres: { cpuSeconds: { fullSync: fullCpu.postgres, unchangedFullSync: unchangedCpu.postgres, copyFloor: copy.postgresCpu } },
      // The three processes' CPU time of the first full sync spread over every core: no schedule
      // of that work could end sooner.
      cpuBound: { seconds: cpuBound, fullSyncRatio: ratio(fullSeconds, cpuBound) },
      slapd: { cpuSeconds: { fullSync: fullCpu.directory, unchangedFullSync: unchangedCpu.directory } },
      // The full sync logs one entry per object and one per group for its members.
      changeFeed: {
        fullSyncEntries: fullEntries,
        deltaSyncEntries: deltaEntries,
        entries: feed.entries,
        readSeconds: seconds(feed.ms),
        readEntriesPerSecond: Math.round(feed.entries / Math.max(feed.ms / 1000, 0.001)),
      },
      goals,
    };
    const verdict = (goal: { goal: string; met: boolean }) => `${goal.goal}: ${goal.met ? 'met' : 'NOT met'}`;
    const rows: [string, string, string, string][] = [
      ['ldapsearch dump (a)', `${results.floors.ldapsearchSeconds}s`, `${Math.round(objects / results.floors.ldapsearchSeconds)}/s`, ''],
      ["ldapts read (a')", `${results.floors.ldaptsSeconds}s`, `${Math.round(objects / results.floors.ldaptsSeconds)}/s`, ''],
      [`COPY of (b)'s ${objects} objects + ${edges} edges + ${copy.changes} feed rows (a'')`, `${results.floors.copySeconds}s`, `${Math.round(objects / results.floors.copySeconds)} objects/s`, ''],
      [`CPU floor (g): the CPU of (a) (ldapsearch ${ldapsearch.clientCpu}s, slapd ${ldapsearch.directoryCpu}s) and (a'') / ${cpus().length} CPUs`, `${cpuFloor}s`, `${results.floors.cpu.objectsPerSecond} objects/s`, ''],
      [`order floor (h): the users read by ldapsearch (${results.floors.order.usersReadSeconds}s), then the edges alone by COPY (${results.floors.order.edgesAloneSeconds}s)`, `${orderFloor}s`, '', ''],
      ["(h) / slower of (a') and (a'')", String(results.floors.order.ratioToSlowerFloor), '', ''],
      ['first full sync (b)', `${fullSeconds}s`, `${objectsPerSecond}/s`, verdict(goals.objectsPerSecond)],
      ["(b) / slower of (a') and (a'')", String(results.fullSync.ratioToSlowerFloor), '', verdict(goals.ratioToSlowerFloor)],
      ['(b) / ldapsearch', String(results.fullSync.ratioToLdapsearch), '', ''],
      ['unchanged full sync (c), (c) / (b)', `${unchangedSeconds}s`, String(results.unchangedFullSync.ratioToFirst), verdict(goals.unchangedToFirst)],
      [`delta, ${options.changes} changes (d)`, `${deltaSeconds}s`, '', verdict(goals.deltaSyncSeconds)],
      ['worker CPU during the first and the unchanged full sync', `${results.worker.cpuSeconds.fullSync}s, ${results.worker.cpuSeconds.unchangedFullSync}s`, '', ''],
      ['PostgreSQL CPU during the same; during (a\'\')', `${results.postgres.cpuSeconds.fullSync}s, ${results.postgres.cpuSeconds.unchangedFullSync}s; ${copy.postgresCpu}s`, '', ''],
      ['slapd CPU during the same', `${results.slapd.cpuSeconds.fullSync}s, ${results.slapd.cpuSeconds.unchangedFullSync}s`, '', ''],
      [`(b)'s CPU bound: the three's CPU / ${cpus().length} CPUs; (b) / it`, `${cpuBound}s`, String(results.cpuBound.fullSyncRatio), ''],
      [`worker peak RSS (e), allocator ${allocator}; by the end of the first full sync`, `${results.worker.peakRssMB} MB; ${results.worker.peakRssAfterFirstFullSyncMB} MB`, '', verdict(goals.peakRssMB)],
      [`change feed: ${fullEntries} entries of (b), ${deltaEntries} of (d)`, '', '', ''],
      [`change feed read whole, ${feed.entries} entries (f)`, `${results.changeFeed.readSeconds}s`, `${results.changeFeed.readEntriesPerSecond}/s`, ''],
    ];
    log(`\n${table(['measure', 'time', 'rate', 'goal'], rows)}\n`);
    log(`load average during the run: ${results.machine.loadAverage.join(', ')} on ${results.machine.cpus} CPUs`);
    log(`results written to ${await bench.writeResults('', results)}`);
    return results;
  } finally {
    try {
      await bench.close();
    } finally {
      await server.stop();
    }
  }
}
