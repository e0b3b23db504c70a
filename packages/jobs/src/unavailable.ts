import type { RedisOptions } from 'ioredis';

/** Thrown instead of waiting when the queue's Redis connection is not up. */
export class QueueUnavailableError extends Error {
  constructor(message = 'the queue (Redis) cannot be reached right now') {
    super(message);
    this.name = 'QueueUnavailableError';
  }
}

/**
 * ioredis settings for connections that serve requests: a command fails at once while the
 * connection is down (no offline queue, no retries) and after `commandTimeout` on a server
 * that accepted the connection but does not answer, instead of waiting for a reconnect.
 */
export const failFastRedisOptions: Readonly<Pick<RedisOptions, 'enableOfflineQueue' | 'maxRetriesPerRequest' | 'commandTimeout' | 'connectTimeout'>> = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  commandTimeout: 900,
  connectTimeout: 2_000,
};

/** Throws {@link QueueUnavailableError} unless `redis` is connected and ready. */
export function requireReady(redis: { readonly status: string }): void {
  if (redis.status !== 'ready') throw new QueueUnavailableError();
}

/**
 * Resolves once `redis` is connected and ready; rejects with {@link QueueUnavailableError} when it
 * is not within `timeoutMs` (connection refused, wrong password, a server that never answers).
 */
export async function awaitReady(redis: { readonly status: string; once(event: 'ready', listener: () => void): unknown; off(event: 'ready', listener: () => void): unknown }, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const ready = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      redis.off('ready', ready);
      reject(new QueueUnavailableError());
    }, timeoutMs);
    redis.once('ready', ready);
  });
}

// Errors that say the server cannot serve now, not that the request was wrong: connection
// trouble reported by ioredis or the socket, and the replies of a cluster node or a server that
// is loading, read-only or down.
const unavailableMessage =
  /Connection is closed|enableOfflineQueue|Command timed out|Reached the max retries|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|EPIPE|^(MOVED|ASK|CLUSTERDOWN|LOADING|READONLY|TRYAGAIN|MASTERDOWN|BUSY)\b/;

/** True when `error` means the queue's Redis cannot be used right now (a retry later may work). */
export function isQueueUnavailable(error: unknown): boolean {
  if (error instanceof QueueUnavailableError) return true;
  // Duck-typed: socket errors may come from another realm, where `instanceof Error` is false.
  if (typeof error !== 'object' || error === null) return false;
  const { name, message } = error as { name?: unknown; message?: unknown };
  if (name === 'MaxRetriesPerRequestError') return true;
  return typeof message === 'string' && unavailableMessage.test(message);
}
