/**
 * Measures what directory data costs in PostgreSQL: fills a scratch database with generated
 * users, groups and memberships through the pipeline's own write statements (`insertObjects`,
 * `insertMemberships`, then a full sync's `stampObjects` pass), and reports heap, TOAST and index
 * sizes per million objects and per million membership edges, with a timing of the per-integration
 * statements the sizes could slow down.
 *
 *   node packages/db/bench/sizes.ts [--users 200000] [--groups 2000] [--members 250] [--integrations 4]
 *     [--database postgres://postgres@127.0.0.1:5432/dirsync_sizes] [--json out.json]
 *
 * The database is dropped and created again: its name must start with `dirsync_sizes`.
 */
import { hash, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import {
  close,
  connect,
  createAccount,
  createIntegration,
  createRun,
  ensureDatabase,
  insertMemberships,
  insertObjects,
  loadObjectStates,
  migrate,
  stampObjects,
  type Db,
  type ObjectWrite,
} from '../src/index.ts';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '200000' },
    groups: { type: 'string', default: '2000' },
    members: { type: 'string', default: '250' },
    integrations: { type: 'string', default: '4' },
    batch: { type: 'string', default: '1000' },
    database: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/dirsync_sizes' },
    json: { type: 'string' },
  },
});

const users = Number(values.users);
const groups = Number(values.groups);
const members = Math.min(Number(values.members), users);
const integrations = Number(values.integrations);
const batch = Number(values.batch);
const databaseUrl = values.database;
if (!/\/dirsync_sizes[\w-]*$/.test(databaseUrl)) throw new Error('--database must name a database called dirsync_sizes…');
for (const [name, value] of Object.entries({ users, groups, members, integrations, batch })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
}

const givenNames = ['Ana', 'Bjørn', 'Chloé', 'Dmitri', 'Emeka', 'Fatima', 'Günther', 'Hiroshi', 'Ingrid', 'José'];
const surnames = ['Andersson', 'Bianchi', 'Černý', 'Dubois', 'Eriksen', 'Fernández', 'García', 'Hansen', 'Ivanova', 'Jansen'];
const titles = ['Engineer', 'Senior Engineer', 'Account Manager', 'Director of Operations', 'Analyst'];
const departments = ['Research', 'Sales', 'Finance', 'Operations', 'Human Resources'];

// Canonical attributes as the LDAP provider maps an inetOrgPerson, with a manager on most users.
function user(i: number, suffix: string): ObjectWrite {
  const given = givenNames[i % givenNames.length]!;
  const sn = surnames[Math.floor(i / 10) % surnames.length]!;
  const uid = `user${String(i).padStart(7, '0')}`;
  const attributes: Record<string, unknown> = {
    uid,
    cn: `${given} ${sn}`,
    sn,
    givenName: given,
    displayName: `${given} ${sn} (${uid})`,
    mail: `${uid}@example.org`,
    ...(i % 10 === 0 ? { otherMails: [`${given.toLowerCase()}.${uid}@alias.example.org`] } : {}),
    title: titles[i % titles.length],
    department: departments[i % departments.length],
    telephoneNumber: `+1 555 ${String((i * 7919) % 10_000_000).padStart(7, '0')}`,
    employeeNumber: String(100_000 + i),
    ...(i % 50 === 0 ? {} : { manager: `uid=user${String(i - (i % 50)).padStart(7, '0')},ou=people,${suffix}` }),
  };
  return object('user', `uid=${uid},ou=people,${suffix}`, attributes);
}

function group(j: number, suffix: string): ObjectWrite {
  const cn = `group-${String(j).padStart(5, '0')}`;
  return object('group', `cn=${cn},ou=groups,${suffix}`, { cn, description: `Members of ${cn}, generated for the size benchmark` });
}

function object(type: string, dn: string, attributes: Record<string, unknown>): ObjectWrite {
  const attributesJson = JSON.stringify(attributes);
  return {
    // entryUUID-like ids, as directories hand out.
    externalId: randomUUID(),
    type,
    dn: dn.toLowerCase(),
    attributesJson,
    contentHash: hash('sha1', `${type}\n${attributesJson}`, 'base64url'),
  };
}

interface RelationSize {
  table: string;
  rows: number;
  heapBytes: number;
  toastBytes: number;
  indexBytes: number;
  totalBytes: number;
  indexes: Record<string, number>;
}

