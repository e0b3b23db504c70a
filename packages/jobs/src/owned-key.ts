import type { RedisClient } from './redis.ts';

// An owned key is a Redis key whose value is its holder's token, with a TTL so a killed holder
// frees it by itself. Every operation names the one key, so it works on Redis Cluster as it is.

// Compare-and-act: only the holder of the token may extend or delete the key, so a holder whose
// key expired can never prolong or free the key another holder took since.
const renewScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

/**
 * Sets `key` to `token` for `ttlMs` if nobody holds it (`SET NX PX`). True when this call took
 * it; false when the key exists, whoever holds it (this token included).
 */
export async function acquireOwnedKey(redis: RedisClient, key: string, token: string, ttlMs: number): Promise<boolean> {
  return (await redis.set(key, token, 'PX', ttlMs, 'NX')) === 'OK';
}

/**
 * Resets the key's lifetime to `ttlMs` if it still holds `token`. False when it expired or
 * another holder has taken it since: the caller no longer holds it.
 */
export async function renewOwnedKey(redis: RedisClient, key: string, token: string, ttlMs: number): Promise<boolean> {
  return (await redis.eval(renewScript, 1, key, token, String(ttlMs))) === 1;
}

/** Deletes the key if it still holds `token`; true when it did. Another holder's key is left alone. */
export async function releaseOwnedKey(redis: RedisClient, key: string, token: string): Promise<boolean> {
  return (await redis.eval(releaseScript, 1, key, token)) === 1;
}
