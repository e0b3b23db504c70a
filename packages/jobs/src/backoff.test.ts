import { computeBackoffDelay, DEFAULT_BACKOFF_POLICY, SYNC_BACKOFF_TYPE, syncBackoffStrategy } from './backoff.ts';
import { defaultSyncJobOptions } from './job-options.ts';

const policy = { baseMs: 1000, maxMs: 30_000 };

describe('computeBackoffDelay', () => {
  test.each([
    // attempt, lowest (random 0), highest (random 1)
    [1, 500, 1000],
    [2, 1000, 2000],
    [3, 2000, 4000],
    [4, 4000, 8000],
    [5, 8000, 16_000],
    [6, 15_000, 30_000], // capped
    [40, 15_000, 30_000],
  ])('retry %i waits between %i and %i ms', (attempt, low, high) => {
    expect(computeBackoffDelay(attempt, policy, () => 0)).toBe(low);
    expect(computeBackoffDelay(attempt, policy, () => 1)).toBe(high);
    expect(computeBackoffDelay(attempt, policy, () => 0.5)).toBe(Math.floor((low + high) / 2));
  });

  test('stays within the bounds for many random draws', () => {
    for (let attempt = 1; attempt <= 8; attempt++) {
      const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
      for (let i = 0; i < 200; i++) {
        const delay = computeBackoffDelay(attempt, policy);
        expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
        expect(delay).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  test('spreads delays (jitter is not constant)', () => {
    const delays = new Set(Array.from({ length: 50 }, () => computeBackoffDelay(3, policy)));
    expect(delays.size).toBeGreaterThan(10);
  });

  test('a random source outside [0, 1] cannot break the bounds', () => {
    expect(computeBackoffDelay(1, policy, () => -3)).toBe(500);
    expect(computeBackoffDelay(1, policy, () => 7)).toBe(1000);
  });
});

describe('syncBackoffStrategy', () => {
  test('uses the job backoff delay as base', async () => {
    const job = { opts: { backoff: { type: SYNC_BACKOFF_TYPE, delay: 2000 } } } as unknown as Parameters<typeof syncBackoffStrategy>[3];
    const delay = await syncBackoffStrategy(2, SYNC_BACKOFF_TYPE, new Error('x'), job);
    expect(delay).toBeGreaterThanOrEqual(2000);
    expect(delay).toBeLessThanOrEqual(4000);
  });

  test('falls back to the default policy without a job', async () => {
    const delay = await syncBackoffStrategy(1, SYNC_BACKOFF_TYPE);
    expect(delay).toBeGreaterThanOrEqual(DEFAULT_BACKOFF_POLICY.baseMs / 2);
    expect(delay).toBeLessThanOrEqual(DEFAULT_BACKOFF_POLICY.baseMs);
  });

  test('default job options name this strategy and retry', () => {
    expect(defaultSyncJobOptions.backoff.type).toBe(SYNC_BACKOFF_TYPE);
    expect(defaultSyncJobOptions.attempts).toBeGreaterThan(1);
  });
});
