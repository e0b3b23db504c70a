import { asc, eq } from 'drizzle-orm';
import type { Db } from './client.ts';
import { ConflictError, InvalidInputError, pgCodes, pgErrorOf } from './errors.ts';
import { isUuid } from './ids.ts';
import { accounts } from './schema.ts';

/** A tenant, as stored. */
export type Account = typeof accounts.$inferSelect;

/** Input of {@link createAccount}. */
export interface NewAccount {
  name: string;
}

/** Creates an account. Throws {@link ConflictError} when the name is taken, {@link InvalidInputError} when it is empty. */
export async function createAccount(db: Db, input: NewAccount): Promise<Account> {
  const name = input.name.trim();
  if (name === '') throw new InvalidInputError('account name must not be empty');
  try {
    const [row] = await db.insert(accounts).values({ name }).returning();
    if (!row) throw new Error('insert returned no row');
    return row;
  } catch (error) {
    if (pgErrorOf(error)?.code === pgCodes.uniqueViolation) {
      throw new ConflictError(`an account named "${name}" already exists`);
    }
    throw error;
  }
}

/** Every account, by name. */
export async function listAccounts(db: Db): Promise<Account[]> {
  return db.select().from(accounts).orderBy(asc(accounts.name));
}

/** The account with this id, or else this name; undefined when there is none. */
export async function getAccount(db: Db, idOrName: string): Promise<Account | undefined> {
  if (isUuid(idOrName)) {
    const [byId] = await db.select().from(accounts).where(eq(accounts.id, idOrName));
    if (byId) return byId;
  }
  const [byName] = await db.select().from(accounts).where(eq(accounts.name, idOrName));
  return byName;
}
