import { CONTROL_QUEUE, ROTATION_QUEUE, SYNC_QUEUE, WEBHOOK_QUEUE } from './queues.ts';
import { redisModeOf, syncShardsOf, type RedisConnection, type RedisMode } from './redis.ts';
import { checkShardCount } from './shards.ts';

/** Slots of a Redis Cluster (the key space is split into this many). */
export const CLUSTER_SLOTS = 16_384;

/** The queues of one installation: their names follow from the Redis mode and the shard count. */
export interface QueueLayout {
  readonly mode: RedisMode;
  /** Sync queue names, index = shard number. */
  readonly sync: readonly string[];
  readonly control: string;
  readonly rotation: string;
  readonly webhook: string;
  /** Every queue (sync shards first), for tooling that lists them. */
  readonly all: readonly string[];
}

// CRC16-XMODEM, the checksum Redis Cluster maps keys to slots with (cluster spec, "Keys
// distribution model": HASH_SLOT = CRC16(key) mod 16384).
const crcTable = (() => {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[byte] = crc;
  }
  return table;
})();

function crc16(data: Buffer): number {
  let crc = 0;
  for (const byte of data) crc = ((crc << 8) & 0xffff) ^ (crcTable[((crc >> 8) ^ byte) & 0xff] as number);
  return crc;
}

/**
 * The cluster slot of `key`. As the cluster spec's hash tags say: when the key holds a `{` with a
 * `}` after it and at least one character between them, only that first tag is hashed.
 */
export function clusterKeySlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % CLUSTER_SLOTS;
  }
  return crc16(bytes) % CLUSTER_SLOTS;
}

/** Whether a key prefix holds a hash tag of its own (then every queue shares that one slot). */
export function prefixHasHashTag(prefix: string): boolean {
  return /\{[^}]+\}/.test(prefix);
}

/**
 * The hash-tagged name of a queue in cluster mode: `{base}`, or `{base.tK}` with the smallest K
 * whose slot falls in the middle half of `range` (the shard's share of the slot space). A
 * cluster made by `redis-cli --cluster create` gives each primary an equal run of slots, so
 * shards picked this way land on the primaries in turn instead of wherever the names happen to
 * hash.
 */
function taggedName(base: string, range?: { index: number; of: number }): string {
  if (range === undefined || range.of === 1) return `{${base}}`;
  const width = CLUSTER_SLOTS / range.of;
  const low = Math.floor(range.index * width + width / 4);
  const high = Math.ceil(range.index * width + (3 * width) / 4);
  for (let k = 0; ; k++) {
    const tag = k === 0 ? base : `${base}.t${k}`;
    const slot = clusterKeySlot(`{${tag}}`);
    if (slot >= low && slot < high) return `{${tag}}`;
  }
}

/**
 * The queue names of an installation. Standalone keeps the names of earlier versions
 * (`dirsync-sync`, `dirsync-control`, `dirsync-rotation`), shards past the first being
 * `dirsync-sync-1`…; so one shard is exactly the old single queue, and shard 0 keeps it when an
 * installation starts sharding. Cluster mode wraps every name in a hash tag (BullMQ's "Redis
 * Cluster" pattern: all keys of one queue in one slot, as its scripts need), picked per sync
 * shard so the shards spread over the cluster's slots.
 */
export function queueLayout(mode: RedisMode, syncShards = 1): QueueLayout {
  checkShardCount(syncShards);
  const syncBase = (index: number) => (index === 0 ? SYNC_QUEUE : `${SYNC_QUEUE}-${index}`);
  const sync = Array.from({ length: syncShards }, (_, index) =>
    mode === 'cluster' ? taggedName(syncBase(index), { index, of: syncShards }) : syncBase(index),
  );
  const control = mode === 'cluster' ? taggedName(CONTROL_QUEUE) : CONTROL_QUEUE;
  const rotation = mode === 'cluster' ? taggedName(ROTATION_QUEUE) : ROTATION_QUEUE;
  const webhook = mode === 'cluster' ? taggedName(WEBHOOK_QUEUE) : WEBHOOK_QUEUE;
  return { mode, sync, control, rotation, webhook, all: [...sync, control, rotation, webhook] };
}

/** The {@link QueueLayout} a connection's settings stand for. */
export function queueLayoutOf(connection: RedisConnection): QueueLayout {
  return queueLayout(redisModeOf(connection), syncShardsOf(connection));
}
