import { fileURLToPath } from 'node:url';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import { migrate as drizzleMigrate } from 'drizzle-orm/postgres-js/migrator';
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
}

/** Opens a pooled connection. Close it with {@link close}. */
export function connect(url: string, options: ConnectOptions = {}): Db {
  const idle = options.idleTimeoutSeconds ?? 60;
  const client = postgres(url, {
    max: options.max ?? 10,
    ...(idle > 0 ? { idle_timeout: idle } : {}),
    connect_timeout: options.connectTimeoutSeconds ?? 5,
    onnotice: () => {},
    connection: { application_name: options.applicationName ?? 'dirsync' },
  });
  return drizzle(client, { schema });
}

/** Closes the pool behind a handle. */
export async function close(db: Db): Promise<void> {
  await db.$client.end({ timeout: 5 });
}

/**
 * Creates the database named in `url` when it does not exist (connecting to the `postgres`
 * database of the same server), so a fresh machine needs no manual step.
 */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`database name "${name}" is not allowed`);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`select 1 from pg_database where datname = ${name}`;
    if (rows.length === 0) {
      try {
        await sql.unsafe(`create database "${name}"`);
      } catch (error) {
        // Another process created it between the check and the create.
        if ((error as { code?: string }).code !== '42P04') throw error;
      }
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Applies the checked-in migrations (idempotent; concurrent callers are serialised by Postgres). */
export async function migrate(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    // drizzle's migrator is not safe against two processes migrating at once; an advisory lock is.
    await sql`select pg_advisory_lock(727162)`;
    await drizzleMigrate(drizzle(sql), { migrationsFolder });
    await sql`select pg_advisory_unlock(727162)`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
