import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cpus, loadavg } from 'node:os';
import { once } from 'node:events';
import { Attribute, Change, Client } from 'ldapts';
import postgres from 'postgres';
import { changeRangeOfRun, createAccount, createIntegration, type Db, readChanges } from '@dirsync/db';
import { startSlapd, userDn, type SlapdServer } from '@dirsync/testkit';
import { ldapGroupAttributes, ldapIntegrationSettings, ldapUserAttributes } from '../local-directory.ts';
import { postgresCpuDuring, round2, seconds, startBenchHarness } from './harness.ts';
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

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

/** (a) `ldapsearch` paged dump of every user and group to /dev/null: the directory's own floor. */
async function ldapsearchDump(server: SlapdServer, dir: string): Promise<number> {
  const passwordFile = join(dir, 'reader.pw');
  await writeFile(passwordFile, server.readerPassword, { mode: 0o600 });
  const { ms } = await timed(async () => {
    const child = spawn(
      'ldapsearch',
      ['-x', '-LLL', '-H', server.url, '-D', server.readerDn, '-y', passwordFile, '-b', server.suffix, '-E', 'pr=1000/noprompt',
        '(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))'],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const [code] = await once(child, 'exit');
    if (code !== 0) throw new Error(`ldapsearch exited ${String(code)}`);
  });
  return ms;
}

/** (a') The same entries read with ldapts alone and discarded: the client library's floor. */
async function ldaptsRead(server: SlapdServer): Promise<{ ms: number; entries: number }> {
  const client = new Client({ url: server.url });
  await client.bind(server.readerDn, server.readerPassword);
  let entries = 0;
  try {
    const { ms } = await timed(async () => {
      for (const [filter, attributes] of [
        ['(objectClass=inetOrgPerson)', ldapUserAttributes],
        ['(objectClass=groupOfNames)', [...ldapGroupAttributes, 'member', 'uniqueMember']],
      ] as const) {
        const pages = client.searchPaginated(server.suffix, {
          scope: 'sub',
          filter,
          attributes: [...attributes],
          paged: { pageSize: 1000 },
          timeLimit: 0,
        });
        for await (const page of pages) entries += page.searchEntries.length;
      }
    });
    return { ms, entries };
  } finally {
    await client.unbind();
  }
}

/** What the database floor wrote and how long it took. */
interface CopyFloor {
  readonly ms: number;
  /** CPU seconds PostgreSQL used for the writes. */
  readonly postgresCpu: number;
  readonly objects: number;
  readonly edges: number;
  /** Rows of the change feed (one per kind of change and type, one per group's members). */
  readonly changes: number;
}

async function copyOut(sql: postgres.Sql, query: string): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of await sql.unsafe(query).readable()) chunks.push(chunk as Buffer);
  return chunks;
}

async function copyIn(sql: postgres.Sql, query: string, chunks: readonly Buffer[]): Promise<void> {
  const stream = await sql.unsafe(query).writable();
  for (const chunk of chunks) if (!stream.write(chunk)) await once(stream, 'drain');
  stream.end();
  await once(stream, 'finish');
}

/**
 * (a'') The database's floor: every row the first full sync wrote (its objects, its edges and its
 * change feed entries), written again with COPY into empty tables made like the sync's (`like …
 * including all`, foreign keys and triggers added), as the sync wrote into empty ones. The rows are
 * read out first; only the writes are timed, on two connections at once as the sync spreads its
 * writes over two: the edges on one, the objects and then the feed entries on the other. The
 * feed's batch rows (one per transaction, about a hundred) are left out. The tables are dropped
 * afterwards.
 */
