import type { GenericLdapSettingsInput } from '@dirsync/providers';
import type { SlapdServer } from '@dirsync/testkit';

export { groupAttributes as ldapGroupAttributes, userAttributes as ldapUserAttributes } from '@dirsync/providers';

/**
 * Settings of a generic LDAP integration reading a throwaway testkit slapd as its read-only
 * account. With a TLS-enabled server the connection uses StartTLS and verifies the server against
 * the test CA; otherwise plain LDAP on loopback is opted into explicitly.
 */
export function ldapIntegrationSettings(server: SlapdServer): GenericLdapSettingsInput {
  return {
    url: server.url,
    bindDn: server.readerDn,
    tls: server.tls ? { mode: 'starttls', caPem: server.tls.caPem } : { mode: 'none', allowInsecure: true },
    users: { baseDns: [`ou=people,${server.suffix}`] },
    groups: { baseDns: [`ou=groups,${server.suffix}`] },
  };
}