async function sizes(sql: postgres.Sql, table: string): Promise<RelationSize> {
  const [row] = await sql<{ rows: number; heap: number; toast: number; indexes: number; total: number }[]>`
    select (select count(*) from ${sql(table)})::bigint::float8 as rows,
      pg_relation_size(${table}::regclass)::float8 as heap,
      (pg_table_size(${table}::regclass) - pg_relation_size(${table}::regclass)
        - pg_relation_size(${table}::regclass, 'fsm') - pg_relation_size(${table}::regclass, 'vm'))::float8 as toast,
      pg_indexes_size(${table}::regclass)::float8 as indexes,
      pg_total_relation_size(${table}::regclass)::float8 as total`;
  const perIndex = await sql<{ name: string; bytes: number }[]>`
    select indexrelid::regclass::text as name, pg_relation_size(indexrelid)::float8 as bytes
    from pg_index where indrelid = ${table}::regclass order by 1`;
  return {
    table,
    rows: row!.rows,
    heapBytes: row!.heap,
    toastBytes: row!.toast,
    indexBytes: row!.indexes,
    totalBytes: row!.total,
    indexes: Object.fromEntries(perIndex.map((i) => [i.name, i.bytes])),
  };
}

const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;
const perMillion = (bytes: number, rows: number) => mb((bytes / rows) * 1_000_000);

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const value = await fn();
  return [value, Math.round(performance.now() - start)];
}

async function fill(db: Db, integrationId: string, offset: number): Promise<{ objects: string[]; fillMs: number }> {
  const suffix = `dc=tenant${integrationId.slice(0, 8)},dc=example`;
  const run = await createRun(db, { integrationId, modeRequested: 'full', trigger: 'manual' });
  const start = performance.now();
  const ids: string[] = [];
  for (let from = 0; from < users; from += batch) {
    const rows = Array.from({ length: Math.min(batch, users - from) }, (_, k) => user(offset + from + k, suffix));
    await insertObjects(db, integrationId, run.id, rows);
    for (const row of rows) ids.push(row.externalId);
  }
  const groupRows = Array.from({ length: groups }, (_, j) => group(j, suffix));
  for (let from = 0; from < groups; from += batch) await insertObjects(db, integrationId, run.id, groupRows.slice(from, from + batch));
  // Each group's members: a stride through the users, so groups overlap as real ones do.
  const edgeBatch = Math.max(1, Math.floor(20_000 / members));
  for (let from = 0; from < groups; from += edgeBatch) {
    const sets = groupRows.slice(from, from + edgeBatch).map((g, k) => {
      const j = from + k;
      const memberIds = Array.from({ length: members }, (_, m) => ids[(j * 7919 + m * 13) % users]!);
      return { groupExternalId: g.externalId, memberExternalIds: [...new Set(memberIds)], membersHash: `h${j}` };
    });
    await insertMemberships(db, integrationId, run.id, sets);
  }
  return { objects: ids, fillMs: Math.round(performance.now() - start) };
}