async function copyFloor(databaseUrl: string, integrationId: string, runId: string): Promise<CopyFloor> {
  const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
  // COPY takes no parameters: the ids are uuids this benchmark made, checked before use.
  for (const id of [integrationId, runId]) if (!/^[0-9a-f-]{36}$/.test(id)) throw new Error(`not a uuid: ${id}`);
  const tables = { directory_objects: 'bench_floor_objects', memberships: 'bench_floor_memberships', changes: 'bench_floor_changes' } as const;
  try {
    for (const [source, copy] of Object.entries(tables)) {
      await sql.unsafe(`drop table if exists ${copy}; create table ${copy} (like ${source} including all)`);
      const extras = await sql<{ definition: string }[]>`
        select 'alter table ' || ${copy}::text || ' add ' || pg_get_constraintdef(oid) as definition
        from pg_constraint where conrelid = ${source}::regclass and contype = 'f'
        union all
        select replace(pg_get_triggerdef(oid), ' ON public.' || ${source}::text || ' ', ' ON ' || ${copy}::text || ' ')
        from pg_trigger where tgrelid = ${source}::regclass and not tgisinternal`;
      for (const { definition } of extras) await sql.unsafe(definition);
    }
    const objectColumns = 'integration_id, external_id, type, dn, attributes, content_hash, members_hash, last_seen_run_id';
    const edgeColumns = 'integration_id, group_external_id, member_external_id, last_seen_run_id';
    const objects = await copyOut(sql, `copy (select ${objectColumns} from directory_objects where integration_id = '${integrationId}') to stdout`);
    const edges = await copyOut(sql, `copy (select ${edgeColumns} from memberships where integration_id = '${integrationId}' and deleted_at is null) to stdout`);
    const changes = await copyOut(sql, `copy (select c.* from changes c join change_batches b on b.id = c.batch_id where b.run_id = '${runId}') to stdout`);
    const { value: { ms }, postgres: postgresCpu } = await postgresCpuDuring(databaseUrl, () => timed(() =>
      Promise.all([
        copyIn(sql, `copy ${tables.directory_objects} (${objectColumns}) from stdin`, objects).then(() => copyIn(sql, `copy ${tables.changes} from stdin`, changes)),
        copyIn(sql, `copy ${tables.memberships} (${edgeColumns}) from stdin`, edges),
      ]),
    ));
    const [counts] = await sql.unsafe<{ objects: number; edges: number; changes: number }[]>(
      `select (select count(*) from ${tables.directory_objects})::int as objects, (select count(*) from ${tables.memberships})::int as edges,
        (select count(*) from ${tables.changes})::int as changes`,
    );
    return { ms, postgresCpu, objects: counts?.objects ?? 0, edges: counts?.edges ?? 0, changes: counts?.changes ?? 0 };
  } finally {
    await sql.unsafe(`drop table if exists ${Object.values(tables).join(', ')}`).catch(() => undefined);
    await sql.end({ timeout: 5 });
  }
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
  const bench = await startBenchHarness({ label: 'bench', databaseUrl: options.databaseUrl, redisUrl: options.redisUrl, resultsDir: options.resultsDir });
  const { db, ring, dir, worker } = bench;
  try {
    log('measuring the directory floors: ldapsearch, ldapts…');
    const ldapsearchMs = await ldapsearchDump(server, dir);
    const client = await ldaptsRead(server);
    if (client.entries !== objects) throw new Error(`ldapts read ${client.entries} entries, expected ${objects}`);
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
        ldapsearchSeconds: seconds(ldapsearchMs),
        ldaptsSeconds: seconds(client.ms),
        // Objects, edges and change feed rows as the first full sync wrote them.
        copySeconds: seconds(copy.ms),
        copyRows: copy.objects + copy.edges + copy.changes,
        copyChangeRows: copy.changes,
      },
      fullSync: {
        seconds: fullSeconds,
        objectsPerSecond,
        ratioToSlowerFloor: ratio(fullSeconds, slowerFloor),
        ratioToLdapsearch: ratio(fullSeconds, ldapsearchMs / 1000),
      },
      unchangedFullSync: { seconds: unchangedSeconds, objectsPerSecond: Math.round(objects / Math.max(unchangedSeconds, 0.001)), ratioToFirst: ratio(unchangedSeconds, fullSeconds) },
      deltaSync: { seconds: deltaSeconds, changes: options.changes },
      // The worker's CPU time during each full sync (user and system).
      worker: { peakRssMB: Math.round(peakRssMB), cpuSeconds: { fullSync: fullCpu.worker, unchangedFullSync: unchangedCpu.worker } },
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
      ['first full sync (b)', `${fullSeconds}s`, `${objectsPerSecond}/s`, verdict(goals.objectsPerSecond)],
      ["(b) / slower of (a') and (a'')", String(results.fullSync.ratioToSlowerFloor), '', verdict(goals.ratioToSlowerFloor)],
      ['(b) / ldapsearch', String(results.fullSync.ratioToLdapsearch), '', ''],
      ['unchanged full sync (c), (c) / (b)', `${unchangedSeconds}s`, String(results.unchangedFullSync.ratioToFirst), verdict(goals.unchangedToFirst)],
      [`delta, ${options.changes} changes (d)`, `${deltaSeconds}s`, '', verdict(goals.deltaSyncSeconds)],
      ['worker CPU during the first and the unchanged full sync', `${results.worker.cpuSeconds.fullSync}s, ${results.worker.cpuSeconds.unchangedFullSync}s`, '', ''],
      ['PostgreSQL CPU during the same; during (a\'\')', `${results.postgres.cpuSeconds.fullSync}s, ${results.postgres.cpuSeconds.unchangedFullSync}s; ${copy.postgresCpu}s`, '', ''],
      ['slapd CPU during the same', `${results.slapd.cpuSeconds.fullSync}s, ${results.slapd.cpuSeconds.unchangedFullSync}s`, '', ''],
      [`(b)'s CPU bound: the three's CPU / ${cpus().length} CPUs; (b) / it`, `${cpuBound}s`, String(results.cpuBound.fullSyncRatio), ''],
      ['worker peak RSS (e)', `${results.worker.peakRssMB} MB`, '', verdict(goals.peakRssMB)],
      [`change feed: ${fullEntries} entries of (b), ${deltaEntries} of (d)`, '', '', ''],
      [`change feed read whole, ${feed.entries} entries (f)`, `${results.changeFeed.readSeconds}s`, `${results.changeFeed.readEntriesPerSecond}/s`, ''],
    ];
    log(`\n${table(['measure', 'time', 'rate', 'goal'], rows)}\n`);
    log(`load average during the run: ${results.machine.loadAverage.join(', ')} on ${results.machine.cpus} CPUs`);
    log(`results written to ${await bench.writeResults('', results)}`);
    return results;
  } finally {
    await bench.close();
    await server.stop();
  }
}
