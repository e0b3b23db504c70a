import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import {
  createTestDatabase,
  startPgBouncer,
  testPgServerUrl,
  testRunId,
  type PgBouncer,
  type TestDatabase,
} from '@dirsync/testkit';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import {
  close,
  connect,
  createAccount,
  createIntegration,
  createRun,
  ensureDatabase,
  finishRun,
  getRun,
  migrate,
  migrationsFolder,
  poolOptions,
  startRun,
  type Db,
} from '../src/index.ts';

// PostgreSQL behind PgBouncer 1.18 in transaction mode, as many platform teams run it: every
// transaction may land on another server connection, so nothing may rely on session state.

let bouncer: PgBouncer;
const created: string[] = [];

beforeAll(async () => {
  bouncer = await startPgBouncer({ poolSize: 10 });
});

afterAll(async () => {
  await bouncer?.stop();
  const admin = postgres(`${testPgServerUrl}/postgres`, { max: 1, onnotice: () => {} });
  try {
    for (const name of created) await admin.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.end({ timeout: 5 });
  }
});

function freshName(label: string): string {
  const name = `dirsync_t_${testRunId()}_${label}_${randomBytes(4).toString('hex')}`;
  created.push(name);
  return name;
}

test('a fresh database is created and migrated through PgBouncer, by three migrators at once', async () => {
  const name = freshName('pgb_migrate');
  const url = bouncer.url(name);
  await ensureDatabase(url);
  // Each migrator takes and releases its lock inside its own transaction: a session lock would
  // be released on another server connection and leave the next migrator waiting for ever.
  await Promise.all([migrate(url), migrate(url), migrate(url)]);
  await migrate(url);

  const db = connect(url, { pgbouncer: true, max: 2 });
  try {
    const journal = await db.$client<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`;
    expect(journal[0]?.n).toBe(readMigrationFiles({ migrationsFolder }).length);
    const account = await createAccount(db, { name: 'through-pgbouncer' });
    expect(account.id).toMatch(/^[0-9a-f-]{36}$/);
  } finally {
    await close(db);
  }
});

test('the pool sends no prepared statements and no statement_timeout or jit startup parameter in PgBouncer mode', async () => {
  expect(poolOptions({ pgbouncer: true, statementTimeoutSeconds: 30 })).toMatchObject({ prepare: false, connection: { application_name: 'dirsync' } });
  expect(poolOptions({ pgbouncer: true, statementTimeoutSeconds: 30 }).connection).not.toHaveProperty('statement_timeout');
  expect(poolOptions({ pgbouncer: true }).connection).not.toHaveProperty('jit');
  expect(poolOptions({ statementTimeoutSeconds: 30 })).toMatchObject({ connection: { statement_timeout: 30_000, jit: 'off' } });
  expect(poolOptions({ statementTimeoutSeconds: 30 })).not.toHaveProperty('prepare');

  const database = await createTestDatabase('pgb_params');
  // Without the setting PgBouncer refuses the connection outright: the reason the setting exists.
  const direct = connect(bouncer.through(database.url), { statementTimeoutSeconds: 30 });
  const pooled = connect(bouncer.through(database.url), { pgbouncer: true, statementTimeoutSeconds: 30 });
  try {
    await expect(direct.$client`select 1`).rejects.toThrow(/unsupported startup parameter: (jit|statement_timeout)/);
    const [row] = await pooled.$client<{ n: number }[]>`select ${41}::int + 1 as n`;
    expect(row?.n).toBe(42);
  } finally {
    await close(direct);
    await close(pooled);
    await database.drop();
  }
});

test('the statement timeout cancels a statement that runs too long, directly and behind PgBouncer', async () => {
  const database = await createTestDatabase('pgb_timeout');
  const direct = connect(database.url, { statementTimeoutSeconds: 1 });
  // Behind PgBouncer the timeout is the server side's: here PgBouncer's connect_query sets it.
  // As docker/pgbouncer/pgbouncer.ini does, with JIT off too (two statements in one query).
  const timed = await startPgBouncer({ poolSize: 2, connectQuery: 'set statement_timeout = 1000; set jit = off' });
  const pooled = connect(timed.through(database.url), { pgbouncer: true });
  try {
    expect((await direct.$client<{ statement_timeout: string }[]>`show statement_timeout`)[0]?.statement_timeout).toBe('1s');
    expect((await direct.$client<{ jit: string }[]>`show jit`)[0]?.jit).toBe('off');
    await expect(direct.$client`select pg_sleep(3)`).rejects.toMatchObject({ code: '57014' });
    // A statement within the limit runs.
    await expect(direct.$client`select pg_sleep(0.1)`).resolves.toHaveLength(1);
    await expect(pooled.$client`select pg_sleep(3)`).rejects.toMatchObject({ code: '57014' });
    expect((await pooled.$client<{ jit: string }[]>`show jit`)[0]?.jit).toBe('off');
    const unlimited = connect(database.url, { statementTimeoutSeconds: 0 });
    try {
      expect((await unlimited.$client<{ statement_timeout: string }[]>`show statement_timeout`)[0]?.statement_timeout).toBe('0');
    } finally {
      await close(unlimited);
    }
  } finally {
    await close(direct);
    await close(pooled);
    await timed.stop();
    await database.drop();
  }
});

test('60 client connections share 10 server connections: every transaction completes', async () => {
  const database = await createTestDatabase('pgb_load');
  const url = bouncer.through(database.url);
  const setup = connect(url, { pgbouncer: true, max: 1 });
  const account = await createAccount(setup, { name: 'load' });
  const integrations = await Promise.all(
    Array.from({ length: 6 }, (_, i) => createIntegration(setup, { accountId: account.id, kind: 'ldap', name: `d${i}`, settings: {} })),
  );
  // Six "worker processes" with pools of ten: 60 client connections, as 6 workers × concurrency 8 would open.
  const pools: Db[] = integrations.map(() => connect(url, { pgbouncer: true, max: 10, applicationName: 'dirsync-worker' }));
  const clientsPerPool = 10;
  const runsPerClient = 5;
  let peakClients = 0;
  let peakServers = 0;
  let done = false;
  const sample = (async () => {
    while (!done) {
      for (const pool of (await bouncer.pools()).filter((p) => p.database === database.name)) {
        peakClients = Math.max(peakClients, pool.clientsActive + pool.clientsWaiting);
        peakServers = Math.max(peakServers, pool.servers);
      }
    }
  })();
  try {
    const work = pools.flatMap((db, p) =>
      Array.from({ length: clientsPerPool }, async () => {
        for (let r = 0; r < runsPerClient; r++) {
          const run = await createRun(db, { integrationId: integrations[p]!.id, modeRequested: 'delta', trigger: 'schedule' });
          await startRun(db, run.id, { mode: 'delta', workerId: `w${p}` });
          await finishRun(db, run.id, { status: 'succeeded', fetched: 1 });
          // A transaction that holds its server connection a while, as a write batch does.
          await db.$client.begin(async (tx) => {
            await tx`select pg_sleep(0.02)`;
            await tx`update sync_runs set unchanged = unchanged + 1 where id = ${run.id}`;
          });
        }
      }),
    );
    await Promise.all(work);
  } finally {
    done = true;
    await sample;
  }
  try {
    const total = 6 * clientsPerPool * runsPerClient;
    const [counts] = await setup.$client<{ runs: number; succeeded: number; unchanged: number }[]>`
      select count(*)::int as runs, count(*) filter (where status = 'succeeded')::int as succeeded,
        sum(unchanged)::int as unchanged from sync_runs`;
    expect(counts).toEqual({ runs: total, succeeded: total, unchanged: total });
    const anyRun = await setup.$client<{ id: string }[]>`select id from sync_runs limit 1`;
    expect(await getRun(setup, anyRun[0]!.id)).toMatchObject({ fetched: 1, unchanged: 1, status: 'succeeded' });
    // PgBouncer saw all 60 clients at once and never opened more than its pool of 10.
    expect(peakClients).toBeGreaterThanOrEqual(6 * clientsPerPool);
    expect(peakServers).toBeGreaterThan(0);
    expect(peakServers).toBeLessThanOrEqual(10);
    // PostgreSQL's side agrees: the database has no more backends than PgBouncer's pool.
    const direct = postgres(database.url, { max: 1, onnotice: () => {} });
    try {
      const [server] = await direct<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity where datname = ${database.name} and pid <> pg_backend_pid()`;
      expect(server?.n).toBeLessThanOrEqual(10);
    } finally {
      await direct.end({ timeout: 5 });
    }
  } finally {
    await Promise.all(pools.map((db) => close(db)));
    await close(setup);
    await database.drop();
  }
});
