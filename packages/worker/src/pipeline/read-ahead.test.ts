import { readAhead } from './read-ahead.ts';

/** A source that records when each item was requested relative to what the consumer did. */
function recordingSource(count: number, log: string[], failAt?: number) {
  return {
    async *[Symbol.asyncIterator]() {
      try {
        for (let i = 0; i < count; i += 1) {
          log.push(`fetch ${i}`);
          await Promise.resolve();
          if (i === failAt) throw new Error(`page ${i} failed`);
          yield i;
        }
      } finally {
        log.push('closed');
      }
    },
  };
}

test('requests the next item before the consumer works on the current one', async () => {
  const log: string[] = [];
  for await (const item of readAhead(recordingSource(3, log))) {
    await Promise.resolve();
    log.push(`use ${item}`);
  }
  expect(log).toEqual(['fetch 0', 'fetch 1', 'use 0', 'fetch 2', 'use 1', 'closed', 'use 2']);
});

test('passes a source failure on to the consumer, after the items before it', async () => {
  const log: string[] = [];
  const seen: number[] = [];
  await expect(async () => {
    for await (const item of readAhead(recordingSource(5, log, 2))) seen.push(item);
  }).rejects.toThrow('page 2 failed');
  expect(seen).toEqual([0, 1]);
});

test('closes the source when the consumer stops early', async () => {
  const log: string[] = [];
  for await (const item of readAhead(recordingSource(5, log))) {
    if (item === 1) break;
  }
  // The source closes once its outstanding read settles.
  await new Promise((resolve) => setImmediate(resolve));
  expect(log).toContain('closed');
  expect(log).not.toContain('fetch 3');
});
