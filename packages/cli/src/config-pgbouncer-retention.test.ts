import { ConfigurationError, databasePoolOptions, loadConfig } from './config.ts';

test('database pool settings default to a direct connection with a 300 s statement timeout', () => {
  const config = loadConfig({});
  expect(databasePoolOptions(config)).toEqual({
    max: 10,
    idleTimeoutSeconds: 60,
    connectTimeoutSeconds: 5,
    statementTimeoutSeconds: 300,
    pgbouncer: false,
  });
});

test('PgBouncer mode and the statement timeout are read and checked', () => {
  const config = loadConfig({ DIRSYNC_DB_PGBOUNCER: 'on', DIRSYNC_DB_STATEMENT_TIMEOUT_SECONDS: '0', DIRSYNC_DB_POOL_MAX: '4' });
  expect(databasePoolOptions(config)).toMatchObject({ pgbouncer: true, statementTimeoutSeconds: 0, max: 4 });
  expect(() => loadConfig({ DIRSYNC_DB_PGBOUNCER: 'maybe' })).toThrow(/DIRSYNC_DB_PGBOUNCER must be true or false/);
  expect(() => loadConfig({ DIRSYNC_DB_STATEMENT_TIMEOUT_SECONDS: '-1' })).toThrow(/DIRSYNC_DB_STATEMENT_TIMEOUT_SECONDS must be 0–86400/);
});

test('retention settings have defaults, 0 keeps for ever, and out-of-range values are refused together', () => {
  const defaults = loadConfig({});
  expect([defaults.DIRSYNC_RUN_RETENTION_DAYS, defaults.DIRSYNC_RUN_RETENTION_KEEP, defaults.DIRSYNC_AUDIT_RETENTION_DAYS]).toEqual([30, 50, 365]);
  const forever = loadConfig({ DIRSYNC_RUN_RETENTION_DAYS: '0', DIRSYNC_AUDIT_RETENTION_DAYS: '0' });
  expect([forever.DIRSYNC_RUN_RETENTION_DAYS, forever.DIRSYNC_AUDIT_RETENTION_DAYS]).toEqual([0, 0]);
  let error: unknown;
  try {
    loadConfig({ DIRSYNC_RUN_RETENTION_KEEP: '0', DIRSYNC_AUDIT_RETENTION_DAYS: 'soon' });
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(ConfigurationError);
  expect((error as Error).message).toContain('DIRSYNC_RUN_RETENTION_KEEP must be 1–100000');
  expect((error as Error).message).toContain('DIRSYNC_AUDIT_RETENTION_DAYS');
});
