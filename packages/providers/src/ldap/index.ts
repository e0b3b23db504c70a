/**
 * The LDAP layer shared by the LDAP-based providers (generic LDAP, Active Directory, Domino):
 * secured and bound connections, paged searches, range retrieval, DN and filter handling, and
 * the mapping of every failure to a typed provider error.
 */
export * from './connection.ts';
export * from './dn.ts';
export * from './errors.ts';
export * from './filter.ts';
export * from './protocol.ts';
export * from './search.ts';
export * from './time.ts';
export * from './controls.ts';
export * from './settings.ts';
export * from './check.ts';
