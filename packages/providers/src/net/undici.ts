import type * as Undici from 'undici';

/**
 * undici, the HTTP client of the Entra ID provider and of checked HTTPS connections, imported on
 * first use (later calls get the module the first one loaded): it takes about 7 MB of a process's
 * memory (5.4 MB of it heap), which a worker that syncs only LDAP directories would otherwise
 * carry from start to end.
 */
export function undiciLibrary(): Promise<typeof Undici> {
  return import('undici');
}
