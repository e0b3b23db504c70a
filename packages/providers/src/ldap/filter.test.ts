import { FilterSyntaxError, andFilters, escapeFilterValue, isValidFilter, objectClassFilter, parseFilter } from './filter.ts';

describe('parseFilter', () => {
  it.each(['(objectClass=*)', '(&(objectClass=person)(!(uid=svc-*)))', '(|(cn=a)(cn=b))', '(modifyTimestamp>=20240101000000Z)', '(cn=a\\29b)'])(
    'accepts %s',
    (text) => {
      expect(isValidFilter(text)).toBe(true);
      expect(parseFilter(text)).toBeDefined();
    },
  );

  it.each([
    ['empty', '', /empty/],
    ['without parentheses', 'objectClass=person', /parentheses/],
    ['unbalanced', '(&(objectClass=person)', /unbalanced/],
    ['closing too early', '(cn=a))(cn=b)', /unbalanced/],
    ['garbage inside', '(&(objectClass=person)(foo))', /not a valid LDAP filter/],
  ])('rejects %s', (_name, text, message) => {
    expect(() => parseFilter(text)).toThrow(FilterSyntaxError);
    expect(() => parseFilter(text)).toThrow(message);
  });
});

describe('filter building', () => {
  it('ands the parts that are present', () => {
    expect(andFilters('(a=1)', undefined, ' ', '(b=2)')).toBe('(&(a=1)(b=2))');
    expect(andFilters('(a=1)')).toBe('(a=1)');
    expect(andFilters()).toBe('(objectClass=*)');
  });

  it('ors object classes', () => {
    expect(objectClassFilter(['inetOrgPerson'])).toBe('(objectClass=inetOrgPerson)');
    expect(objectClassFilter(['a', 'b'])).toBe('(|(objectClass=a)(objectClass=b))');
    expect(objectClassFilter([])).toBeUndefined();
  });

  it('escapes assertion values', () => {
    expect(escapeFilterValue('a*(b)\\c')).toBe('a\\2a\\28b\\29\\5cc');
  });
});
