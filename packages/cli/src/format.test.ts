import { z } from 'zod';
import { duration, jsonOutput, keyValues, progressBar, safeJson, table } from './format.ts';

describe('table', () => {
  test('pads columns to the widest cell', () => {
    expect(table(['id', 'name'], [['1', 'alpha'], ['22', null]])).toBe(['id  name', '--  -----', '1   alpha', '22'].join('\n'));
  });
  test('renders dates as UTC without milliseconds', () => {
    expect(table(['at'], [[new Date('2026-01-02T03:04:05.678Z')]])).toContain('2026-01-02 03:04:05Z');
  });
});

test.each([
  [5, '5ms'],
  [1500, '1.5s'],
  [245_000, '4m05s'],
  [null, ''],
])('duration(%p) = %p', (ms, text) => {
  expect(duration(ms)).toBe(text);
});

test('keyValues aligns keys', () => {
  expect(keyValues([['a', 1], ['long', 'x']])).toBe('a:    1\nlong: x');
});

test('progressBar shows a fraction or a count', () => {
  expect(progressBar(5, 10, 10)).toBe('[=====     ] 5/10');
  expect(progressBar(1234, undefined)).toBe('1,234 objects');
});

describe('--json output', () => {
  test('safeJson escapes what a terminal would obey and keeps the value exact', () => {
    const text = safeJson({ name: 'a\u202eb\u0085c' });
    expect(text).toBe('{\n  "name": "a\\u202eb\\u0085c"\n}');
    expect(JSON.parse(text)).toEqual({ name: 'a\u202eb\u0085c' });
  });

  test('the --json text gives dates as RFC 3339, drops fields the schema does not name, and refuses a value of another shape', () => {
    const schema = z.object({ id: z.string(), at: z.iso.datetime({ offset: true }) });
    expect(jsonOutput(schema, { id: 'x', at: new Date('2026-01-02T03:04:05.678Z'), secret: 'never printed' })).toBe(
      '{\n  "id": "x",\n  "at": "2026-01-02T03:04:05.678Z"\n}',
    );
    expect(() => jsonOutput(schema, { id: 1, at: 'yesterday' })).toThrow();
  });
});
