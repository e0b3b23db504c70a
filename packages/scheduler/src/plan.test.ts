import { dueSlots, jitterFraction, jitterOffsetMs, nextDueAt, planSync, type ScheduleState } from './plan.ts';

const t = (iso: string) => new Date(iso);
const schedule = (claimed: Partial<Pick<ScheduleState, 'deltaScheduledFor' | 'fullScheduledFor'>> = {}): ScheduleState => ({
  deltaCron: '*/5 * * * *',
  fullCron: '0 2 * * *',
  deltaScheduledFor: null,
  fullScheduledFor: null,
  ...claimed,
});

describe('dueSlots', () => {
  test.each([
    [
      'first sight: both due, so the full runs at once',
      schedule(),
      '2024-05-01T10:07:00Z',
      { full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T10:05:00.000Z' },
    ],
    [
      'nothing new since the last tick',
      schedule({ fullScheduledFor: t('2024-05-01T02:00:00Z'), deltaScheduledFor: t('2024-05-01T10:05:00Z') }),
      '2024-05-01T10:09:59Z',
      { full: null, delta: null },
    ],
    [
      'the next delta slot',
      schedule({ fullScheduledFor: t('2024-05-01T02:00:00Z'), deltaScheduledFor: t('2024-05-01T10:05:00Z') }),
      '2024-05-01T10:10:00Z',
      { full: null, delta: '2024-05-01T10:10:00.000Z' },
    ],
    [
      'an hour of downtime: only the latest slot of each mode',
      schedule({ fullScheduledFor: t('2024-05-01T02:00:00Z'), deltaScheduledFor: t('2024-05-01T01:55:00Z') }),
      '2024-05-01T03:01:00Z',
      { full: null, delta: '2024-05-01T03:00:00.000Z' },
    ],
    [
      'full and delta due together',
      schedule({ fullScheduledFor: t('2024-04-30T02:00:00Z'), deltaScheduledFor: t('2024-05-01T01:55:00Z') }),
      '2024-05-01T02:00:30Z',
      { full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T02:00:00.000Z' },
    ],
    [
      'a claimed slot newer than the cron gives (schedule changed) waits for a newer one',
      schedule({ fullScheduledFor: t('2024-05-01T09:00:00Z'), deltaScheduledFor: t('2024-05-01T10:05:00Z') }),
      '2024-05-01T10:06:00Z',
      { full: null, delta: null },
    ],
  ])('%s', (_name, state, now, expected) => {
    const due = dueSlots(state, t(now));
    expect({ full: due.full?.toISOString() ?? null, delta: due.delta?.toISOString() ?? null }).toEqual(expected);
  });

  test('reads crons in the given time zone', () => {
    const due = dueSlots(schedule({ deltaScheduledFor: t('2024-05-01T10:05:00Z') }), t('2024-05-01T10:07:00Z'), 'Europe/Berlin');
    expect(due.full?.toISOString()).toBe('2024-05-01T00:00:00.000Z');
  });

  test('throws for an invalid stored cron', () => {
    expect(() => dueSlots({ ...schedule(), deltaCron: 'sometimes' }, t('2024-05-01T10:07:00Z'))).toThrow(/sometimes/);
  });
});

describe('planSync', () => {
  const slot = t('2024-05-01T02:00:00Z');
  test.each([
    ['full and delta claimed: the full covers the delta', { full: slot, delta: slot }, { mode: 'full', slot, supersedesDelta: true }],
    ['full only', { full: slot, delta: null }, { mode: 'full', slot, supersedesDelta: false }],
    ['delta only', { full: null, delta: slot }, { mode: 'delta', slot, supersedesDelta: false }],
    ['nothing claimed', { full: null, delta: null }, null],
  ])('%s', (_name, claimed, expected) => {
    expect(planSync(claimed)).toEqual(expected);
  });
});

describe('jitter', () => {
  const daily = { deltaCron: '*/5 * * * *', fullCron: '0 2 * * *' };
  const ids = Array.from({ length: 2_000 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);

  test.each([
    // crons, max, the span offsets stay below
    ['default crons: within the 5-minute delta interval', daily, undefined, 300_000],
    ['hourly delta, daily full: within the hour', { deltaCron: '0 * * * *', fullCron: '0 2 * * *' }, undefined, 3_600_000],
    ['daily delta and full: capped at the default hour', { deltaCron: '0 6 * * *', fullCron: '0 2 * * *' }, undefined, 3_600_000],
    ['uneven delta (:15 and :45): within its 30-minute gap', { deltaCron: '15,45 8-18 * * *', fullCron: '0 2 * * *' }, undefined, 1_800_000],
    ['a full more often than the delta bounds it', { deltaCron: '0 * * * *', fullCron: '*/10 * * * *' }, undefined, 600_000],
    ['an explicit cap below the interval', daily, 60_000, 60_000],
  ] as const)('%s', (_name, crons, max, span) => {
    const offsets = ids.map((id) => jitterOffsetMs(id, crons, max));
    for (const offset of offsets) {
      expect(offset).toBeGreaterThanOrEqual(0);
      expect(offset).toBeLessThan(span);
      expect(offset % 1000).toBe(0);
    }
    // Spread over the span, not bunched: every tenth of it holds some integrations.
    const tenths = new Set(offsets.map((offset) => Math.floor((offset / span) * 10)));
    expect(tenths.size).toBe(10);
  });

  test('the same integration always gets the same offset; others get others', () => {
    const id = '6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab';
    expect(jitterOffsetMs(id, daily)).toBe(jitterOffsetMs(id, daily));
    expect(jitterFraction(id)).toBe(jitterFraction(String(id)));
    expect(new Set(ids.slice(0, 100).map((other) => jitterFraction(other))).size).toBe(100);
    // 100 ids over 300 whole seconds: a few share a second (about 15 by the birthday bound), no more.
    expect(new Set(ids.slice(0, 100).map((other) => jitterOffsetMs(other, daily))).size).toBeGreaterThan(75);
  });

  test('a cap of 0 turns jitter off', () => {
    expect(ids.slice(0, 50).map((id) => jitterOffsetMs(id, daily, 0))).toEqual(Array(50).fill(0));
  });

  test.each([
    // offset, now, claimed delta, expected due delta
    ['offset 90 s: the 10:05 slot is not due at 10:06:29', 90_000, '2024-05-01T10:06:29Z', '2024-05-01T10:00:00Z', null],
    ['offset 90 s: the 10:05 slot is due at 10:06:30', 90_000, '2024-05-01T10:06:30Z', '2024-05-01T10:00:00Z', '2024-05-01T10:05:00.000Z'],
    ['offset 299 s: the 10:05 slot is still the latest at 10:09:59', 299_000, '2024-05-01T10:09:59Z', '2024-05-01T10:00:00Z', '2024-05-01T10:05:00.000Z'],
    ['offset 0: due at the slot itself', 0, '2024-05-01T10:05:00Z', '2024-05-01T10:00:00Z', '2024-05-01T10:05:00.000Z'],
  ] as const)('%s', (_name, offset, now, claimed, expected) => {
    const due = dueSlots(schedule({ deltaScheduledFor: t(claimed), fullScheduledFor: t('2024-05-01T02:00:00Z') }), t(now), undefined, offset);
    expect(due.delta?.toISOString() ?? null).toBe(expected);
    expect(due.full).toBeNull();
  });

  test('a full and a delta of the same minute fall due together under one offset', () => {
    const state = schedule({ fullScheduledFor: t('2024-04-30T02:00:00Z'), deltaScheduledFor: t('2024-05-01T01:55:00Z') });
    expect(dueSlots(state, t('2024-05-01T02:01:59Z'), undefined, 120_000)).toEqual({ full: null, delta: null });
    expect(dueSlots(state, t('2024-05-01T02:02:00Z'), undefined, 120_000)).toEqual({ full: t('2024-05-01T02:00:00Z'), delta: t('2024-05-01T02:00:00Z') });
  });

  test('first sight is due at once whatever the offset', () => {
    const due = dueSlots(schedule(), t('2024-05-01T10:05:10Z'), undefined, 250_000);
    expect(due.full?.toISOString()).toBe('2024-05-01T02:00:00.000Z');
    expect(due.delta?.toISOString()).toBe('2024-05-01T10:00:00.000Z');
  });
});

describe('nextDueAt', () => {
  test.each([
    // crons, now, offset, expected
    ['the next delta slot', '*/5 * * * *', '0 2 * * *', '2024-05-01T10:07:00Z', 0, '2024-05-01T10:10:00.000Z'],
    ['a slot exactly at now is not next', '*/5 * * * *', '0 2 * * *', '2024-05-01T10:10:00Z', 0, '2024-05-01T10:15:00.000Z'],
    ['the next delta slot plus the offset', '*/5 * * * *', '0 2 * * *', '2024-05-01T10:07:00Z', 42_000, '2024-05-01T10:10:42.000Z'],
    ['just before an offset slot falls due', '*/5 * * * *', '0 2 * * *', '2024-05-01T10:10:41Z', 42_000, '2024-05-01T10:10:42.000Z'],
    ['at an offset slot: the one after', '*/5 * * * *', '0 2 * * *', '2024-05-01T10:10:42Z', 42_000, '2024-05-01T10:15:42.000Z'],
    ['the full when it comes first', '0 * * * *', '30 2 * * *', '2024-05-01T02:10:00Z', 0, '2024-05-01T02:30:00.000Z'],
  ] as const)('%s', (_name, deltaCron, fullCron, now, offset, expected) => {
    expect(nextDueAt({ deltaCron, fullCron }, t(now), undefined, offset).toISOString()).toBe(expected);
  });

  test('nothing falls due between now and the next due time', () => {
    const crons = { deltaCron: '*/5 * * * *', fullCron: '0 2 * * *' };
    const claimed = schedule({ fullScheduledFor: t('2024-05-01T02:00:00Z'), deltaScheduledFor: t('2024-05-01T10:05:00Z') });
    const offset = 137_000;
    const now = t('2024-05-01T10:07:17Z');
    const next = nextDueAt(crons, now, undefined, offset);
    expect(dueSlots(claimed, new Date(next.getTime() - 1), undefined, offset)).toEqual({ full: null, delta: null });
    expect(dueSlots(claimed, next, undefined, offset).delta?.toISOString()).toBe('2024-05-01T10:10:00.000Z');
  });
});
