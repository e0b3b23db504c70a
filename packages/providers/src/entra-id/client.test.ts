import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { ProtocolError } from '../errors.ts';
import { backoffDelay, parseRetryAfter, readBoundedText } from './client.ts';

describe('parseRetryAfter', () => {
  it.each([
    ['seconds', '7', 7000],
    ['fractional seconds', '0.5', 500],
    ['an HTTP date', 'Wed, 21 Oct 2015 07:28:10 GMT', 10_000],
    ['a date in the past', 'Wed, 21 Oct 2015 07:27:00 GMT', 0],
    ['nothing', undefined, undefined],
    ['garbage', 'soon', undefined],
  ])('reads %s', (_name, header, expected) => {
    expect(parseRetryAfter(header, Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(expected);
  });
});

describe('backoffDelay', () => {
  it('doubles from the base, stays in the upper half of its ceiling, and is capped', () => {
    expect(backoffDelay(1, 100, 10_000, () => 0)).toBe(50);
    expect(backoffDelay(1, 100, 10_000, () => 1)).toBe(100);
    expect(backoffDelay(4, 100, 10_000, () => 1)).toBe(800);
    expect(backoffDelay(4, 100, 10_000, () => 0)).toBe(400);
    expect(backoffDelay(30, 100, 10_000, () => 1)).toBe(10_000);
    expect(backoffDelay(1000, 100, 10_000, () => 0.5)).toBe(7500);
  });
});

describe('readBoundedText', () => {
  // A real HTTP server streaming an endless answer: the reader must stop at its bound.
  it('reads an answer within the bound and refuses a larger one without reading it all', async () => {
    let sent = 0;
    const server = createServer((req, res) => {
      if (req.url === '/small') return res.end('{"value":[]}');
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = () => {
        while (sent < 512 * 1024 * 1024 && res.write(chunk)) sent += chunk.length;
      };
      res.on('drain', pump);
      res.on('close', () => res.off('drain', pump));
      pump();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect(await readBoundedText((await request(`${base}/small`)).body, 1024, 'small')).toBe('{"value":[]}');
      const error = await readBoundedText((await request(`${base}/huge`)).body, 1024 * 1024, 'the huge answer').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as ProtocolError).retryable).toBe(false);
      expect((error as Error).message).toBe('the huge answer exceeds 1048576 bytes; refusing to read it');
      // The server stopped well short of its 512 MiB: the client hung up.
      expect(sent).toBeLessThan(64 * 1024 * 1024);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
