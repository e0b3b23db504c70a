import { DEFAULT_DELETE_THRESHOLD, deletionVerdict, exceedsThreshold } from './threshold.ts';

const { count, percent } = DEFAULT_DELETE_THRESHOLD;

describe('exceedsThreshold', () => {
  test.each([
    ['nothing to delete', 0, 0, false],
    ['nothing to delete from a large directory', 0, 100_000, false],
    ['exactly the count, under the percentage', 500, 100_000, false],
    ['one over the count', 501, 100_000, true],
    ['exactly 20 %', 20, 100, false],
    ['just over 20 %', 21, 100, true],
    ['a small directory losing one of three', 1, 3, true],
    ['everything gone (wrong base DN)', 1000, 1000, true],
  ])('%s: %i of %i → %s', (_name, wouldDelete, live, expected) => {
    expect(exceedsThreshold({ wouldDelete, live, count, percent })).toBe(expected);
  });

  test('a zero count blocks any deletion; 100 % and a large count block none', () => {
    expect(exceedsThreshold({ wouldDelete: 1, live: 1000, count: 0, percent: 100 })).toBe(true);
    expect(exceedsThreshold({ wouldDelete: 1000, live: 1000, count: 1_000_000, percent: 100 })).toBe(false);
  });
});

describe('deletionVerdict', () => {
  const blocked = { wouldDelete: 900, live: 1000, count, percent };

  test('under the limit: allowed without approval', () => {
    expect(deletionVerdict({ wouldDelete: 10, live: 1000, count, percent })).toEqual({
      allowed: true,
      exceeded: false,
      approvalUsed: false,
    });
  });

  test('over the limit without approval: blocked', () => {
    expect(deletionVerdict(blocked)).toEqual({ allowed: false, exceeded: true, approvalUsed: false });
  });

  test('an approval covering the deletions allows them', () => {
    expect(deletionVerdict({ ...blocked, approval: { maxDeletions: 900 } })).toEqual({
      allowed: true,
      exceeded: true,
      approvalUsed: true,
    });
  });

  test('more deletions than approved: blocked again', () => {
    expect(deletionVerdict({ ...blocked, approval: { maxDeletions: 899 } }).allowed).toBe(false);
  });
});
