import { dueSlots, planSync, type ScheduleState } from './plan.ts';

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
