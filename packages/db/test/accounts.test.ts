import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { close, connect, ConflictError, createAccount, getAccount, InvalidInputError, listAccounts, type Db } from '../src/index.ts';

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase('accounts');
  db = connect(database.url, { max: 2 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

test('accounts are created, listed by name and found by id or name', async () => {
  const zeta = await createAccount(db, { name: 'zeta' });
  const acme = await createAccount(db, { name: '  acme ' });
  expect(acme.name).toBe('acme');
  expect(acme.createdAt).toBeInstanceOf(Date);

  expect((await listAccounts(db)).map((a) => a.name)).toEqual(['acme', 'zeta']);
  expect((await getAccount(db, zeta.id))?.name).toBe('zeta');
  expect((await getAccount(db, 'acme'))?.id).toBe(acme.id);
  expect(await getAccount(db, 'nobody')).toBeUndefined();
  expect(await getAccount(db, '00000000-0000-4000-8000-000000000000')).toBeUndefined();
});

test('a duplicate or empty account name is refused with a clear error', async () => {
  await createAccount(db, { name: 'globex' });
  await expect(createAccount(db, { name: 'globex' })).rejects.toThrow(ConflictError);
  await expect(createAccount(db, { name: 'globex' })).rejects.toThrow('an account named "globex" already exists');
  await expect(createAccount(db, { name: '  ' })).rejects.toThrow(InvalidInputError);
});
