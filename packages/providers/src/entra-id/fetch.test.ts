import { CursorRejectedError } from '../errors.ts';
import { parseCursor, selectionFingerprint } from './fetch.ts';

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
