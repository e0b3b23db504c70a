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

  test('drops the oldest entries past its capacity', () => {
    const cache = new DnCache(2);
    cache.set('uid=a', 'A');
    cache.set('uid=b', 'B');
    cache.set('uid=a', 'A');
    cache.set('uid=c', 'C');
    expect(cache.size).toBe(2);
    expect(cache.get('uid=b')).toBeUndefined();
    expect(cache.get('uid=a')).toBe('A');
    expect(cache.get('uid=c')).toBe('C');
  });

  test('forgets a DN only for the object that held it', () => {
    const cache = new DnCache(10);
    cache.set('uid=a', 'B');
    cache.forget('uid=a', 'A');
    expect(cache.get('uid=a')).toBe('B');
    cache.forget('uid=a', 'B');
    expect(cache.get('uid=a')).toBeUndefined();
  });

  test('a capacity of zero holds nothing', () => {
    const cache = new DnCache(0);
    cache.set('uid=a', 'A');
    expect(cache.get('uid=a')).toBeUndefined();
  });
});
