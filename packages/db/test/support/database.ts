import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { close, connect, type Db } from '../../src/client.ts';

/**
 * Gives the calling test file a database of its own: created, connected (a pool of `max`) and
 * handed to `ready` before the file's tests, closed and dropped after them.
 */
export function useTestDatabase(label: string, max: number, ready: (db: Db, database: TestDatabase) => void): void {
  let database: TestDatabase | undefined;
  let db: Db | undefined;
  beforeAll(async () => {
    database = await createTestDatabase(label);
    db = connect(database.url, { max });
    ready(db, database);
  });
  afterAll(async () => {
    if (db) await close(db);
    await database?.drop();
  });
}

/** Stands in for the pipeline's content hash. */
export const hashOf = (type: string, attributes: Record<string, unknown>) => `${type}:${JSON.stringify(attributes)}`;

/** An account and one LDAP integration of it. */
export interface Tenant {
  readonly accountId: string;
  readonly integrationId: string;
}

/** Inserts a fresh account with one LDAP integration. */
export async function newTenant(db: Db): Promise<Tenant> {
  const [account] = await db.$client<{ id: string }[]>`insert into accounts (name) values (${randomUUID()}) returning id`;
  return { accountId: account!.id, integrationId: await newIntegration(db, account!.id) };
}

/** Inserts another LDAP integration of `accountId` (a name of its own) and returns its id. */
export async function newIntegration(db: Db, accountId: string): Promise<string> {
  const [integration] = await db.$client<{ id: string }[]>`
    insert into integrations (account_id, kind, name, settings) values (${accountId}, 'ldap', ${randomUUID()}, '{}') returning id`;
  return integration!.id;
}
