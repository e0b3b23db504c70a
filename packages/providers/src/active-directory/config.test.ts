import { inspect } from 'node:util';
import { createProvider, validateSettings } from '../index.ts';
import { activeDirectorySettingsSchema } from './config.ts';

const valid = {
  url: 'ldaps://dc1.example.com',
  bindDn: 'CN=svc-dirsync,OU=Service,DC=example,DC=com',
  baseDns: ['OU=Staff,DC=example,DC=com'],
};

function problems(settings: unknown): readonly string[] {
  const result = validateSettings('active_directory', settings);
  return result.ok ? [] : result.problems;
}

describe('Active Directory settings', () => {
  it('fills defaults', () => {
    expect(activeDirectorySettingsSchema.parse(valid)).toEqual({
      ...valid,
      tls: { allowInsecure: false },
      objectTypes: ['user', 'group', 'contact'],
      pageSize: 500,
      deltaMethod: 'usn',
      timeouts: { connectMs: 10_000, operationMs: 120_000, searchTimeLimitSeconds: 600 },
      limits: { maxMessageMiB: 64 },
    });
  });

  it('accepts filters, object types, a range size and DirSync', () => {
    expect(
      problems({ ...valid, filter: '(department=Sales)', excludeFilter: '(sAMAccountName=svc-*)', objectTypes: ['user'], rangeSize: 1500, deltaMethod: 'dirsync' }),
    ).toEqual([]);
  });

  it.each([
    ['no base DN', { baseDns: [] }, /^baseDns: baseDns needs at least one base DN$/],
    ['a bad base DN', { baseDns: ['OU=Staff,,DC=x'] }, /^baseDns\[0\]: base DN is not a valid DN/],
    ['nested base DNs', { baseDns: ['DC=example,DC=com', 'OU=Staff,DC=example,DC=com'] }, /^baseDns: base DN "OU=Staff,DC=example,DC=com" lies within "DC=example,DC=com"/],
    ['a bad filter', { filter: '(&(department=Sales)' }, /^filter: "\(&\(department=Sales\)" has unbalanced parentheses$/],
    ['a bad exclude filter', { excludeFilter: 'title=x' }, /^excludeFilter: .*parentheses/],
    ['an unknown object type', { objectTypes: ['computer'] }, /^objectTypes\[0\]: objectTypes must list/],
    ['no object type', { objectTypes: [] }, /^objectTypes: objectTypes needs at least one/],
    ['an unknown delta method', { deltaMethod: 'poll' }, /^deltaMethod: deltaMethod must be "usn" or "dirsync"/],
    ['a range size of 0', { rangeSize: 0 }, /^rangeSize: rangeSize must be at least 1/],
    ['plain LDAP without allowInsecure', { url: 'ldap://dc1', tls: { mode: 'none' } }, /^tls\.allowInsecure: .*unencrypted/],
    ['ldaps mode with an ldap URL', { url: 'ldap://dc1', tls: { mode: 'ldaps' } }, /^tls\.mode: tls\.mode "ldaps" needs an ldaps:\/\/ URL/],
    ['settings of the generic kind', { users: { baseDns: ['DC=x'] } }, /unknown setting "users"/],
  ])('reports %s clearly', (_name, change, message) => {
    expect(problems({ ...valid, ...change })).toEqual(expect.arrayContaining([expect.stringMatching(message)]));
  });

  it('reports every problem at once', () => {
    const found = problems({ url: 'https://x', bindDn: 'svc', baseDns: ['bad'], filter: 'x', tls: { mode: 'none' } });
    for (const path of ['url', 'bindDn', 'baseDns[0]', 'filter', 'tls.allowInsecure']) {
      expect(found).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^${path.replace(/[.[\]]/g, '\\$&')}: `))]));
    }
  });

  it('keeps the bind password out of the provider object\'s serialised and inspected forms', () => {
    const provider = createProvider('active_directory', valid, 'hunter2-secret');
    expect(provider.kind).toBe('active_directory');
    expect(JSON.stringify(provider)).not.toContain('hunter2-secret');
    expect(inspect(provider, { depth: 5, showHidden: true })).not.toContain('hunter2-secret');
  });
});
