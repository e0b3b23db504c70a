import { AuthError, ConfigError, ProtocolError, UnavailableError } from '../errors.ts';
import { LdapConnectionClosedError, LdapProtocolError, LdapTimeoutError, ldapResultCode, resultError, toProviderError } from './errors.ts';

const context = { url: 'ldaps://ldap.example.com:636', operation: 'search', base: 'ou=people,dc=x', bindDn: 'cn=reader,dc=x' } as const;
const result = (resultCode: number, diagnosticMessage = '') => ({ resultCode, matchedDn: '', diagnosticMessage, referrals: [] });

describe('resultError', () => {
  it.each([
    [49, AuthError, /invalid credentials as cn=reader,dc=x/],
    [50, AuthError, /insufficient access rights/],
    [8, AuthError, /stronger authentication/],
    [48, AuthError, /stronger authentication/],
    [13, ConfigError, /TLS/],
    [32, ConfigError, /ou=people,dc=x does not exist/],
    [34, ConfigError, /invalid DN syntax/],
    [10, ConfigError, /another server/],
    [4, ConfigError, /size limit/],
    [12, ConfigError, /does not support a control/],
    [3, UnavailableError, /time limit/],
    [51, UnavailableError, /busy/],
    [52, UnavailableError, /unavailable/],
    [80, UnavailableError, /failed/],
  ])('maps result code %i to %p', (code, type, message) => {
    const error = resultError(result(code), context);
    expect(error).toBeInstanceOf(type);
    expect(error.message).toMatch(message);
    expect(error.retryable).toBe(type === UnavailableError);
    expect(ldapResultCode(error)).toBe(code);
  });

  it('includes the server diagnostic and the closest existing entry', () => {
    const error = resultError({ resultCode: 32, matchedDn: 'dc=x', diagnosticMessage: 'not here', referrals: [] }, context);
    expect(error.message).toContain('closest existing entry: dc=x');
    expect(error.message).toContain('server says: not here');
  });

  it.each([
    ['52e', 'wrong password'],
    ['533', 'the account is disabled'],
    ['775', 'the account is locked out'],
  ])('explains Active Directory bind sub-code %s', (code, text) => {
    const diagnostic = `80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data ${code}, v1db1`;
    expect(resultError(result(49, diagnostic), context).message).toMatch(new RegExp(`invalid credentials as cn=reader,dc=x on ldaps://ldap.example.com:636: ${text} \\(server says`));
  });
});

describe('toProviderError', () => {
  const sys = (code: string, message = code) => Object.assign(new Error(message), { code });

  it.each([
    [sys('ECONNREFUSED'), UnavailableError, /cannot reach/],
    [sys('ECONNRESET'), UnavailableError, /cannot reach/],
    [sys('ENOTFOUND'), ConfigError, /not found/],
    [sys('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'), ConfigError, /TLS certificate verification failed.*tls\.caPem/],
    [sys('SELF_SIGNED_CERT_IN_CHAIN'), ConfigError, /TLS certificate verification failed/],
    [sys('ERR_TLS_CERT_ALTNAME_INVALID'), ConfigError, /TLS certificate verification failed/],
    [sys('ERR_SSL_WRONG_VERSION_NUMBER'), ConfigError, /TLS handshake/],
    [new LdapTimeoutError('no response for 5 ms'), UnavailableError, /timed out/],
    [new LdapConnectionClosedError('the server closed the connection'), UnavailableError, /lost during the search/],
    [new LdapProtocolError('bad tag'), ProtocolError, /not valid LDAP/],
    [new LdapProtocolError('too big', 'limit'), ProtocolError, /stopped: too big/],
  ])('maps %p', (error, type, message) => {
    const mapped = toProviderError(error, context);
    expect(mapped).toBeInstanceOf(type);
    expect(mapped.message).toMatch(message);
    expect(mapped.cause).toBe(error);
  });

  it('passes provider errors through unchanged', () => {
    const error = new AuthError('x');
    expect(toProviderError(error, context)).toBe(error);
  });
});
