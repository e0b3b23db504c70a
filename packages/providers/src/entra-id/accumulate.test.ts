import { randomUUID } from 'node:crypto';
import { accumulatedMembersPerPage, GroupAccumulator, MemberChangeAccumulator, SeenIds } from './accumulate.ts';

const g1 = '11111111-1111-4111-8111-111111111111';
const g2 = '22222222-2222-4222-8222-222222222222';
const m = (n: number) => `aaaaaaaa-0000-4000-8000-${String(n).padStart(12, '0')}`;

type Step = readonly [id: string, record: Record<string, unknown>, added: readonly string[], removed?: readonly string[]];

const cases: [string, Step[], { record: Record<string, unknown>; members: string[] }[]][] = [
  [
    'parts of one group far apart, the later ones with only id and members',
    [
      [g1, { id: g1, displayName: 'Big', description: null }, [m(1), m(2)]],
      [g2, { id: g2, displayName: 'Small' }, [m(9)]],
      [g1, { id: g1 }, [m(3)]],
      [g1, { id: g1 }, [m(4)]],
    ],
    [
      { record: { id: g1, displayName: 'Big', description: null }, members: [m(1), m(2), m(3), m(4)] },
      { record: { id: g2, displayName: 'Small' }, members: [m(9)] },
    ],
  ],
  [
    'a later part repeating the properties, one of them changed: the latest wins',
    [
      [g1, { id: g1, displayName: 'Old', mail: 'a@x' }, [m(1)]],
      [g1, { id: g1, displayName: 'New' }, [m(2)]],
    ],
    [{ record: { id: g1, displayName: 'New', mail: 'a@x' }, members: [m(1), m(2)] }],
  ],
  [
    'the same record twice (a duplicate): members once',
    [
      [g1, { id: g1, displayName: 'Dup' }, [m(1), m(2)]],
      [g1, { id: g1, displayName: 'Dup' }, [m(1), m(2)]],
    ],
    [{ record: { id: g1, displayName: 'Dup' }, members: [m(1), m(2)] }],
  ],
  [
    'a member removed while the round was read, another removed then added back',
    [
      [g1, { id: g1, displayName: 'G' }, [m(1), m(2), m(3)]],
      [g1, { id: g1 }, [], [m(2), m(3)]],
      [g1, { id: g1 }, [m(3)]],
    ],
    [{ record: { id: g1, displayName: 'G' }, members: [m(1), m(3)] }],
  ],
  ['a group without members', [[g1, { id: g1, displayName: 'Empty' }, []]], [{ record: { id: g1, displayName: 'Empty' }, members: [] }]],
];

