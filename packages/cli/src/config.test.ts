import { ConfigurationError, loadConfig } from './config.ts';

describe('loadConfig', () => {
  test('defaults to the local Postgres and Redis', () => {
    const config = loadConfig({});
    expect(config.DATABASE_URL).toBe('postgres://postgres@127.0.0.1:5432/dirsync');
    expect(config.REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(config.DIRSYNC_SECRET_KEYS_PREVIOUS).toEqual([]);
  });

  test('reports every problem together', () => {
    let error: unknown;
    try {
      loadConfig({ DATABASE_URL: 'mysql://x', REDIS_URL: 'nope', DIRSYNC_WORKER_CONCURRENCY: '0' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    const message = (error as Error).message;
    expect(message).toContain('DATABASE_URL');
    expect(message).toContain('REDIS_URL');
    expect(message).toContain('DIRSYNC_WORKER_CONCURRENCY');
  });

  test('splits previous secret keys', () => {
    expect(loadConfig({ DIRSYNC_SECRET_KEYS_PREVIOUS: 'a, b,' }).DIRSYNC_SECRET_KEYS_PREVIOUS).toEqual(['a', 'b']);
  });
});
