import { formatGeneralizedTime, parseGeneralizedTime } from './time.ts';

describe('GeneralizedTime', () => {
  it.each([
    ['OpenLDAP form', '20240131120000Z', Date.UTC(2024, 0, 31, 12, 0, 0)],
    ['AD form with tenths', '20240131120000.0Z', Date.UTC(2024, 0, 31, 12, 0, 0)],
    ['fraction of a second', '20240131120000.5Z', Date.UTC(2024, 0, 31, 12, 0, 0, 500)],
    ['minutes only', '202401311200Z', Date.UTC(2024, 0, 31, 12, 0, 0)],
    ['positive offset', '20240131120000+0200', Date.UTC(2024, 0, 31, 10, 0, 0)],
    ['negative offset', '20240131120000-0130', Date.UTC(2024, 0, 31, 13, 30, 0)],
  ])('parses the %s', (_name, text, ms) => {
    expect(parseGeneralizedTime(text)).toBe(ms);
  });

  it.each(['', 'yesterday', '2024-01-31T12:00:00Z', '20241331120000Z', '20240131250000Z', '20240131120000'])(
    'rejects %j',
    (text) => {
      expect(parseGeneralizedTime(text)).toBeUndefined();
    },
  );

  it('formats whole UTC seconds and round-trips', () => {
    const ms = Date.UTC(2025, 10, 3, 4, 5, 6, 789);
    expect(formatGeneralizedTime(ms)).toBe('20251103040506Z');
    expect(parseGeneralizedTime(formatGeneralizedTime(ms))).toBe(Date.UTC(2025, 10, 3, 4, 5, 6));
  });
});
