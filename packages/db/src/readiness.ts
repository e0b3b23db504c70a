import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from './client.ts';
import { migrationsFolder } from './client.ts';

/** What {@link checkDatabaseReady} found. */
export type DatabaseReadiness =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: string };

interface Journal {
  entries: Array<{ when: number; tag: string }>;
}

let latestMigration: { when: number; tag: string } | undefined;

function latestCheckedInMigration(): { when: number; tag: string } {
  if (!latestMigration) {
    const journal = JSON.parse(readFileSync(join(migrationsFolder, 'meta', '_journal.json'), 'utf8')) as Journal;
    const last = journal.entries.at(-1);
    if (!last) throw new Error('the migration journal lists no migration');
    latestMigration = { when: last.when, tag: last.tag };
  }
  return latestMigration;
}

/**
 * Readiness of the database for this code: it answers, and the newest checked-in migration is
 * applied (a process started before `dirsync db migrate` ran reports not ready instead of
 * failing requests). Never throws; the reason names what is missing without any URL.
 */
export async function checkDatabaseReady(db: Db): Promise<DatabaseReadiness> {
  const wanted = latestCheckedInMigration();
  try {
    // drizzle's migrator records each applied migration with the journal's `when` as created_at.
    const rows = await db.$client<{ applied: string | null }[]>`
      select (select max(created_at) from drizzle.__drizzle_migrations)::text as applied`;
    const applied = rows[0]?.applied;
    if (applied === null || applied === undefined || Number(applied) < wanted.when) {
      return { ok: false, reason: `database migrations are not applied up to ${wanted.tag}: run \`dirsync db migrate\`` };
    }
    return { ok: true };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === '42P01' || code === '3F000') {
      return { ok: false, reason: 'database is not migrated: run `dirsync db migrate`' };
    }
    return { ok: false, reason: `database unreachable: ${typeof code === 'string' ? code : error instanceof Error ? error.name : 'error'}` };
  }
}
