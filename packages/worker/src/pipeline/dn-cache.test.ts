import { DnCache } from './dn-cache.ts';

describe('DnCache', () => {
  test('answers what was set and nothing else', () => {
    const cache = new DnCache(10);
    cache.set('uid=a', 'A');
    expect(cache.get('uid=a')).toBe('A');
    expect(cache.get('uid=b')).toBeUndefined();
  });

  test('the latest object stored with a DN wins', () => {
    const cache = new DnCache(10);
    cache.set('uid=a', 'A');
    cache.set('uid=a', 'B');
    expect(cache.get('uid=a')).toBe('B');
    expect(cache.size).toBe(1);
  });

  test('keeps at least the latest half of its capacity and never more than its capacity', () => {
    const cache = new DnCache(4);
    for (const name of ['a', 'b', 'c', 'd', 'e']) {
      cache.set(`uid=${name}`, name.toUpperCase());
      expect(cache.size).toBeLessThanOrEqual(4);
    }
    expect(['a', 'b', 'c', 'd', 'e'].map((name) => cache.get(`uid=${name}`))).toEqual([undefined, undefined, 'C', 'D', 'E']);
  });

  test('a DN set again answers its latest object, from whichever generation held it', () => {
    const cache = new DnCache(4);
    cache.set('uid=a', 'A');
    cache.set('uid=b', 'B');
    cache.set('uid=a', 'A2');
    expect(cache.get('uid=a')).toBe('A2');
    cache.forget('uid=a', 'A2');
    expect(cache.get('uid=a')).toBeUndefined();
  });

  test('holds no more than its capacity after many times as many insertions', () => {
    const cache = new DnCache(1000);
    for (let i = 0; i < 200_000; i += 1) cache.set(`uid=u${i}`, `U${i}`);
    expect(cache.size).toBeLessThanOrEqual(1000);
    expect(cache.get('uid=u199999')).toBe('U199999');
  });

  test('forgets a DN only for the object that held it', () => {
    const cache = new DnCache(10);
    cache.set('uid=a', 'B');
    cache.forget('uid=a', 'A');
    expect(cache.get('uid=a')).toBe('B');
    cache.forget('uid=a', 'B');
    expect(cache.get('uid=a')).toBeUndefined();
  });

  test('refresh adds no DN, and re-points a held DN to the object stored with it last', () => {
    const cache = new DnCache(10);
    cache.refresh('uid=a', 'A');
    expect(cache.get('uid=a')).toBeUndefined();
    expect(cache.size).toBe(0);
    cache.set('uid=b', 'B');
    const version = cache.version;
    cache.refresh('uid=b', 'B');
    expect(cache.version).toBe(version);
    cache.refresh('uid=b', 'C');
    expect(cache.get('uid=b')).toBe('C');
    expect(cache.version).toBeGreaterThan(version);
    expect(cache.size).toBe(1);
  });

  test('a capacity of zero holds nothing', () => {
    const cache = new DnCache(0);
    cache.set('uid=a', 'A');
    expect(cache.get('uid=a')).toBeUndefined();
  });

  test('its version moves when a DN stops naming its object, and only then', () => {
    const cache = new DnCache(4);
    const moves: string[] = [];
    let seen = cache.version;
    const step = (what: string, fn: () => void) => {
      fn();
      if (cache.version !== seen) moves.push(what);
      seen = cache.version;
    };
    step('new DN', () => cache.set('uid=a', 'A'));
    step('same DN, same object', () => cache.set('uid=a', 'A'));
    step('taken over by another object', () => cache.set('uid=a', 'B'));
    step('forgotten for an object that does not hold it', () => cache.forget('uid=a', 'A'));
    step('renamed away', () => cache.forget('uid=a', 'B'));
    step('a new DN filling the young generation', () => cache.set('uid=b', 'b'));
    step('the young generation becoming the old one, nothing dropped', () => cache.set('uid=c', 'c'));
    step('a new DN', () => cache.set('uid=d', 'd'));
    step('the old generation dropped', () => cache.set('uid=e', 'e'));
    step('taken over in the old generation', () => cache.set('uid=d', 'X'));
    expect(moves).toEqual(['taken over by another object', 'renamed away', 'the old generation dropped', 'taken over in the old generation']);
  });
});