describe('GroupAccumulator', () => {
  it.each(cases)('merges %s', (_name, steps, expected) => {
    const accumulator = new GroupAccumulator();
    for (const [id, record, added, removed = []] of steps) {
      accumulator.add(id, { ...record, 'members@delta': [] }, { added, removed });
    }
    expect([...accumulator.pages(100)].flat()).toEqual(expected);
    // Handing the groups on releases them.
    expect(accumulator.size).toBe(0);
  });

  it('pages by group count and by member ids, a larger group alone', () => {
    const accumulator = new GroupAccumulator();
    const ids = Array.from({ length: 5 }, () => randomUUID());
    ids.forEach((id, i) => accumulator.add(id, { id }, { added: Array.from({ length: i === 2 ? 30 : 4 }, (_, k) => m(k)), removed: [] }));
    const sizes = [...accumulator.pages(3, 10)].map((page) => page.map((group) => group.members.length));
    expect(sizes).toEqual([[4, 4], [30], [4, 4]]);
  });

  it('holds many small groups in about the bytes of their members', () => {
    // 2,000 groups of 100 members, each group's record listed in five parts as Graph may send
    // them: a log that kept a slice of a shared buffer pool would keep the whole pool alive.
    const accumulator = new GroupAccumulator();
    const groups = Array.from({ length: 2000 }, () => randomUUID());
    for (let part = 0; part < 5; part += 1) {
      for (const id of groups) accumulator.add(id, { id }, { added: Array.from({ length: 20 }, () => randomUUID()), removed: [] });
    }
    // 17 bytes a member, at most doubled by growth, and a few hundred bytes of properties a group.
    expect(accumulator.bytes).toBeGreaterThanOrEqual(2000 * 100 * 17);
    expect(accumulator.bytes).toBeLessThanOrEqual(2000 * (100 * 17 * 2 + 200));
  });

  it('holds a group of 100,000 members in a few MB', () => {
    const accumulator = new GroupAccumulator();
    const members = Array.from({ length: 100_000 }, () => randomUUID());
    // 1,000 parts, as Graph may send them.
    for (let i = 0; i < members.length; i += 100) {
      accumulator.add(g1, i === 0 ? { id: g1, displayName: 'All staff' } : { id: g1 }, { added: members.slice(i, i + 100), removed: [] });
    }
    // 17 bytes a member, at most doubled by growth: 1.7 to 3.4 MB.
    expect(accumulator.bytes).toBeGreaterThanOrEqual(1_700_000);
    expect(accumulator.bytes).toBeLessThanOrEqual(3_500_000);
    const pages = [...accumulator.pages(100)];
    expect(pages).toHaveLength(1);
    expect(new Set(pages[0]?.[0]?.members)).toEqual(new Set(members));
    expect(pages[0]?.[0]?.members).toHaveLength(100_000);
    expect(accumulatedMembersPerPage).toBeLessThan(100_000);
  });
});

describe('MemberChangeAccumulator (a round from a delta link)', () => {
  it.each([
    ['parts of one group far apart', [[g1, [m(1)], []], [g2, [m(5)], []], [g1, [m(2)], [m(3)]]], [
      { groupExternalId: g1, added: [m(1), m(2)], removed: [m(3)] },
      { groupExternalId: g2, added: [m(5)], removed: [] },
    ]],
    ['a replayed part: once', [[g1, [m(1)], [m(2)]], [g1, [m(1)], [m(2)]]], [{ groupExternalId: g1, added: [m(1)], removed: [m(2)] }]],
    ['the last change of a member stands', [[g1, [m(1)], []], [g1, [], [m(1)]], [g1, [], [m(2)]], [g1, [m(2)], []]], [
      { groupExternalId: g1, added: [m(2)], removed: [m(1)] },
    ]],
    ['records without member changes: nothing', [[g1, [], []]], []],
  ] as [string, [string, string[], string[]][], unknown[]][])('merges %s', (_name, steps, expected) => {
    const changes = new MemberChangeAccumulator();
    for (const [id, added, removed] of steps) changes.add(id, { added, removed });
    expect([...changes.pages()].flat()).toEqual(expected);
    expect(changes.size).toBe(0);
  });

  it('pages by member ids', () => {
    const changes = new MemberChangeAccumulator();
    changes.add(g1, { added: [m(1), m(2)], removed: [m(3)] });
    changes.add(g2, { added: [m(4), m(5)], removed: [] });
    expect([...changes.pages(4)].map((page) => page.map((group) => group.groupExternalId))).toEqual([[g1], [g2]]);
  });
});

describe('SeenIds', () => {
  it('tells a repeat from a new id across growth, whatever the id pattern', () => {
    const seen = new SeenIds();
    const random = Array.from({ length: 5000 }, () => randomUUID());
    // Sequential ids differ only in their last bytes.
    const sequential = Array.from({ length: 5000 }, (_, i) => m(i));
    for (const id of [...random, ...sequential]) expect(seen.add(id)).toBe(false);
    for (const id of [...random, ...sequential]) expect(seen.add(id)).toBe(true);
    expect(seen.size).toBe(10_000);
    expect(seen.add(randomUUID())).toBe(false);
    // 16 bytes a slot and one byte of occupancy, at most 4/3 of the ids plus doubling.
    expect(seen.bytes).toBeLessThanOrEqual(17 * 16_384 * 2);
  });
});
