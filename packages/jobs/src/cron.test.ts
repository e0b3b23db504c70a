import { CronExpressionParser } from 'cron-parser';
import {
  cronIntervalMs,
  DEFAULT_DELTA_CRON,
  DEFAULT_FULL_CRON,
  InvalidCronError,
  latestDueSlot,
  nextSlotAfter,
  validateCron,
  validateSchedule,
} from './cron.ts';

const at = (iso: string) => new Date(iso);

describe('latestDueSlot', () => {
  test.each([
    // cron, now, expected latest slot <= now
    ['*/5 * * * *', '2024-05-01T10:05:00.000Z', '2024-05-01T10:05:00.000Z'], // exactly on a slot: due
    ['*/5 * * * *', '2024-05-01T10:04:59.999Z', '2024-05-01T10:00:00.000Z'],
    ['*/5 * * * *', '2024-05-01T10:07:30.000Z', '2024-05-01T10:05:00.000Z'],
    ['*/5 * * * *', '2024-05-01T00:00:10.000Z', '2024-05-01T00:00:00.000Z'],
    ['0 2 * * *', '2024-05-01T01:59:59.000Z', '2024-04-30T02:00:00.000Z'], // before today's slot
    ['0 2 * * *', '2024-05-01T02:00:00.000Z', '2024-05-01T02:00:00.000Z'],
    ['0 2 * * *', '2024-05-01T23:00:00.000Z', '2024-05-01T02:00:00.000Z'],
    ['0 2 * * *', '2024-03-01T00:30:00.000Z', '2024-02-29T02:00:00.000Z'], // leap day
    ['0 2 * * *', '2025-01-01T00:00:00.000Z', '2024-12-31T02:00:00.000Z'], // year boundary
    ['30 3 * * MON', '2024-05-01T12:00:00.000Z', '2024-04-29T03:30:00.000Z'], // Wednesday → Monday
    ['0 0 1 * *', '2024-05-01T00:00:00.000Z', '2024-05-01T00:00:00.000Z'],
    ['@hourly', '2024-05-01T10:59:00.000Z', '2024-05-01T10:00:00.000Z'],
    ['@daily', '2024-05-01T10:59:00.000Z', '2024-05-01T00:00:00.000Z'],
    ['  */15   * * * *  ', '2024-05-01T10:44:00.000Z', '2024-05-01T10:30:00.000Z'], // spacing
  ])('%s at %s → %s (UTC)', (cron, now, expected) => {
    expect(latestDueSlot(cron, at(now)).toISOString()).toBe(expected);
  });

  test.each([
    // Berlin is UTC+2 in summer, UTC+1 in winter.
    ['0 2 * * *', '2024-05-01T12:00:00.000Z', 'Europe/Berlin', '2024-05-01T00:00:00.000Z'],
    ['0 2 * * *', '2024-01-15T12:00:00.000Z', 'Europe/Berlin', '2024-01-15T01:00:00.000Z'],
    ['0 9 * * *', '2024-05-01T12:00:00.000Z', 'America/New_York', '2024-04-30T13:00:00.000Z'],
  ])('%s at %s in %s → %s', (cron, now, tz, expected) => {
    expect(latestDueSlot(cron, at(now), tz).toISOString()).toBe(expected);
  });

  test('after downtime only the latest slot is returned, not the missed ones', () => {
    expect(latestDueSlot('*/5 * * * *', at('2024-05-01T11:02:00.000Z')).toISOString()).toBe('2024-05-01T11:00:00.000Z');
  });

  test('seconds and milliseconds of now do not matter within a minute slot', () => {
    const a = latestDueSlot('*/5 * * * *', at('2024-05-01T10:05:00.001Z'));
    const b = latestDueSlot('*/5 * * * *', at('2024-05-01T10:09:59.999Z'));
    expect(a.getTime()).toBe(b.getTime());
  });

  test('throws InvalidCronError for a bad expression', () => {
    expect(() => latestDueSlot('every five minutes', at('2024-05-01T10:00:00Z'))).toThrow(InvalidCronError);
  });

  test('the defaults are a 5-minute delta and a daily full', () => {
    const now = at('2024-05-01T10:07:00.000Z');
    expect(latestDueSlot(DEFAULT_DELTA_CRON, now).toISOString()).toBe('2024-05-01T10:05:00.000Z');
    expect(latestDueSlot(DEFAULT_FULL_CRON, now).toISOString()).toBe('2024-05-01T02:00:00.000Z');
  });
});

