import { loadConfig } from './config.ts';

test('sync limits default to 4 per account, 1 full per account, 4 per server and a 1 s retry', () => {
  const config = loadConfig({});
  expect([config.DIRSYNC_ACCOUNT_CONCURRENCY, config.DIRSYNC_ACCOUNT_FULL_CONCURRENCY, config.DIRSYNC_HOST_CONCURRENCY, config.DIRSYNC_LIMIT_RETRY_SECONDS]).toEqual([4, 1, 4, 1]);
});

test('0 turns a limit off; out-of-range values are refused with the setting named', () => {
  const off = loadConfig({ DIRSYNC_ACCOUNT_CONCURRENCY: '0', DIRSYNC_HOST_CONCURRENCY: '0', DIRSYNC_LIMIT_RETRY_SECONDS: '0.25' });
  expect([off.DIRSYNC_ACCOUNT_CONCURRENCY, off.DIRSYNC_HOST_CONCURRENCY, off.DIRSYNC_LIMIT_RETRY_SECONDS]).toEqual([0, 0, 0.25]);
  expect(() => loadConfig({ DIRSYNC_ACCOUNT_CONCURRENCY: '-1' })).toThrow(/DIRSYNC_ACCOUNT_CONCURRENCY must be 0–1000/);
  expect(() => loadConfig({ DIRSYNC_ACCOUNT_FULL_CONCURRENCY: '2.5' })).toThrow(/DIRSYNC_ACCOUNT_FULL_CONCURRENCY/);
  expect(() => loadConfig({ DIRSYNC_HOST_CONCURRENCY: 'many' })).toThrow(/DIRSYNC_HOST_CONCURRENCY/);
  expect(() => loadConfig({ DIRSYNC_LIMIT_RETRY_SECONDS: '0' })).toThrow(/DIRSYNC_LIMIT_RETRY_SECONDS must be 0.1–300/);
});
