import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createTestQueuePrefix, testRedisUrl, type TestQueuePrefix } from '@dirsync/testkit';
import { leaderLeaseKey, startLeaderElection, type LeaderElection, type LeaderElectionOptions } from '../../src/index.ts';

/** Short leases: a lost leader is replaced within seconds. */
export const fastLease = { ttlMs: 2_000, renewEveryMs: 200 };

/** The child process that holds a lease until killed (`node <script> <json options>`). */
export const leaseHolderScript = fileURLToPath(new URL('./lease-holder.ts', import.meta.url));

/** What the election tests share: a queue prefix, a Redis client to look at keys, and elections closed after each test. */
export interface ElectionBed {
  /** The file's own queue prefix (removed after the file). */
  prefix(): TestQueuePrefix;
  /** A plain client on the test Redis, to read and change keys as an outsider would. */
  redis(): Redis;
  /** A lease key under the prefix that no other test of the file uses. */
  freshKey(): string;
  /** Starts an election on the test Redis (fast leases unless `timing` says otherwise), closed after the test. */
  elect(options: Partial<LeaderElectionOptions> & Pick<LeaderElectionOptions, 'key'>): LeaderElection;
  /** Runs `fn` after the current test (last registered, first run). */
  afterTest(fn: () => Promise<unknown>): void;
}

/** Registers the file's hooks and returns its {@link ElectionBed}; `label` names its prefix and keys. */
export function useElectionBed(label: string): ElectionBed {
  let prefix: TestQueuePrefix | undefined;
  let redis: Redis | undefined;
  let keys = 0;
  const teardown: Array<() => Promise<unknown>> = [];

  beforeAll(() => {
    prefix = createTestQueuePrefix(label);
    redis = new Redis(testRedisUrl);
  });
  afterEach(async () => {
    while (teardown.length > 0) await teardown.pop()?.();
  });
  afterAll(async () => {
    await prefix?.cleanup();
    redis?.disconnect();
  });

  const need = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the election bed is used before its beforeAll ran');
    return value;
  };
  return {
    prefix: () => need(prefix),
    redis: () => need(redis),
    freshKey() {
      keys += 1;
      return leaderLeaseKey(need(prefix).prefix, `${label}-${keys}`);
    },
    elect(options) {
      const election = startLeaderElection({ connection: testRedisUrl, timing: fastLease, ...options });
      teardown.push(() => election.close());
      return election;
    },
    afterTest: (fn) => void teardown.push(fn),
  };
}
