import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate as drizzleMigrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { testPgServerUrl, testRunId } from '@dirsync/testkit';
import { migrationsFolder } from '../../src/client.ts';

/** A scratch database migrated up to a migration, for a test of what the next ones do to stored rows. */
export interface PartlyMigrated {
  readonly url: string;
  /** A connection to it (one). */
  readonly sql: postgres.Sql;
  /** Applies the checked-in migrations not applied yet. */
  migrateRest(): Promise<void>;
}

async function migrateFrom(url: string, folder: string): Promise<void> {
  const client = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await drizzleMigrate(drizzle(client), { migrationsFolder: folder });
  } finally {
    await client.end({ timeout: 5 });
  }
}

/**
 * Registers `beforeAll`/`afterAll` hooks of a database (`label`) migrated with the checked-in
 * migrations numbered below `before`, dropped after the file's tests; `ready` receives it.
 */
export function usePartlyMigratedDatabase(label: string, before: number, ready: (database: PartlyMigrated) => void): void {
  const name = `dirsync_t_${testRunId()}_${label}_${process.pid}`;
  const url = `${testPgServerUrl}/${name}`;
  let admin: postgres.Sql | undefined;
  let sql: postgres.Sql | undefined;
  let folder: string | undefined;
  beforeAll(async () => {
    admin = postgres(`${testPgServerUrl}/postgres`, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    folder = mkdtempSync(join(tmpdir(), 'dirsync-migrations-'));
    cpSync(migrationsFolder, folder, { recursive: true });
    const journalPath = join(folder, 'meta', '_journal.json');
    const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: Array<{ idx: number }> };
    journal.entries = journal.entries.filter((entry) => entry.idx < before);
    writeFileSync(journalPath, JSON.stringify(journal));
    await migrateFrom(url, folder);
    sql = postgres(url, { max: 1, onnotice: () => {} });
    ready({ url, sql, migrateRest: () => migrateFrom(url, migrationsFolder) });
  });
  afterAll(async () => {
    await sql?.end({ timeout: 5 });
    await admin?.unsafe(`drop database if exists "${name}" with (force)`);
    await admin?.end({ timeout: 5 });
    if (folder !== undefined) rmSync(folder, { recursive: true, force: true });
  });
}
