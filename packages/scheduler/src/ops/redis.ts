import { Redis, type RedisOptions } from 'ioredis';
import type { RedisConnection } from '@dirsync/jobs';

/** Opens an ioredis connection from a URL or options (`extra` wins), with errors handed to `onError`. */
export function openRedis(connection: RedisConnection, extra: Omit<RedisOptions, 'replyMapping'> = {}, onError: (error: Error) => void = () => {}): Redis {
  const redis = typeof connection === 'string' ? new Redis(connection, extra) : new Redis({ ...connection, ...extra });
  redis.on('error', onError);
  return redis;
}
