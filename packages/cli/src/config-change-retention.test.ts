import { ConfigurationError, loadConfig } from './config.ts';

test('change feed retention defaults to a week, 0 keeps entries for ever, and anything else out of range is refused', () => {
  expect(loadConfig({}).DIRSYNC_CHANGE_RETENTION_HOURS).toBe(168);
  expect(loadConfig({ DIRSYNC_CHANGE_RETENTION_HOURS: '0' }).DIRSYNC_CHANGE_RETENTION_HOURS).toBe(0);
  expect(loadConfig({ DIRSYNC_CHANGE_RETENTION_HOURS: '24' }).DIRSYNC_CHANGE_RETENTION_HOURS).toBe(24);
  for (const value of ['-1', '876001', '1.5', 'a week']) {
    let error: unknown;
    try {
      loadConfig({ DIRSYNC_CHANGE_RETENTION_HOURS: value });
    } catch (caught) {
      error = caught;
    }
    expect([value, error instanceof ConfigurationError]).toEqual([value, true]);
    expect((error as Error).message).toContain('DIRSYNC_CHANGE_RETENTION_HOURS');
  }
});
