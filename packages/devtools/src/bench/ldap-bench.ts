import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { Attribute, Change, Client } from 'ldapts';
import postgres from 'postgres';
import { changeRangeOfRun, createAccount, createIntegration, type Db, readChanges } from '@dirsync/db';
import { startSlapd, userDn, type SlapdServer } from '@dirsync/testkit';
import { ldapGroupAttributes, ldapIntegrationSettings, ldapUserAttributes } from '../local-directory.ts';
import { seconds, startBenchHarness } from './harness.ts';
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

/** COPY of as many directory_objects rows as the directory has objects: the database's floor. */
async function copyFloor(databaseUrl: string, integrationId: string, objects: number): Promise<number> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const { ms } = await timed(async () => {
      const stream = await sql`copy directory_objects (integration_id, external_id, type, dn, attributes, content_hash) from stdin`.writable();
      let chunk = '';
      for (let i = 0; i < objects; i++) {
        const attributes = JSON.stringify({
          uid: `user${i}`, cn: `User Number ${i}`, sn: `Number${i}`, givenName: 'User', displayName: `User Number ${i}`,
          mail: `user${i}@example.org`, title: 'Engineer', department: '100', telephoneNumber: '+1 555 0100', employeeNumber: String(i),
        }).replaceAll('\\', '\\\\');
        chunk += `${integrationId}\t${crypto.randomUUID()}\tuser\tuid=user${i},ou=people,dc=example,dc=org\t${attributes}\t${'0'.repeat(40)}\n`;
        if (chunk.length > 1 << 20) {
          if (!stream.write(chunk)) await once(stream, 'drain');
          chunk = '';
        }
      }
      stream.end(chunk);
      await once(stream, 'finish');
    });
    await sql`delete from directory_objects where integration_id = ${integrationId}`;
    return ms;
  } finally {
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
    log('measuring floors: ldapsearch, ldapts, COPY…');
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
    const copyMs = await copyFloor(options.databaseUrl, integration.id, objects);

    log('full sync…');
    const full = await bench.runSync(integration.id, 'full');
    if (full.created !== objects) throw new Error(`full sync created ${full.created} objects, expected ${objects}`);
    log('unchanged full sync…');
    const unchanged = await bench.runSync(integration.id, 'full');
    if (unchanged.unchanged !== objects) throw new Error(`unchanged full sync found ${unchanged.unchanged} unchanged, expected ${objects}`);
    log(`changing ${options.changes} users, delta sync…`);
    await changeUsers(server, options.changes, options.users);
    const delta = await bench.runSync(integration.id, 'delta');
    if (delta.updated !== options.changes) throw new Error(`delta updated ${delta.updated} objects, expected ${options.changes}`);
    const peakRssMB = (await worker.peakRssMB()) ?? Number.NaN;
    log('reading the change feed…');
    const fullEntries = (await changeRangeOfRun(db, full.id))?.count ?? 0;
    const deltaEntries = (await changeRangeOfRun(db, delta.id))?.count ?? 0;
    const feed = await readWholeFeed(db, account.id);

    const fullSeconds = seconds(full.durationMs ?? 0);
    const clientFloor = Math.max(client.ms, copyMs) / 1000;
    const results = {
      date: new Date().toISOString(),
      objects,
      users: options.users,
      groups: options.groups,
      membersPerGroup: options.membersPerGroup,
      memberships: options.groups * Math.min(options.membersPerGroup, options.users),
      machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
      load: { seconds: seconds(load.ms) },
      floors: { ldapsearchSeconds: seconds(ldapsearchMs), ldaptsSeconds: seconds(client.ms), copySeconds: seconds(copyMs) },
      fullSync: {
        seconds: fullSeconds,
        objectsPerSecond: Math.round(objects / fullSeconds),
        ratioToClientFloor: Math.round((fullSeconds / clientFloor) * 100) / 100,
        ratioToLdapsearch: Math.round((fullSeconds / (ldapsearchMs / 1000)) * 100) / 100,
      },
      unchangedFullSync: { seconds: seconds(unchanged.durationMs ?? 0), objectsPerSecond: Math.round(objects / seconds(unchanged.durationMs ?? 1)) },
      deltaSync: { seconds: seconds(delta.durationMs ?? 0), changes: options.changes },
      worker: { peakRssMB: Math.round(peakRssMB) },
      // The full sync logs one entry per object and one per group for its members.
      changeFeed: {
        fullSyncEntries: fullEntries,
        deltaSyncEntries: deltaEntries,
        entries: feed.entries,
        readSeconds: seconds(feed.ms),
        readEntriesPerSecond: Math.round(feed.entries / Math.max(feed.ms / 1000, 0.001)),
      },
      goals: {
        objectsPerSecond: '>= 20000',
        ratioToClientFloor: '<= 1.5',
        unchangedFullSync: '<= fullSync',
        deltaSyncSeconds: '< 1',
        peakRssMB: '<= 256',
      },
    };
    const rows: [string, string, string][] = [
      ['ldapsearch dump (a)', `${results.floors.ldapsearchSeconds}s`, `${Math.round(objects / results.floors.ldapsearchSeconds)}/s`],
      ["ldapts read (a')", `${results.floors.ldaptsSeconds}s`, `${Math.round(objects / results.floors.ldaptsSeconds)}/s`],
      ['COPY into Postgres (a)', `${results.floors.copySeconds}s`, `${Math.round(objects / results.floors.copySeconds)}/s`],
      ['first full sync (b)', `${fullSeconds}s`, `${results.fullSync.objectsPerSecond}/s`],
      ['unchanged full sync (c)', `${results.unchangedFullSync.seconds}s`, `${results.unchangedFullSync.objectsPerSecond}/s`],
      [`delta, ${options.changes} changes (d)`, `${results.deltaSync.seconds}s`, ''],
      ['worker peak RSS (e)', `${results.worker.peakRssMB} MB`, ''],
      [`change feed: ${fullEntries} entries of (b), ${deltaEntries} of (d)`, '', ''],
      [`change feed read whole, ${feed.entries} entries (f)`, `${results.changeFeed.readSeconds}s`, `${results.changeFeed.readEntriesPerSecond}/s`],
      ['(b) / slower of (a\') and COPY', String(results.fullSync.ratioToClientFloor), 'goal <= 1.5'],
      ['(b) / ldapsearch', String(results.fullSync.ratioToLdapsearch), ''],
    ];
    log(`\n${table(['measure', 'time', 'rate'], rows)}\n`);
    log(`results written to ${await bench.writeResults('', results)}`);
    return results;
  } finally {
    await bench.close();
    await server.stop();
  }
}
