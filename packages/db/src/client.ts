import { fileURLToPath } from 'node:url';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import postgres from 'postgres';
import * as schema from './schema.ts';

/** The drizzle handle every repository function takes. */
export type Db = PostgresJsDatabase<typeof schema> & { $client: postgres.Sql };

/** Folder of the drizzle-kit migrations checked in beside the schema. */
export const migrationsFolder = fileURLToPath(new URL('../migrations', import.meta.url));

/** Options for {@link connect}. */
export interface ConnectOptions {
  /** Pool size; the pipeline needs few connections, the API more. Default 10. */
  max?: number | undefined;
  /**
   * Seconds an unused connection stays open (0: forever). Default 60, so a quiet replica gives
   * its connections back and many replicas fit under the server's `max_connections`.
   */
  idleTimeoutSeconds?: number | undefined;
  /**
   * Seconds to wait for a new connection to open before the query fails. Default 5: a request
   * must fail quickly while the server cannot be reached, not hang.
   */
  connectTimeoutSeconds?: number | undefined;
  /** Tag shown in pg_stat_activity (`dirsync-worker`, `dirsync-api`, …). */
  applicationName?: string | undefined;
  /**
   * Seconds any one statement may run before PostgreSQL cancels it (0 or omitted: the server's
   * own setting; the processes pass `DIRSYNC_DB_STATEMENT_TIMEOUT_SECONDS`, default
   * {@link defaultStatementTimeoutSeconds}). Sent as the `statement_timeout` startup parameter, so
   * it holds for every connection of the pool from its first statement and costs no round trip.
   * Not sent with {@link ConnectOptions.pgbouncer}: PgBouncer refuses unknown startup parameters.
   */
  statementTimeoutSeconds?: number | undefined;
  /**
   * The URL names PgBouncer in transaction mode: statements are sent unnamed (PgBouncer before
   * 1.21 cannot keep protocol-level prepared statements across the server connections it hands
   * out) and no `statement_timeout` or `jit` startup parameter is sent (set them on the PostgreSQL
   * role or database, or with PgBouncer's `connect_query`). Default false.
   */
  pgbouncer?: boolean | undefined;
}

/**
 * Default of the processes' statement timeout setting. The pipeline's largest statement on the
 * 100k-user benchmark (one batch's membership insert) took 2.1 s on a loaded 2-core machine whose
 * full sync ran 90 s instead of 7 s: the timeout ends a statement stuck behind a lock or a runaway
 * plan, never legitimate work.
 */
export const defaultStatementTimeoutSeconds = 300;

/** The postgres.js options {@link connect} opens its pool with (exported for tests). */
export function poolOptions(options: ConnectOptions = {}): postgres.Options<Record<string, postgres.PostgresType>> {
  const idle = options.idleTimeoutSeconds ?? 60;
  const timeout = options.statementTimeoutSeconds ?? 0;
  const pgbouncer = options.pgbouncer ?? false;
  return {
    max: options.max ?? 10,
    ...(idle > 0 ? { idle_timeout: idle } : {}),
    connect_timeout: options.connectTimeoutSeconds ?? 5,
    // Only ever turned off: a URL's own `?prepare=false` still counts without the setting.
    ...(pgbouncer ? { prepare: false } : {}),
    onnotice: () => {},
    connection: {
      application_name: options.applicationName ?? 'dirsync',
      // No JIT compilation: dirsync's statements are many and short, and while the statistics
      // are older than a large sync's rows (autovacuum has not analyzed the table yet, or is
      // off) their cost estimates pass jit_above_cost: compiling took 168 ms of one 10,000-DN
      // member resolution, of which the 1M benchmark's first sync runs about 440.
      ...(!pgbouncer ? { jit: 'off' } : {}),
      // Milliseconds; 0 would mean no limit, which is PostgreSQL's own default anyway.
      ...(!pgbouncer && timeout > 0 ? { statement_timeout: Math.round(timeout * 1000) } : {}),
    },
  };
}

/** Opens a pooled connection. Close it with {@link close}. */
export function connect(url: string, options: ConnectOptions = {}): Db {
  const client = postgres(url, poolOptions(options));
  return drizzle(client, { schema });
}

/** Closes the pool behind a handle. */
export async function close(db: Db): Promise<void> {
  await db.$client.end({ timeout: 5 });
}

/**
 * Creates the database named in `url` when it does not exist (connecting to the `postgres`
 * database of the same server), so a fresh machine needs no manual step. Says whether it
 * created it (a concurrent creator's win counts as not created here).
 */
export async function ensureDatabase(url: string): Promise<{ readonly name: string; readonly created: boolean }> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`database name "${name}" is not allowed`);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`select 1 from pg_database where datname = ${name}`;
    if (rows.length > 0) return { name, created: false };
    try {
      await sql.unsafe(`create database "${name}"`);
      return { name, created: true };
    } catch (error) {
      // Another process created it between the check and the create.
      if ((error as { code?: string }).code !== '42P04') throw error;
      return { name, created: false };
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Schema and table of the applied-migrations journal (drizzle's own, so drizzle-kit reads it). */
const journalSchema = 'drizzle';
const journalTable = '__drizzle_migrations';

/**
 * Applies the checked-in migrations (idempotent; concurrent callers are serialised by Postgres).
 * Everything happens in one transaction holding a transaction-level advisory lock: a session
 * lock would be taken and released on different server connections behind PgBouncer in
 * transaction mode, and a second migrator would then wait for ever. Returns how many migrations
 * this call applied (0: the database was up to date).
 */
export async function migrate(url: string): Promise<{ readonly applied: number }> {
  const migrations = readMigrationFiles({ migrationsFolder });
  const sql = postgres(url, { max: 1, onnotice: () => {}, prepare: false });
  let applied = 0;
  try {
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(727162)`;
      await tx.unsafe(`create schema if not exists "${journalSchema}"`);
      await tx.unsafe(
        `create table if not exists "${journalSchema}"."${journalTable}" (id serial primary key, hash text not null, created_at bigint)`,
      );
      const [last] = await tx.unsafe<{ created_at: string | null }[]>(
        `select created_at from "${journalSchema}"."${journalTable}" order by created_at desc limit 1`,
      );
      // drizzle's rule: a migration is pending when it is younger than the last one applied.
      const appliedUntil = last?.created_at == null ? undefined : Number(last.created_at);
      for (const migration of migrations) {
        if (appliedUntil !== undefined && appliedUntil >= migration.folderMillis) continue;
        for (const statement of migration.sql) {
          if (statement.trim() !== '') await tx.unsafe(statement);
        }
        await tx.unsafe(`insert into "${journalSchema}"."${journalTable}" (hash, created_at) values ($1, $2)`, [
          migration.hash,
          migration.folderMillis,
        ]);
        applied += 1;
      }
    });
  } finally {
    await sql.end({ timeout: 5 });
  }
  return { applied };
}
