import { createTestDatabase } from '@dirsync/testkit';
import { accounts, close, connect } from './index.ts';

test('a test database is migrated and writable', async () => {
  const database = await createTestDatabase('smoke');
  const db = connect(database.url);
  try {
    const [row] = await db.insert(accounts).values({ name: 'acme' }).returning();
    expect(row?.name).toBe('acme');
  } finally {
    await close(db);
    await database.drop();
  }
});
