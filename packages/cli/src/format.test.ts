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

describe('text from accounts and directories in tables and key-value lines', () => {
  // An integration's name is the account's choice; a directory's error text is its server's.
  const hostile = 'Payroll\u001b]0;owned\u0007\u001b[2J\u202eevil\u0085';

  it('table cells show controls and bidi overrides escaped, never raw', () => {
    const out = table(['name'], [[hostile]]);
    expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(out.split('\n')[2]).toBe('Payroll\\u001b]0;owned\\u0007\\u001b[2J\\u202eevil\\u0085');
  });

  it('a line feed in a table cell is escaped too, so a name cannot forge a row', () => {
    expect(table(['name'], [['a\nb  c']]).split('\n')).toHaveLength(3);
  });

  it('key-value lines keep line feeds (certificates, messages) and escape every other control', () => {
    const out = keyValues([['error', `line one\nline two${hostile}`]]);
    expect(out).toContain('line one\nline two');
    expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
  });
});
