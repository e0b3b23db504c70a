import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/** Redis URL tests use; the machine's own Redis unless TEST_REDIS_URL names another. */
export const testRedisUrl = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/** A BullMQ key prefix of its own for one test file, removed by `cleanup`. */
export interface TestQueuePrefix {
  readonly prefix: string;
  cleanup(): Promise<void>;
}

/** Makes a unique queue prefix so test files never share queues. */
export function createTestQueuePrefix(label: string): TestQueuePrefix {
  const prefix = `dirsync-test-${label.replace(/[^a-z0-9]/gi, '-').toLowerCase()}-${randomBytes(4).toString('hex')}`;
  return {
    prefix,
    async cleanup() {
      const redis = new Redis(testRedisUrl, { maxRetriesPerRequest: 3 });
      try {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length > 0) await redis.del(...keys);
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }
    },
  };
}
