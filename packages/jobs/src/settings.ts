/**
 * What a process's settings need from the queue layer (shard counts and selections, cron
 * schedules, the shape of Redis settings), without the Redis client or BullMQ: a command that
 * never touches the queue checks its configuration with this entry alone and loads the rest
 * (`@dirsync/jobs`) only when it enqueues.
 */
export { MAX_SYNC_SHARDS, parseShardSelection } from './shards.ts';
export { type CronValidation, type ScheduleValidation, validateCron, validateSchedule } from './cron.ts';
export type { RedisSettings } from './redis.ts';
