import { backoffDelay, parseRetryAfter } from './client.ts';

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
