import postgres from 'postgres';

/**
 * Drops the database named in `url` (connecting to the `postgres` database of the same server),
 * closing the sessions still connected to it: for throwaway databases such as a demo run's,
 * which must not outlive the run. Nothing happens when it does not exist.
 */
export async function dropDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`database name "${name}" is not allowed`);
  if (name === 'postgres' || name.startsWith('template')) throw new Error(`database "${name}" is not a throwaway database`);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
