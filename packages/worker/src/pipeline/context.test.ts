import { chunks, inParallel } from './context.ts';

const parts = async <T>(parallelism: number, items: readonly T[], weight?: (item: T) => number) =>
  inParallel({ parallelism }, items, async (part) => part, weight);

describe('chunks', () => {
  test('slices in order, the last one shorter', () => {
    expect([...chunks([1, 2, 3, 4, 5], 2)]).toEqual([[1, 2], [3, 4], [5]]);
    expect([...chunks([], 2)]).toEqual([]);
  });
});

describe('inParallel', () => {
  test('keeps a small batch in one part', async () => {
    expect(await parts(2, Array.from({ length: 999 }, (_, i) => i))).toHaveLength(1);
  });

  test('splits a large batch into at most `parallelism` parts that keep every item once, in order', async () => {
    const items = Array.from({ length: 2001 }, (_, i) => i);
    const result = await parts(2, items);
    expect(result.map((part) => part.length)).toEqual([1001, 1000]);
    expect(result.flat()).toEqual(items);
    expect(await parts(1, items)).toHaveLength(1);
  });

  test('splits by weight: few heavy items still use every connection, with about the same work each', async () => {
    const groups = [300, 300, 300, 300, 10, 10, 10, 10];
    const result = await parts(2, groups, (members) => members);
    expect(result).toHaveLength(2);
    expect(result.flat()).toEqual(groups);
    const sums = result.map((part) => part.reduce((a, b) => a + b, 0));
    expect(Math.abs((sums[0] ?? 0) - (sums[1] ?? 0))).toBeLessThanOrEqual(300);
  });

  test('never makes more parts than items, and counts an empty item as one', async () => {
    expect(await parts(4, [5000], (n) => n)).toEqual([[5000]]);
    expect(await parts(2, Array.from({ length: 600 }, () => 0), (n) => n)).toHaveLength(1);
    expect(await parts(2, Array.from({ length: 1000 }, () => 0), (n) => n)).toHaveLength(2);
  });
});
