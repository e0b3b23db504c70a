import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { createContext } from './context.ts';

// The pool settings parsed from the environment reach the connections a process opens.

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase('context_pool');
});

afterAll(async () => {
  await database?.drop();
});

test('statement timeout and application name are those of the settings', async () => {
  const ctx = createContext({ DATABASE_URL: database.url, DIRSYNC_DB_STATEMENT_TIMEOUT_SECONDS: '7' });
  ctx.setRole('dirsync-worker');
  try {
    const [row] = await ctx.db().$client<{ timeout: string; name: string }[]>`select current_setting('statement_timeout') as timeout, current_setting('application_name') as name`;
    expect(row).toEqual({ timeout: '7s', name: 'dirsync-worker' });
  } finally {
    await ctx.close();
  }
});
