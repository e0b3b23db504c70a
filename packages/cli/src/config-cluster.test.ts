import { loadConfig, redisSettingsOf, workerShardsOf } from './config.ts';

describe('Redis cluster and shard settings', () => {
  it('default to one standalone Redis and the single sync queue', () => {
    const config = loadConfig({});
    expect(redisSettingsOf(config)).toEqual({ url: 'redis://127.0.0.1:6379', mode: 'standalone', syncShards: 1 });
    expect(workerShardsOf(config)).toEqual([0]);
  });

  it('take seed lists, TLS URLs with credentials, shard selections and {…} prefixes in cluster mode', () => {
    const config = loadConfig({
      DIRSYNC_REDIS_MODE: 'cluster',
      REDIS_URL: 'rediss://default:s3cret@node-a.example:6380, rediss://default:s3cret@node-b.example:6380',
      DIRSYNC_SYNC_SHARDS: '8',
      DIRSYNC_WORKER_SHARDS: '0-3,7',
      DIRSYNC_QUEUE_PREFIX: '{dirsync}',
    });
    expect(redisSettingsOf(config)).toMatchObject({ mode: 'cluster', syncShards: 8 });
    expect(workerShardsOf(config)).toEqual([0, 1, 2, 3, 7]);
    expect(config.DIRSYNC_QUEUE_PREFIX).toBe('{dirsync}');
  });

  it('refuse a node list without cluster mode, shards past the count and broken tags, without echoing the URL', () => {
    let message = '';
    try {
      loadConfig({ REDIS_URL: 'redis://:pw-1234@a:7000,redis://:pw-1234@b:7001', DIRSYNC_SYNC_SHARDS: '4', DIRSYNC_WORKER_SHARDS: '2-5' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('DIRSYNC_REDIS_MODE=cluster');
    expect(message).toContain('DIRSYNC_WORKER_SHARDS');
    expect(message).not.toContain('pw-1234');
    expect(() => loadConfig({ DIRSYNC_QUEUE_PREFIX: 'dirsync{' })).toThrow(/DIRSYNC_QUEUE_PREFIX/);
    expect(() => loadConfig({ DIRSYNC_SYNC_SHARDS: '0' })).toThrow(/DIRSYNC_SYNC_SHARDS/);
  });
});
