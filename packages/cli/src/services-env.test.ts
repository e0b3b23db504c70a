import { childEnvironment } from './services.ts';
import { loadConfig } from './config.ts';

describe('childEnvironment', () => {
  test("a setting given to a child replaces the parent's value and its <NAME>_FILE; the rest is inherited", () => {
    const parent = { DATABASE_URL_FILE: '/run/secrets/database-url', REDIS_URL_FILE: '/run/secrets/redis-url', LOG_LEVEL: 'debug', PATH: '/usr/bin' };
    const env = childEnvironment(parent, { DATABASE_URL: 'postgres://127.0.0.1:5432/demo_1', LOG_LEVEL: 'info' });
    expect(env).toEqual({ REDIS_URL_FILE: '/run/secrets/redis-url', DATABASE_URL: 'postgres://127.0.0.1:5432/demo_1', LOG_LEVEL: 'info', PATH: '/usr/bin' });
    // Without it the child would refuse its configuration.
    expect(() => loadConfig({ ...parent, DATABASE_URL: 'postgres://127.0.0.1:5432/demo_1' })).toThrow('DATABASE_URL and DATABASE_URL_FILE are both set');
    expect(parent.DATABASE_URL_FILE).toBe('/run/secrets/database-url');
  });
});
