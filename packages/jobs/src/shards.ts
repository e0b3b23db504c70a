import { createHash } from 'node:crypto';

// Shard numbers only: no queue name and no Redis client here, so that a process's settings can be
// checked without loading either (see settings.ts).

/** Most sync shards an installation may have (each is a BullMQ queue every worker polls). */
export const MAX_SYNC_SHARDS = 256;

/** Validates a shard count. */
export function checkShardCount(shards: number): number {
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SYNC_SHARDS) {
    throw new RangeError(`the sync shard count must be an integer 1–${MAX_SYNC_SHARDS}`);
  }
  return shards;
}

/**
 * The shard of an integration: a stable hash of its id (the first 32 bits of its SHA-256), so
 * every producer in every process sends an integration's syncs to the same queue, which is what
 * keeps one waiting sync per integration.
 */
export function syncShardOf(integrationId: string, shards: number): number {
  if (shards === 1) return 0;
  const digest = createHash('sha256').update(integrationId.toLowerCase()).digest();
  return digest.readUInt32BE(0) % shards;
}

/**
 * Parses a shard selection such as `0-3,7` (`DIRSYNC_WORKER_SHARDS`) against `shards`; empty or
 * `all` selects every shard. Returns the shard numbers in ascending order; throws a message
 * naming the bad part.
 */
export function parseShardSelection(selection: string | undefined, shards: number): number[] {
  checkShardCount(shards);
  const text = (selection ?? '').trim();
  if (text === '' || text.toLowerCase() === 'all') return Array.from({ length: shards }, (_, index) => index);
  const chosen = new Set<number>();
  for (const part of text.split(',').map((p) => p.trim())) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!match) throw new RangeError(`shard selection: "${part}" is not a shard number or a range like 0-3`);
    const from = Number(match[1]);
    const to = match[2] === undefined ? from : Number(match[2]);
    if (to < from) throw new RangeError(`shard selection: the range ${part} runs backwards`);
    if (to >= shards) throw new RangeError(`shard selection: ${part} names a shard past the last one (${shards - 1})`);
    for (let shard = from; shard <= to; shard++) chosen.add(shard);
  }
  return [...chosen].sort((a, b) => a - b);
}
