import { contentHash, memberRefsHash, stableJson } from './hash.ts';

describe('stableJson', () => {
  test.each([
    ['key order does not matter', { b: 1, a: 2 }, '{"a":2,"b":1}'],
    ['nested objects are sorted too', { z: { y: 1, x: [{ d: 1, c: 2 }] } }, '{"z":{"x":[{"c":2,"d":1}],"y":1}}'],
    ['array order is kept', { a: [3, 1, 2] }, '{"a":[3,1,2]}'],
    ['strings are escaped like JSON', { 'k"': 'line\nbreak "q"' }, '{"k\\"":"line\\nbreak \\"q\\""}'],
    ['null, booleans and numbers', { n: null, t: true, f: false, x: 1.5 }, '{"f":false,"n":null,"t":true,"x":1.5}'],
    ['empty containers', { a: {}, b: [] }, '{"a":{},"b":[]}'],
  ])('%s', (_name, value, expected) => {
    expect(stableJson(value)).toBe(expected);
    expect(JSON.parse(stableJson(value))).toEqual(value);
  });

  test('skips undefined members as JSON.stringify does', () => {
    const value = { a: 1, b: undefined } as unknown as { a: number };
    expect(stableJson(value)).toBe('{"a":1}');
  });
});

describe('stableJson keys that look like array indexes', () => {
  test.each([
    ['numeric keys sort as text, not as numbers', { '10': 'a', '9': 'b', x: 1 }, '{"10":"a","9":"b","x":1}'],
    ['nested numeric keys', { a: { '2': true, '1': false } }, '{"a":{"1":false,"2":true}}'],
    ['numbers with leading zeros or signs are plain keys', { '01': 1, '-1': 2, '1.5': 3 }, '{"-1":2,"01":1,"1.5":3}'],
  ])('%s', (_name, value, expected) => {
    expect(stableJson(value)).toBe(expected);
  });

  test('equals a plain reference implementation, whatever order the object was built in', () => {
    const reference = (value: unknown): string => {
      if (value === null || typeof value !== 'object') return JSON.stringify(value);
      if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
      const record = value as Record<string, unknown>;
      return `{${Object.keys(record).sort().map((key) => `${JSON.stringify(key)}:${reference(record[key])}`).join(',')}}`;
    };
    const values = ['x', 1, null, true, [2, 'y'], { z: 1, a: [{ q: 1, b: 2 }], '3': 'n' }, 'é\u2028"\\'];
    const keys = ['b', 'a', '10', '2', 'Z', 'é', ''];
    for (let seed = 0; seed < 64; seed += 1) {
      const picked = keys.filter((_, i) => (seed >> i) % 2 === 0);
      const forward: Record<string, unknown> = {};
      const backward: Record<string, unknown> = {};
      for (const key of picked) forward[key] = values[(seed + key.length) % values.length];
      for (const key of [...picked].reverse()) backward[key] = forward[key];
      expect(stableJson(forward as never)).toBe(reference(forward));
      expect(stableJson(backward as never)).toBe(reference(forward));
    }
  });
});

describe('contentHash', () => {
  const json = stableJson({ mail: 'a@example.com' });

  test('is stable and short', () => {
    expect(contentHash('user', json)).toBe(contentHash('user', json));
    expect(contentHash('user', json)).toMatch(/^[A-Za-z0-9_-]{27}$/);
  });

  test.each([
    ['another attribute value', 'user', stableJson({ mail: 'b@example.com' })],
    ['another type', 'contact', json],
  ] as const)('changes with %s', (_name, type, attributes) => {
    expect(contentHash(type, attributes)).not.toBe(contentHash('user', json));
  });
});

describe('memberRefsHash', () => {
  const dn = (value: string) => ({ by: 'dn' as const, value });
  const id = (value: string) => ({ by: 'externalId' as const, value });

  test('ignores order and duplicates', () => {
    expect(memberRefsHash([dn('b'), id('x'), dn('a'), dn('a')])).toBe(memberRefsHash([id('x'), dn('a'), dn('b')]));
  });

  test('differs for different lists, including the empty list', () => {
    expect(memberRefsHash([dn('a')])).not.toBe(memberRefsHash([dn('a'), dn('b')]));
    expect(memberRefsHash([])).not.toBe(memberRefsHash([dn('')]));
  });

  test('tells a DN from an external id with the same text', () => {
    expect(memberRefsHash([dn('a')])).not.toBe(memberRefsHash([id('a')]));
  });

  test('cannot be fooled by separators inside references', () => {
    expect(memberRefsHash([dn('a\nb'), dn('c')])).not.toBe(memberRefsHash([dn('a'), dn('b\nc')]));
    expect(memberRefsHash([dn('a","b')])).not.toBe(memberRefsHash([dn('a'), dn('b')]));
  });
});
