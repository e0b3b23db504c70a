import { consoleOidcOf, consoleUrlOf, loadConfig } from './config.ts';

describe('console settings', () => {
  test('defaults: the console on localhost:PORT, 8-hour sessions, one-time links only', () => {
    const config = loadConfig({ PORT: '9000' });
    expect(consoleUrlOf(config)).toBe('http://localhost:9000');
    expect(config.DIRSYNC_CONSOLE_SESSION_HOURS).toBe(8);
    expect(consoleOidcOf(config)).toBeUndefined();
    // Blank values (`VAR=` in a compose file) count as unset.
    expect(consoleOidcOf(loadConfig({ DIRSYNC_OIDC_ISSUER: ' ', DIRSYNC_OIDC_CLIENT_ID: '' }))).toBeUndefined();
  });

  test('OpenID Connect settings are read together, with their defaults', () => {
    const config = loadConfig({ DIRSYNC_CONSOLE_URL: 'https://dirsync.example.com/', DIRSYNC_OIDC_ISSUER: 'https://idp.example.com/realms/acme', DIRSYNC_OIDC_CLIENT_ID: 'dirsync' });
    expect(consoleUrlOf(config)).toBe('https://dirsync.example.com');
    expect(consoleOidcOf(config)).toEqual({ issuer: 'https://idp.example.com/realms/acme', clientId: 'dirsync', clientSecret: undefined, scopes: 'openid profile email', rolesClaim: 'dirsync_roles' });
    expect(consoleOidcOf(loadConfig({ DIRSYNC_OIDC_ISSUER: 'http://127.0.0.1:4000', DIRSYNC_OIDC_CLIENT_ID: 'c', DIRSYNC_OIDC_CLIENT_SECRET: 's', DIRSYNC_OIDC_ROLES_CLAIM: 'groups' }))).toMatchObject({
      clientSecret: 's',
      rolesClaim: 'groups',
    });
  });

  test('every mistake is reported together', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return '';
      } catch (error) {
        return (error as Error).message;
      }
    };
    const both = problems({ DIRSYNC_OIDC_ISSUER: 'http://idp.example.com', DIRSYNC_CONSOLE_SESSION_HOURS: '0', DIRSYNC_CONSOLE_URL: 'ftp://x', DIRSYNC_OIDC_SCOPES: 'profile' });
    expect(both).toContain('DIRSYNC_OIDC_ISSUER is set without DIRSYNC_OIDC_CLIENT_ID');
    expect(both).toContain('DIRSYNC_OIDC_ISSUER must be an https:// URL (http only on loopback');
    expect(both).toContain('DIRSYNC_CONSOLE_SESSION_HOURS must be 0.25–720');
    expect(both).toContain('DIRSYNC_CONSOLE_URL must be an http:// or https:// origin');
    expect(problems({ DIRSYNC_CONSOLE_URL: 'https://dirsync.example.com/dirsync' })).toContain('DIRSYNC_CONSOLE_URL must be an http:// or https:// origin without a path');
    expect(both).toContain('DIRSYNC_OIDC_SCOPES must include openid');
    expect(problems({ DIRSYNC_OIDC_CLIENT_ID: 'c', DIRSYNC_OIDC_CLIENT_SECRET: 's' })).toMatch(/DIRSYNC_OIDC_CLIENT_ID is set without DIRSYNC_OIDC_ISSUER[\s\S]*DIRSYNC_OIDC_CLIENT_SECRET is set without/);
    expect(problems({ DIRSYNC_OIDC_ISSUER: 'http://localhost:8081', DIRSYNC_OIDC_CLIENT_ID: 'c' })).toBe('');
  });
});
