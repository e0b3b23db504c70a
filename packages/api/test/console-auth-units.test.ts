import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { assetPathUnder, mapRolesClaim, safeReturnTo } from '../src/console/index.ts';

const accounts = [
  { id: '11111111-1111-4111-8111-111111111111', name: 'acme' },
  { id: '22222222-2222-4222-8222-222222222222', name: 'globex' },
  { id: '33333333-3333-4333-8333-333333333333', name: 'team:blue' },
];

describe('the roles claim', () => {
  test('maps "<account>:<role>" entries to grants, keeping the highest role per account', () => {
    expect(mapRolesClaim(['acme:viewer', 'globex:operator', 'acme:admin', 'team:blue:viewer'], accounts)).toEqual({
      grants: [
        { accountId: accounts[0]?.id, role: 'admin' },
        { accountId: accounts[1]?.id, role: 'operator' },
        { accountId: accounts[2]?.id, role: 'viewer' },
      ],
      platformRole: null,
      ignored: 0,
    });
  });

  test('a space-separated string works; "*:<role>" is a platform role; roles are case-insensitive', () => {
    expect(mapRolesClaim('acme:Viewer  *:operator *:viewer', accounts)).toEqual({ grants: [{ accountId: accounts[0]?.id, role: 'viewer' }], platformRole: 'operator', ignored: 0 });
  });

  test('unknown accounts, unknown roles and malformed entries are ignored and counted', () => {
    expect(mapRolesClaim(['nosuch:admin', 'acme:owner', 'acme', ':admin', 42, null, 'globex:'], accounts)).toEqual({ grants: [], platformRole: null, ignored: 5 });
    for (const value of [undefined, null, 42, { acme: 'admin' }, '']) expect(mapRolesClaim(value, accounts)).toEqual({ grants: [], platformRole: null, ignored: 0 });
  });
});

describe('returnTo', () => {
  test('keeps paths under /console/ with their query, and nothing else', () => {
    expect(safeReturnTo('/console/integrations/abc?tab=runs')).toBe('/console/integrations/abc?tab=runs');
    for (const value of [undefined, 42, '', '/', '/v1/integrations', 'https://evil.example/console/', '//evil.example/console/', '/console/../v1/x', '/console/%2e%2e/v1', '/console\\@evil', '/console/\u0000', '/consolex/']) {
      const result = safeReturnTo(value);
      expect(result.startsWith('/console/')).toBe(true);
      expect(result).not.toMatch(/evil|v1/);
    }
  });
});

describe('asset paths', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dirsync-asset-paths-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('plain relative paths stay under the root; anything that could leave it is refused', () => {
    expect(assetPathUnder(root, 'app-1.js')).toBe(resolve(root, 'app-1.js'));
    expect(assetPathUnder(root, 'fonts/a.woff2')).toBe(resolve(root, 'fonts/a.woff2'));
    for (const path of ['', '../x', 'a/../../x', '..', './x', '/etc/passwd', 'a\\..\\x', 'a//b', '.env', 'a/.git/config', 'x\u0000.js', 'a/..']) {
      expect(assetPathUnder(root, path)).toBeUndefined();
    }
  });
});