async function main(): Promise<void> {
  const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);
  await ensureDatabase(databaseUrl);
  const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe('drop schema if exists public cascade; drop schema if exists drizzle cascade; create schema public;');
  await migrate(databaseUrl);
  const db = connect(databaseUrl, { max: 2 });
  try {
    const account = await createAccount(db, { name: 'sizes' });
    const integrationIds: string[] = [];
    const objectIds: string[][] = [];
    let fillMs = 0;
    for (let n = 0; n < integrations; n++) {
      const integration = await createIntegration(db, { accountId: account.id, kind: 'ldap', name: `tenant-${n}`, settings: {} });
      integrationIds.push(integration.id);
      log(`integration ${n + 1}/${integrations}: ${users} users, ${groups} groups × ${members} members…`);
      const filled = await fill(db, integration.id, n * users);
      objectIds.push(filled.objects);
      fillMs += filled.fillMs;
    }
    await admin`vacuum analyze directory_objects`;
    await admin`vacuum analyze memberships`;
    const afterLoad = { objects: await sizes(admin, 'directory_objects'), memberships: await sizes(admin, 'memberships') };

    // A full sync stamps every object it sees: the update fillfactor 50 keeps HOT.
    log('stamping every object as an unchanged full sync does…');
    const stampRun = await createRun(db, { integrationId: integrationIds[0]!, modeRequested: 'full', trigger: 'manual' });
    const [, stampMs] = await timed(async () => {
      for (let from = 0; from < users; from += batch) await stampObjects(db, integrationIds[0]!, stampRun.id, objectIds[0]!.slice(from, from + batch));
    });
    for (let n = 1; n < integrations; n++) {
      const run = await createRun(db, { integrationId: integrationIds[n]!, modeRequested: 'full', trigger: 'manual' });
      for (let from = 0; from < users; from += batch) await stampObjects(db, integrationIds[n]!, run.id, objectIds[n]!.slice(from, from + batch));
    }
    await admin`vacuum analyze directory_objects`;
    const afterStamp = { objects: await sizes(admin, 'directory_objects'), memberships: await sizes(admin, 'memberships') };
    const [hot] = await admin<{ updates: number; hot: number }[]>`
      select n_tup_upd::float8 as updates, n_tup_hot_upd::float8 as hot from pg_stat_user_tables where relname = 'directory_objects'`;

    // The per-integration reads the pipeline makes: they go through indexes led by integration_id.
    const sample = objectIds[0]!.slice(0, batch);
    const [, loadStatesMs] = await timed(() => loadObjectStates(db, integrationIds[0]!, sample));
    await admin`create extension if not exists pageinspect`.catch(() => undefined);
    const depth = await admin<{ name: string; levels: number }[]>`
      select c.relname as name, (select level from bt_metap(c.relname::text))::int + 1 as levels
      from pg_class c join pg_index i on i.indexrelid = c.oid join pg_am a on a.oid = c.relam
      where i.indrelid in ('directory_objects'::regclass, 'memberships'::regclass) and a.amname = 'btree'`.catch(() => []);

    // What removing one customer costs without partitions: a cascading delete of its rows.
    const [, deleteIntegrationMs] = await timed(() => admin`delete from integrations where id = ${integrationIds.at(-1)!}`);

    const objects = afterStamp.objects.rows;
    const edges = afterStamp.memberships.rows;
    const result = {
      date: new Date().toISOString(),
      setup: { integrations, usersPerIntegration: users, groupsPerIntegration: groups, membersPerGroup: members, objects, edges },
      fillSeconds: fillMs / 1000,
      stampSecondsFirstIntegration: stampMs / 1000,
      hotUpdateShare: hot ? Math.round((hot.hot / Math.max(1, hot.updates)) * 1000) / 1000 : null,
      loadObjectStatesMsPerBatch: loadStatesMs,
      deleteOneIntegrationSeconds: deleteIntegrationMs / 1000,
      btreeLevels: Object.fromEntries(depth.map((d) => [d.name, d.levels])),
      perMillionObjectsMB: {
        afterLoad: {
          heap: perMillion(afterLoad.objects.heapBytes, afterLoad.objects.rows),
          toast: perMillion(afterLoad.objects.toastBytes, afterLoad.objects.rows),
          indexes: perMillion(afterLoad.objects.indexBytes, afterLoad.objects.rows),
          total: perMillion(afterLoad.objects.totalBytes, afterLoad.objects.rows),
        },
        afterFullSyncStamp: {
          heap: perMillion(afterStamp.objects.heapBytes, objects),
          toast: perMillion(afterStamp.objects.toastBytes, objects),
          indexes: perMillion(afterStamp.objects.indexBytes, objects),
          total: perMillion(afterStamp.objects.totalBytes, objects),
        },
        indexes: Object.fromEntries(Object.entries(afterStamp.objects.indexes).map(([k, v]) => [k, perMillion(v, objects)])),
      },
      perMillionEdgesMB: {
        heap: perMillion(afterStamp.memberships.heapBytes, edges),
        toast: perMillion(afterStamp.memberships.toastBytes, edges),
        indexes: perMillion(afterStamp.memberships.indexBytes, edges),
        total: perMillion(afterStamp.memberships.totalBytes, edges),
        indexesDetail: Object.fromEntries(Object.entries(afterStamp.memberships.indexes).map(([k, v]) => [k, perMillion(v, edges)])),
      },
      bytesPerObject: Math.round(afterStamp.objects.totalBytes / objects),
      bytesPerEdge: Math.round(afterStamp.memberships.totalBytes / edges),
    };
    console.log(JSON.stringify(result, null, 2));
    if (values.json) await writeFile(values.json, `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await close(db);
    await admin.end({ timeout: 5 });
  }
}

await main();
