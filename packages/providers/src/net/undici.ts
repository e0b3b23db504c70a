import type * as Undici from 'undici';

let loading: Promise<typeof Undici> | undefined;

/**
 * undici, the HTTP client of the Entra ID provider and of checked HTTPS connections, imported on
 * first use and then shared: it takes about 7 MB of a process's memory (5.4 MB of it heap), which
 * a worker that syncs only LDAP directories would otherwise carry from start to end. A failed
 * import is not kept, so the next use tries again.
 */
export function undiciLibrary(): Promise<typeof Undici> {
  loading ??= import('undici').catch((error: unknown) => {
    loading = undefined;
    throw error;
  });
  return loading;
}
