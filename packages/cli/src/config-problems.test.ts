import { loadConfig } from './config.ts';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    return (error instanceof Error ? error.message : String(error)).split('\n').slice(1);
  }
  return [];
}

test('a setting two checks refuse alike is one line of the configuration error, as each other problem', () => {
  expect(problemsOf({ DATABASE_URL: 'not-a-url' })).toEqual(['  - DATABASE_URL must be a postgres:// URL']);
  expect(problemsOf({ DATABASE_URL: 'mysql://db/x', DIRSYNC_SYNC_SHARDS: '0' })).toEqual(['  - DATABASE_URL must be a postgres:// URL', '  - DIRSYNC_SYNC_SHARDS must be 1–256']);
});
