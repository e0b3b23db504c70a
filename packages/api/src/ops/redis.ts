import type { RedisOptions } from 'ioredis';
import { openRedis as openQueueRedis, type RedisClient, type RedisConnection } from '@dirsync/jobs';

/**
 * Opens a connection through the queue layer's `openRedis` (standalone or cluster, from the
 * installation's settings), with `extra` options winning and errors handed to `onError`.
 */
export function openRedis(connection: RedisConnection, extra: Omit<RedisOptions, 'replyMapping'> = {}, onError: (error: Error) => void = () => {}): RedisClient {
  return openQueueRedis(connection, 'client', { extra, onError });
}
