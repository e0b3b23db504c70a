import { ApiError, assignFieldErrors, checksOf, messageOf, ownsPath, problemFromResponse } from '../src/problem.ts';

describe('problem answers', () => {
  test('a problem+json body becomes an ApiError with its code, detail and field errors', () => {
    const error = problemFromResponse(422, 'Unprocessable Content', {
      type: '/v1/problems/invalid-configuration',
      title: 'Unprocessable Content',
      status: 422,
      detail: 'invalid ldap integration: settings.url: must start with ldap://',
      errors: [{ in: 'body', path: 'settings.url', message: 'must start with ldap://' }, { bogus: true }],
    });
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(422);
    expect(error.code).toBe('invalid-configuration');
    expect(error.detail).toBe('invalid ldap integration: settings.url: must start with ldap://');
    expect(error.errors).toEqual([{ in: 'body', path: 'settings.url', message: 'must start with ldap://' }]);
    expect(messageOf(error)).toBe(error.detail);
  });

  test('an answer that is not a problem still reads in words', () => {
    const error = problemFromResponse(502, 'Bad Gateway', undefined);
    expect(error.code).toBe('http-error');
    expect(error.detail).toBe('the server answered 502 Bad Gateway');
    expect(error.errors).toEqual([]);
    expect(problemFromResponse(500, '', { title: 'Internal Server Error' }).detail).toBe('Internal Server Error');
  });

  test('a field owns the problems at its path and below, never a sibling with the same prefix', () => {
    expect(ownsPath('settings.users.baseDns', 'settings.users.baseDns')).toBe(true);
    expect(ownsPath('settings.users.baseDns', 'settings.users.baseDns[0]')).toBe(true);
    expect(ownsPath('settings.url', 'settings.urlExtra')).toBe(false);
    expect(ownsPath('settings.users', 'settings.users.filter')).toBe(true);
  });

  test('problems go to the most specific field; the rest are left for the summary', () => {
    const { byField, unassigned } = assignFieldErrors(
      [
        { in: 'body', path: 'settings.users.baseDns[1]', message: 'is not a valid DN' },
        { in: 'body', path: 'settings.users.baseDns', message: 'lies within another base' },
        { in: 'body', path: 'settings.users.filter', message: 'bad filter' },
        { in: 'body', path: 'settings.pageSize', message: 'must be at most 100000' },
        { in: 'body', path: '', message: 'nothing to change' },
      ],
      ['settings.users', 'settings.users.baseDns', 'name'],
    );
    expect(byField.get('settings.users.baseDns')).toEqual(['is not a valid DN', 'lies within another base']);
    expect(byField.get('settings.users')).toEqual(['bad filter']);
    expect(byField.has('name')).toBe(false);
    expect(unassigned).toEqual(['settings.pageSize: must be at most 100000', 'nothing to change']);
  });

  test('the checklist of a failed password change is read from the problem', () => {
    const checks = checksOf({
      checks: [
        { name: 'connect', ok: true, detail: 'connected' },
        { name: 'bind', ok: false, detail: 'invalid credentials' },
        { name: 'tls', ok: true, detail: 'plain', warning: true },
        'junk',
      ],
    });
    expect(checks).toEqual([
      { name: 'connect', ok: true, detail: 'connected' },
      { name: 'bind', ok: false, detail: 'invalid credentials' },
      { name: 'tls', ok: true, detail: 'plain', warning: true },
    ]);
    expect(checksOf({})).toEqual([]);
  });
});
