import type { RedisClient } from './redis.ts';

/** What {@link inspectWaitingJob} found. */
export type WaitingJobState =
  /** The job is still waiting (wait/paused list, prioritized or delayed set). */
  | { state: 'waiting'; data: string }
  /** It was waiting and its data matched the expected value: the new data is in place. */
  | { state: 'replaced'; data: string }
  /** The job exists but has started or finished; the deduplication key no longer points at it. */
  | { state: 'not_waiting'; data: string }
  /** The job is gone; the deduplication key no longer points at it. */
  | { state: 'missing' };

// One script so that "is it still waiting?" and "change its data" happen in one step: BullMQ
// moves a job to active with a script too, so Redis orders the two and a worker can never start
// a job between the check and the change. A key pointing at a job that is no longer waiting is
// dropped here (only if it still names that job), which is what lets a new request queue a new
// job even when the worker never released the key.
const script = `
local dedupKey, jobKey = KEYS[1], KEYS[2]
local jobId, expected, replacement = ARGV[1], ARGV[2], ARGV[3]
local rcall = redis.call
local function releaseIfOwned()
  if rcall('GET', dedupKey) == jobId then rcall('DEL', dedupKey) end
end
local data = rcall('HGET', jobKey, 'data')
if not data then
  releaseIfOwned()
  return {'missing', ''}
end
local waiting = rcall('LPOS', KEYS[3], jobId) or rcall('LPOS', KEYS[4], jobId)
  or rcall('ZSCORE', KEYS[5], jobId) or rcall('ZSCORE', KEYS[6], jobId)
if not waiting then
  releaseIfOwned()
  return {'not_waiting', data}
end
if expected ~= '' and data == expected then
  rcall('HSET', jobKey, 'data', replacement)
  return {'replaced', replacement}
end
return {'waiting', data}
`;

/** Redis keys of one queue the script needs. */
export interface QueueKeyResolver {
  toKey(type: string): string;
}

/**
 * Atomically reports whether `jobId` is still waiting and, when it is and its stored data equals
 * `expectedData`, replaces the data with `replacementData` (compare-and-set).
 */
export async function inspectWaitingJob(
  redis: RedisClient,
  queue: QueueKeyResolver,
  deduplicationId: string,
  jobId: string,
  swap?: { expectedData: string; replacementData: string },
): Promise<WaitingJobState> {
  const reply = (await redis.eval(
    script,
    6,
    queue.toKey(`de:${deduplicationId}`),
    queue.toKey(jobId),
    queue.toKey('wait'),
    queue.toKey('paused'),
    queue.toKey('prioritized'),
    queue.toKey('delayed'),
    jobId,
    swap?.expectedData ?? '',
    swap?.replacementData ?? '',
  )) as [string, string];
  const [state, data] = reply;
  switch (state) {
    case 'waiting':
    case 'replaced':
    case 'not_waiting':
      return { state, data };
    case 'missing':
      return { state };
    default:
      throw new Error(`unexpected reply from the waiting-job script: ${String(state)}`);
  }
}
