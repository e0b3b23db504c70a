import { Writable } from 'node:stream';
import { streamEvent } from '../src/bench/database-floor.ts';

// The database floor's COPY streams: a stream that stops taking data, or is destroyed, fails the
// floor with what it had sent instead of holding the benchmark forever.

/** A stream that takes one write and then never finishes writing it. */
function stuck(): Writable {
  return new Writable({ highWaterMark: 1, write: () => undefined });
}

test('a stream that stops taking data fails once it has waited the stall time, saying what it had sent', async () => {
  const stream = stuck();
  expect(stream.write(Buffer.from('row\n'))).toBe(false);
  await expect(streamEvent(stream, 'drain', () => 'copy t: 1 chunks sent', 50)).rejects.toThrow('copy t: 1 chunks sent: no drain for 0.05 s');
});

test('a stream destroyed while waiting fails at once', async () => {
  const stream = stuck();
  stream.write(Buffer.from('row\n'));
  const waiting = streamEvent(stream, 'drain', () => 'copy t', 60_000);
  stream.destroy();
  await expect(waiting).rejects.toThrow('copy t: the stream closed while waiting for drain');
});

test('a stream that drains or finishes goes on', async () => {
  let release: (() => void) | undefined;
  const stream = new Writable({
    highWaterMark: 1,
    write: (_chunk, _encoding, callback) => {
      release = callback;
    },
  });
  expect(stream.write(Buffer.from('row\n'))).toBe(false);
  const drained = streamEvent(stream, 'drain', () => 'copy t', 60_000);
  release?.();
  await expect(drained).resolves.toBeUndefined();
  stream.end();
  await expect(streamEvent(stream, 'finish', () => 'copy t', 60_000)).resolves.toBeUndefined();
});
