import { Cluster, type Redis } from 'ioredis';
import { closeRedis, openRedis, type RedisClient, type RedisConnection } from './redis.ts';

async function deleteMatching(node: Redis, pattern: string): Promise<number> {
  let removed = 0;
  let cursor = '0';
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    // One key per command: in a cluster the keys of one page live in different slots.
    for (const key of keys) removed += await node.del(key);
  } while (cursor !== '0');
  return removed;
}

/**
 * Deletes every key under a queue prefix (`<prefix>:*`), on every primary of a cluster: for
 * throwaway prefixes such as a demo run's, whose queues must not outlive the run. Returns how
 * many keys it deleted.
 */
export async function removeQueuePrefix(connection: RedisConnection, prefix: string): Promise<number> {
  if (!/^[A-Za-z0-9_.-]+$/.test(prefix)) throw new Error(`queue prefix "${prefix}" is not a plain name`);
  const client: RedisClient = openRedis(connection, 'client');
  try {
    const pattern = `${prefix}:*`;
    if (client instanceof Cluster) {
      // The node list is known once the slot map is: after the first command.
      await client.ping();
      let removed = 0;
      for (const node of client.nodes('master')) removed += await deleteMatching(node, pattern);
      return removed;
    }
    return await deleteMatching(client, pattern);
  } finally {
    await closeRedis(client);
  }
}
