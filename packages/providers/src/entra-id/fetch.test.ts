import { CursorRejectedError } from '../errors.ts';
import { DeltaTokenExpiredError } from './client.ts';
import { isRoundExpired, parseCursor, selectionFingerprint } from './fetch.ts';

const settings = { tenantId: 'Contoso.onmicrosoft.com', graphBaseUrl: 'https://graph.example' };
const good = {
  kind: 'entra_id',
  tenantId: 'contoso.onmicrosoft.com',
  selection: selectionFingerprint,
  users: 'https://graph.example/v1.0/users/delta?$deltatoken=a',
  groups: 'https://graph.example/v1.0/groups/delta?$deltatoken=b',
};

describe('parseCursor', () => {
  it('accepts the cursor it made', () => {
    expect(parseCursor(good, settings)).toEqual(good);
  });

  it.each([
    ['another kind', { ...good, kind: 'ldap' }, /not an Entra ID delta cursor/],
    ['another tenant', { ...good, tenantId: 'fabrikam.onmicrosoft.com' }, /made for tenant fabrikam/],
    ['another selection', { ...good, selection: 'old' }, /selected attributes changed/],
    ['links to another host', { ...good, groups: 'https://evil.example/v1.0/groups/delta' }, /do not point to https:\/\/graph\.example/],
    ['a missing link', { ...good, users: undefined }, /not an Entra ID delta cursor/],
  ])('rejects %s', (_name, cursor, reason) => {
    expect(() => parseCursor(cursor as never, settings)).toThrow(CursorRejectedError);
    expect(() => parseCursor(cursor as never, settings)).toThrow(reason);
  });
});

describe('isRoundExpired', () => {
  it.each([
    ['an expired delta token', new DeltaTokenExpiredError('410 resyncRequired'), true],
    ['a 410 with a Location, as a plain client error', Object.assign(new Error('Gone'), { statusCode: 410, location: 'https://graph.example/v1.0/users/delta?$deltatoken=' }), true],
    ['a 410 status field', { status: 410 }, true],
    ['a throttled request', Object.assign(new Error('Too Many Requests'), { statusCode: 429 }), false],
    ['an unrelated error', new Error('socket hang up'), false],
    ['nothing', undefined, false],
  ])('%s: %s', (_name, error, expected) => {
    expect(isRoundExpired(error)).toBe(expected);
  });
});
