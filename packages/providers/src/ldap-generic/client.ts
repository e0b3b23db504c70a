import { ConfigError } from '../errors.ts';
import { connectForCheck, describeError, hungReport } from '../ldap/check.ts';
import type { DestinationPolicy } from '../net/destination.ts';
import { LdapConnection } from '../ldap/connection.ts';
import { connectOptionsOf } from '../ldap/settings.ts';
import { andFilters, objectClassFilter } from '../ldap/filter.ts';
import { type SearchOptions, pagedSearch } from '../ldap/search.ts';
import type { ConnectionReport } from '../types.ts';
import type { GenericLdapSettings } from './config.ts';
import { withMappedSources } from '../mapping/engine.ts';
import { groupAttributes, userAttributes } from './map.ts';

/** Opens a connection secured and bound as the settings say, where `destinations` allows. */
export async function openConnection(
  settings: GenericLdapSettings,
  password: string | undefined,
  signal?: AbortSignal,
  destinations?: DestinationPolicy,
): Promise<LdapConnection> {
  if (password === undefined || password === '') {
    throw new ConfigError(`no bind password is stored for ${settings.bindDn}; set the integration's password`);
  }
  return LdapConnection.open(connectOptionsOf(settings, password, signal, destinations));
}


/** The filter selecting users (object classes and the optional extra filter). */
export function usersFilter(settings: GenericLdapSettings): string {
  return andFilters(objectClassFilter(settings.users.objectClasses), settings.users.filter);
}

/** The filter selecting groups. */
export function groupsFilter(settings: GenericLdapSettings): string {
  return andFilters(objectClassFilter(settings.groups.objectClasses), settings.groups.filter);
}

/** Search options for users under `base`, optionally narrowed by an extra filter. */
export function userSearch(settings: GenericLdapSettings, base: string, extra?: string, signal?: AbortSignal): SearchOptions {
  return {
    base,
    filter: andFilters(usersFilter(settings), extra),
    attributes: withMappedSources(userAttributes, settings.attributeMapping, 'user'),
    pageSize: settings.pageSize,
    timeLimitSeconds: settings.timeouts.searchTimeLimitSeconds,
    ...(signal ? { signal } : {}),
  };
}

/** Search options for groups under `base` (member attributes included). */
export function groupSearch(settings: GenericLdapSettings, base: string, extra?: string, signal?: AbortSignal): SearchOptions {
  return {
    base,
    filter: andFilters(groupsFilter(settings), extra),
    attributes: withMappedSources([...groupAttributes, ...settings.groups.memberAttributes], settings.attributeMapping, 'group'),
    pageSize: settings.pageSize,
    timeLimitSeconds: settings.timeouts.searchTimeLimitSeconds,
    ...(signal ? { signal } : {}),
  };
}

async function countEntries(connection: LdapConnection, options: SearchOptions): Promise<number> {
  let count = 0;
  // "1.1" asks for no attributes: the count costs the server little and the client less.
  for await (const page of pagedSearch(connection, { ...options, attributes: ['1.1'] })) count += page.length;
  return count;
}

/**
 * Test Connection: connect, TLS, bind, and whether each users/groups base can be read (with
 * counts). Never throws for directory problems: each becomes a failed line of the checklist.
 */
export async function testGenericLdapConnection(
  settings: GenericLdapSettings,
  password: string | undefined,
  signal?: AbortSignal,
  destinations?: DestinationPolicy,
): Promise<ConnectionReport> {
  const { connection, checks } = await connectForCheck(settings, password, signal, destinations);
  if (!connection) return { ok: false, checks };
  try {
    for (const [name, bases, search] of [
      ['users', settings.users.baseDns, userSearch],
      ['groups', settings.groups.baseDns, groupSearch],
    ] as const) {
      for (const base of bases) {
        try {
          const count = await countEntries(connection, search(settings, base, undefined, signal));
          checks.push({
            name: `${name} base`,
            ok: true,
            detail: `${base}: ${count} ${name} visible`,
            ...(count === 0 ? { warning: true } : {}),
          });
        } catch (error) {
          if (signal?.aborted) return hungReport(checks, `${name} base`, `the search of ${base}`, signal);
          checks.push({ name: `${name} base`, ok: false, detail: `${base}: ${describeError(error)}` });
        }
      }
    }
  } finally {
    await connection.close();
  }
  return { ok: checks.every((c) => c.ok), checks };
}