describe('validateCron', () => {
  test.each(['*/5 * * * *', '0 2 * * *', '0 2 * * 1-5', '15,45 8-18 * * MON-FRI', '0 0 1 JAN *', '@daily', '@WEEKLY', '0 0 L * *'])(
    'accepts %s',
    (cron) => {
      const expression = cron.startsWith('@') ? cron.toLowerCase() : cron;
      expect(validateCron(cron)).toEqual({ ok: true, expression });
    },
  );

  test.each([
    ['', /cron expression is empty/],
    ['   ', /cron expression is empty/],
    ['* * * *', /"\* \* \* \*" has 4 fields; a schedule needs 5/],
    ['*/5 * * * * *', /has 6 fields; a schedule needs 5/],
    ['0 0 1 1 * 2030', /has 6 fields/],
    ['61 * * * *', /"61 \* \* \* \*" is not a valid cron expression: .*61/],
    ['* 24 * * *', /is not a valid cron expression/],
    ['0 0 30 2 *', /is not a valid cron expression/], // 30 February never comes
    ['0 2 * * 8', /is not a valid cron expression/],
    ['every day', /has 2 fields/],
    ['H * * * *', /uses "H"/],
    ['@secondly', /not a supported cron alias/],
    ['@reboot', /not a supported cron alias/],
    ['a b c d e', /is not a valid cron expression/],
  ])('refuses %j with a clear message', (cron, message) => {
    const result = validateCron(cron);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toMatch(message);
  });

  test('THU is a day name, not a hash', () => {
    expect(validateCron('0 2 * * THU').ok).toBe(true);
  });
});

describe('validateSchedule', () => {
  test('accepts valid crons and returns them normalised', () => {
    expect(validateSchedule({ deltaCron: ' */10  * * * * ', fullCron: '0 3 * * *' })).toEqual({
      ok: true,
      deltaCron: '*/10 * * * *',
      fullCron: '0 3 * * *',
    });
  });

  test('validates only the fields given', () => {
    expect(validateSchedule({ fullCron: '0 3 * * SUN' })).toEqual({ ok: true, fullCron: '0 3 * * SUN' });
    expect(validateSchedule({})).toEqual({ ok: true });
  });

  test('reports every bad field in one line', () => {
    const result = validateSchedule({ deltaCron: '*/5 * * *', fullCron: 'daily' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => p.field)).toEqual(['deltaCron', 'fullCron']);
    expect(result.message).toMatch(/^delta schedule: .*4 fields.*; full schedule: .*"daily".*$/);
    expect(result.message).not.toContain('\n');
  });
});

describe('nextSlotAfter', () => {
  test.each([
    ['*/5 * * * *', '2024-05-01T10:07:30.000Z', 'UTC', '2024-05-01T10:10:00.000Z'],
    ['*/5 * * * *', '2024-05-01T10:10:00.000Z', 'UTC', '2024-05-01T10:15:00.000Z'], // strictly after
    ['0 2 * * *', '2024-05-01T02:00:00.001Z', 'UTC', '2024-05-02T02:00:00.000Z'],
    ['0 2 * * *', '2024-12-31T23:00:00.000Z', 'UTC', '2025-01-01T02:00:00.000Z'],
    ['0 2 * * *', '2024-05-01T12:00:00.000Z', 'Europe/Berlin', '2024-05-02T00:00:00.000Z'],
  ])('%s after %s in %s → %s', (cron, after, tz, expected) => {
    expect(nextSlotAfter(cron, at(after), tz).toISOString()).toBe(expected);
  });

  test('throws InvalidCronError for a bad expression', () => {
    expect(() => nextSlotAfter('now and then', at('2024-05-01T10:00:00Z'))).toThrow(InvalidCronError);
  });
});

describe('cronIntervalMs', () => {
  test.each([
    ['*/5 * * * *', 300_000],
    ['0 2 * * *', 86_400_000],
    ['15,45 8-18 * * *', 1_800_000],
    ['0 9 * * MON-FRI', 86_400_000],
    ['@hourly', 3_600_000],
    ['0 0 1 * *', 28 * 86_400_000], // 16 months from January 2024 reach February 2025
  ])('%s → %d ms', (cron, expected) => {
    expect(cronIntervalMs(cron)).toBe(expected);
  });

  test('throws InvalidCronError for a bad expression', () => {
    expect(() => cronIntervalMs('61 * * * *')).toThrow(InvalidCronError);
  });
});

describe('slot answers kept between calls', () => {
  // The latest and next slots are kept as pairs of consecutive slots; asked in any order, across
  // a daylight-saving change, they must equal what the parser says each time.
  test.each([
    ['*/7 * * * *', 'UTC'],
    ['0 2 * * *', 'Europe/Berlin'],
    ['30 1-3 * * *', 'Europe/Berlin'],
    ['15,45 8-18 * * MON-FRI', 'America/New_York'],
  ])('%s in %s', (cron, tz) => {
    const from = at('2024-03-30T20:00:00Z').getTime();
    // A fixed scramble of 600 times over two days (the Berlin clocks go forward on 31 March 2024).
    const times = Array.from({ length: 600 }, (_, i) => new Date(from + ((i * 7919) % 600) * 288_000 + (i % 3) * 1000));
    for (const time of times) {
      const prev = CronExpressionParser.parse(cron, { currentDate: new Date(time.getTime() + 1), tz }).prev().toDate();
      const next = CronExpressionParser.parse(cron, { currentDate: time, tz }).next().toDate();
      expect([latestDueSlot(cron, time, tz).toISOString(), nextSlotAfter(cron, time, tz).toISOString()]).toEqual([prev.toISOString(), next.toISOString()]);
    }
  });
});
