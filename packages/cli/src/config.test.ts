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

  test('API and operations settings have defaults and are checked', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ PORT: 8080, DIRSYNC_SCHEDULER_API: true, DIRSYNC_METRICS_PORT: 9464, DIRSYNC_API_RATE_LIMIT: 600, DIRSYNC_CONTROL_TIMEOUT_SECONDS: 30 });
    expect(loadConfig({ DIRSYNC_SCHEDULER_API: 'off', PORT: '9000' })).toMatchObject({ DIRSYNC_SCHEDULER_API: false, PORT: 9000 });
    expect(() => loadConfig({ PORT: '70000', DIRSYNC_SCHEDULER_API: 'maybe' })).toThrow(/PORT must be 0–65535[\s\S]*DIRSYNC_SCHEDULER_API must be true or false/);
  });

  test('run limits have defaults and bounds', () => {
    expect(loadConfig({})).toMatchObject({ DIRSYNC_MAX_OBJECTS_PER_RUN: 5_000_000, DIRSYNC_MAX_RUN_MINUTES: 360 });
    expect(loadConfig({ DIRSYNC_MAX_OBJECTS_PER_RUN: '20000', DIRSYNC_MAX_RUN_MINUTES: '30' })).toMatchObject({ DIRSYNC_MAX_OBJECTS_PER_RUN: 20_000, DIRSYNC_MAX_RUN_MINUTES: 30 });
    expect(() => loadConfig({ DIRSYNC_MAX_OBJECTS_PER_RUN: '10', DIRSYNC_MAX_RUN_MINUTES: '0' })).toThrow(
      /DIRSYNC_MAX_OBJECTS_PER_RUN must be 1000–100000000[\s\S]*DIRSYNC_MAX_RUN_MINUTES must be 1–10080/,
    );
  });

  test('the Entra consent grace has defaults and bounds', () => {
    expect(loadConfig({})).toMatchObject({ DIRSYNC_CONSENT_GRACE_MINUTES: 30, DIRSYNC_CONSENT_FAILURES_TO_REVOKE: 3 });
    expect(loadConfig({ DIRSYNC_CONSENT_GRACE_MINUTES: '0', DIRSYNC_CONSENT_FAILURES_TO_REVOKE: '1' })).toMatchObject({ DIRSYNC_CONSENT_GRACE_MINUTES: 0, DIRSYNC_CONSENT_FAILURES_TO_REVOKE: 1 });
    expect(() => loadConfig({ DIRSYNC_CONSENT_GRACE_MINUTES: '-1', DIRSYNC_CONSENT_FAILURES_TO_REVOKE: '0' })).toThrow(
      /DIRSYNC_CONSENT_GRACE_MINUTES must be 0–1440[\s\S]*DIRSYNC_CONSENT_FAILURES_TO_REVOKE must be 1–100/,
    );
  });

  test('allowed networks are parsed as CIDRs and reported with the other problems', () => {
    expect(loadConfig({}).DIRSYNC_ALLOWED_NETWORKS).toEqual([]);
    expect(loadConfig({ DIRSYNC_ALLOWED_NETWORKS: '10.20.0.0/16, fd12:3456::/48' }).DIRSYNC_ALLOWED_NETWORKS.map((n) => n.text)).toEqual(['10.20.0.0/16', 'fd12:3456::/48']);
    let message = '';
    try {
      loadConfig({ DIRSYNC_ALLOWED_NETWORKS: '10.20.0.0/16,10.1.0.0/8,vpn,0.0.0.0/0', REDIS_URL: 'nope' });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigurationError);
      message = (error as Error).message;
    }
    expect(message).toContain('REDIS_URL');
    expect(message).toContain('DIRSYNC_ALLOWED_NETWORKS: "10.1.0.0/8" has host bits set; did you mean 10.0.0.0/8?');
    expect(message).toContain('DIRSYNC_ALLOWED_NETWORKS: "vpn" is not a network in CIDR notation');
    expect(message).toContain('DIRSYNC_ALLOWED_NETWORKS: "0.0.0.0/0" would allow every address');
  });
});

describe('the README', () => {
  test('documents every setting in its configuration table', async () => {
    const { readFile } = await import('node:fs/promises');
    const { configSchema } = await import('./config.ts');
    const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8');
    const documented = new Set([...readme.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map((m) => m[1]));
    const undocumented = Object.keys(configSchema.shape).filter((name) => !documented.has(name));
    expect(undocumented).toEqual([]);
  });
});
