import { countsSummary, describeCron, formatCount, formatDateTime, formatDuration, formatRelative, kindText, plural, runStatusText } from '../src/format.ts';

const zero = { created: 0, updated: 0, deleted: 0, restored: 0, failed: 0, wouldDelete: 0 };

describe('console formatting', () => {
  test('durations read as ms, seconds, minutes and hours', () => {
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(-5)).toBe('—');
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(12_400)).toBe('12 s');
    expect(formatDuration(4_250)).toBe('4.3 s');
    expect(formatDuration(185_000)).toBe('3 min 5 s');
    expect(formatDuration(120_000)).toBe('2 min');
    expect(formatDuration(2 * 3_600_000 + 4 * 60_000)).toBe('2 h 4 min');
  });

  test('counts get thousands separators whatever the locale', () => {
    expect(formatCount(0)).toBe('0');
    expect(formatCount(999)).toBe('999');
    expect(formatCount(1234567)).toBe('1,234,567');
    expect(plural(1, 'user')).toBe('1 user');
    expect(plural(2500, 'user')).toBe('2,500 users');
  });

  test('dates are shown in UTC, relative times in words', () => {
    expect(formatDateTime('2026-12-06T14:05:59.000+01:00')).toBe('2026-12-06 13:05 UTC');
    expect(formatDateTime(null)).toBe('—');
    expect(formatDateTime('not a date')).toBe('—');
    const now = new Date('2026-12-06T12:00:00Z');
    expect(formatRelative('2026-12-06T12:05:00Z', now)).toBe('in 5 min');
    expect(formatRelative('2026-12-06T09:00:00Z', now)).toBe('3 h ago');
    expect(formatRelative('2026-12-08T12:00:00Z', now)).toBe('in 2 d');
    expect(formatRelative('2026-12-06T12:00:20Z', now)).toBe('just now');
    expect(formatRelative(null, now)).toBe('—');
  });

  test('common cron shapes are described in words, others shown as written', () => {
    expect(describeCron('*/15 * * * *')).toBe('every 15 minutes');
    expect(describeCron('0 */15 * * * *')).toBe('every 15 minutes');
    expect(describeCron('0 2 * * *')).toBe('daily at 02:00 UTC');
    expect(describeCron('30 3 * * 0')).toBe('Sundays at 03:30 UTC');
    expect(describeCron('7 * * * *')).toBe('hourly at minute 7');
    expect(describeCron('0 */6 * * *')).toBe('every 6 hours at minute 0');
    expect(describeCron('0 4 1 * *')).toBe('monthly on day 1 at 04:00 UTC');
    expect(describeCron('0 4 * 1-6 *')).toBe('cron 0 4 * 1-6 *');
    expect(describeCron('nonsense')).toBe('cron nonsense');
  });

  test('run statuses, kinds and counts read as words', () => {
    expect(runStatusText('blocked')).toBe('Blocked: deletions need approval');
    expect(runStatusText('dry_run')).toBe('Dry run finished');
    expect(runStatusText('something_new')).toBe('something_new');
    expect(kindText('active_directory')).toBe('Active Directory');
    expect(kindText('entra_id')).toBe('Microsoft Entra ID');
    expect(countsSummary(zero)).toBe('no changes');
    expect(countsSummary({ ...zero, created: 1200, deleted: 3 })).toBe('1,200 created, 3 deleted');
    expect(countsSummary({ ...zero, wouldDelete: 50 })).toBe('50 would be deleted');
  });
});
