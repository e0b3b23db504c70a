import { CursorRejectedError } from '../errors.ts';
import type { DcState } from './client.ts';
import { type ActiveDirectorySettings, activeDirectorySettingsSchema } from './config.ts';
import { adScopeFingerprint, cursorRejection, makeAdCursor, parseAdCursor } from './fetch.ts';

const settings: ActiveDirectorySettings = activeDirectorySettingsSchema.parse({
  url: 'ldaps://dc1.example.com',
  bindDn: 'CN=svc,DC=example,DC=com',
  baseDns: ['OU=Staff,DC=example,DC=com'],
});

const now = Date.parse('2024-06-01T12:00:00Z');
const dc: DcState = {
  dnsHostName: 'dc1.example.com',
  invocationId: '7a1a9a97-e6d1-4d83-8e91-f871f9d40949',
  highestCommittedUsn: 123_456,
  currentTimeMs: now,
  defaultNamingContext: 'DC=example,DC=com',
  namingContexts: ['dc=example,dc=com'],
  configurationNamingContext: 'CN=Configuration,DC=example,DC=com',
  supportedControls: new Set(),
  tombstoneLifetimeDays: 180,
  vendor: 'test',
};

describe('Active Directory cursors', () => {
  const cursor = makeAdCursor(settings, dc);

  it('hold the DC, its invocationId, the USN read before the fetch and the DC\'s time', () => {
    expect(cursor).toEqual({
      kind: 'active_directory',
      method: 'usn',
      dc: 'dc1.example.com',
      invocationId: dc.invocationId,
      usn: 123_456,
      takenAt: '2024-06-01T12:00:00.000Z',
      scope: adScopeFingerprint(settings),
    });
    expect(parseAdCursor(cursor, settings)).toEqual(cursor);
  });

  it.each([
    ['not an object', [1], /not an object/],
    ['of another kind', { ...cursor, kind: 'ldap' }, /provider kind "ldap", not "active_directory"/],
    ['without a USN', { ...cursor, usn: 'x' }, /lacks its DC, invocationId, USN or time/],
    ['with a bad time', { ...cursor, takenAt: 'yesterday' }, /is not a date/],
    ['of another delta method', { ...cursor, method: 'dirsync', cookie: 'x' }, /delta method changed from "dirsync" to "usn"/],
    ['of another scope', { ...cursor, scope: 'other' }, /base DNs, filters or object types changed/],
  ])('rejects a cursor %s', (_name, bad, reason) => {
    expect(() => parseAdCursor(bad as never, settings)).toThrow(CursorRejectedError);
    expect(() => parseAdCursor(bad as never, settings)).toThrow(reason);
  });

  it('changes scope with the bases, filters and object types, not with their order or case', () => {
    const same = activeDirectorySettingsSchema.parse({ ...settings, baseDns: ['ou=staff,dc=example,dc=com'] });
    expect(adScopeFingerprint(same)).toBe(adScopeFingerprint(settings));
    for (const change of [{ filter: '(title=x)' }, { excludeFilter: '(title=x)' }, { objectTypes: ['user'] }, { baseDns: ['OU=Other,DC=example,DC=com'] }]) {
      expect(adScopeFingerprint(activeDirectorySettingsSchema.parse({ ...settings, ...change }))).not.toBe(adScopeFingerprint(settings));
    }
  });

  it('continue on the same DC within the tombstone lifetime', () => {
    const parsed = parseAdCursor(cursor, settings);
    expect(cursorRejection(parsed, { ...dc, currentTimeMs: now + 179 * 86_400_000 })).toBeUndefined();
  });

  it.each([
    ['on another DC', { dnsHostName: 'dc2.example.com' }, /taken on domain controller dc1\.example\.com, but dc2\.example\.com answers now/],
    ['on a restored DC', { invocationId: '00000000-0000-0000-0000-000000000000' }, /invocationId of dc1\.example\.com changed/],
    ['past the tombstone lifetime', { currentTimeMs: now + 181 * 86_400_000 }, /181 days old, older than the tombstone lifetime \(180 days\)/],
    ['past a shorter tombstone lifetime', { currentTimeMs: now + 61 * 86_400_000, tombstoneLifetimeDays: 60 }, /older than the tombstone lifetime \(60 days\)/],
  ])('do not continue %s', (_name, change, reason) => {
    expect(cursorRejection(parseAdCursor(cursor, settings), { ...dc, ...change })).toMatch(reason);
  });
});
