import { mappingRuleSchema, unsafePatternReason } from '@dirsync/contracts';

/**
 * Patterns an account can store in an attribute mapping run on every synced entry, on values a
 * customer's directory controls. A pattern whose quantifiers together can split a long value in
 * too many ways backtracks for minutes on one value, even when no single quantifier is long:
 * `a{0,16}` six times before a `b` took more than a minute over 256 "a"s, and each `a?` doubles
 * the ways to match.
 */
describe('regular expressions of a mapping: quantifiers that are short one by one', () => {
  const refused: [string, string][] = [
    ['six short bounded repeats in a row', `${'a{0,16}'.repeat(6)}b`],
    ['four short bounded repeats in a row', `${'a{0,16}'.repeat(4)}b`],
    ['thirty optional atoms in a row', `${'a?'.repeat(30)}b`],
    ['optional atoms with two long quantifiers', `${'a?'.repeat(8)}a*a*b`],
    ['short bounded repeats with two long quantifiers', `${'\\s{0,9}'.repeat(4)}\\s*\\s*$`],
  ];
  test.each(refused)('%s is refused', (_name, pattern) => {
    expect(unsafePatternReason(pattern)).toMatch(/backtrack/);
    const result = mappingRuleSchema.safeParse({ from: 'cn', transform: [{ op: 'regex', pattern }] });
    expect(result.success).toBe(false);
  });

  const accepted = [
    '^([^@]+)@',
    '^CN=([^,]+),OU=([^,]+)',
    '\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}',
    '^\\+?\\d{1,3}[ -]?\\(?\\d{2,4}\\)?[ -]?\\d{3,4}[ -]?\\d{3,4}$',
    'a*a{16}a*b',
    '^\\s*(\\S.*)$',
  ];
  test.each(accepted)('%s stays accepted', (pattern) => {
    expect(unsafePatternReason(pattern)).toBeUndefined();
  });
});
