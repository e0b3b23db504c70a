import { randomBytes } from 'node:crypto';
import postgres from 'postgres';

/** Server URL tests use; the machine's own Postgres unless TEST_PG_URL names another. */
export const testPgServerUrl = process.env['TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432';

/** Migrated template every test database is cloned from (made by the jest global setup). */
export const templateDatabase = 'dirsync_test_template';

/** A throwaway database for one test file. */
export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  drop(): Promise<void>;
}

function adminSql() {
  return postgres(`${testPgServerUrl}/postgres`, { max: 1, onnotice: () => {} });
}

/**
 * Creates a fresh, migrated database for one test file by cloning the template (fast: a file
 * copy on the server), so files never see each other's rows.
 */
export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const name = `dirsync_t_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase().slice(0, 30)}_${randomBytes(4).toString('hex')}`;
  const sql = adminSql();
  try {
    await sql.unsafe(`create database "${name}" template "${templateDatabase}"`);
  } finally {
    await sql.end({ timeout: 5 });
  }
  return {
    name,
    url: `${testPgServerUrl}/${name}`,
    async drop() {
      const admin = adminSql();
      try {
        await admin.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await admin.end({ timeout: 5 });
      }
    },
  };
}

/** Drops every test database left behind by earlier runs (called by the global setup). */
export async function dropStaleTestDatabases(): Promise<void> {
  const sql = adminSql();
  try {
    const rows = await sql<{ datname: string }[]>`select datname from pg_database where datname like 'dirsync_t\\_%'`;
    for (const row of rows) await sql.unsafe(`drop database if exists "${row.datname}" with (force)`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
