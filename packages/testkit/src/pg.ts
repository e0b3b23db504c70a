import { randomBytes } from 'node:crypto';
import postgres from 'postgres';

/** Server URL tests use; the machine's own Postgres unless TEST_PG_URL names another. */
export const testPgServerUrl = process.env['TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432';

/**
 * Id of the current test run: the jest process id, set by the global setup. Databases carry it
 * so that concurrent runs on one machine never drop each other's databases.
 */
export function testRunId(): string {
  return process.env['DIRSYNC_TEST_RUN'] ?? `p${process.pid}`;
}

/** Migrated template every test database of this run is cloned from (made by the global setup). */
export function templateDatabase(runId: string = testRunId()): string {
  return `dirsync_tpl_${runId}`;
}

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
  const run = testRunId();
  const name = `dirsync_t_${run}_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase().slice(0, 24)}_${randomBytes(4).toString('hex')}`;
  const sql = adminSql();
  try {
    await sql.unsafe(`create database "${name}" template "${templateDatabase(run)}"`);
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

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Drops the test databases of `runId`, and those of earlier runs whose process is gone (a run
 * killed before its teardown). Databases of other live runs are left alone.
 */
export async function dropTestDatabases(runId: string = testRunId()): Promise<void> {
  const sql = adminSql();
  try {
    const rows = await sql<{ datname: string }[]>`
      select datname from pg_database where datname like 'dirsync\\_t\\_%' or datname like 'dirsync\\_tpl\\_%'`;
    for (const { datname } of rows) {
      const owner = /^dirsync_(?:t|tpl)_p(\d+)/.exec(datname)?.[1];
      const mine = datname.startsWith(`dirsync_t_${runId}_`) || datname === templateDatabase(runId);
      if (mine || (owner !== undefined && !processAlive(Number(owner)))) {
        await sql.unsafe(`drop database if exists "${datname}" with (force)`);
      }
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}
