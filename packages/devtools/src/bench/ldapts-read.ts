import { realpathSync } from 'node:fs';
import { text } from 'node:stream/consumers';
import { fileURLToPath } from 'node:url';
import { Client } from 'ldapts';
import { ldapGroupAttributes, ldapUserAttributes } from '../local-directory.ts';

/**
 * The ldapts floor's reading process (started by the LDAP benchmark with the worker's V8 flags):
 * `node ldapts-read.ts <url> <bind dn> <suffix>`, the password on stdin. Reads every user, then
 * every group, with the attributes the sync asks for, discards them and prints {@link ReadFigures}
 * as JSON. It holds nothing else, so the read costs what it costs a process of its own.
 */

/** What one read took. */
export interface ReadFigures {
  readonly ms: number;
  readonly entries: number;
}

/** One search of the floors, with the attributes the sync asks for. */
export interface FloorSearch {
  readonly filter: string;
  readonly attributes: readonly string[];
}

/** The users' search, which the sync makes before the groups'. */
export const usersSearch: FloorSearch = { filter: '(objectClass=inetOrgPerson)', attributes: ldapUserAttributes };
/** The groups' search, with their member lists. */
export const groupsSearch: FloorSearch = { filter: '(objectClass=groupOfNames)', attributes: [...ldapGroupAttributes, 'member', 'uniqueMember'] };

async function readAll(url: string, bindDn: string, password: string, suffix: string): Promise<ReadFigures> {
  // A stalled server fails the read instead of holding the benchmark.
  const client = new Client({ url, connectTimeout: 10_000, timeout: 600_000 });
  await client.bind(bindDn, password);
  let entries = 0;
  try {
    const started = performance.now();
    for (const { filter, attributes } of [usersSearch, groupsSearch]) {
      const pages = client.searchPaginated(suffix, { scope: 'sub', filter, attributes: [...attributes], paged: { pageSize: 1000 }, timeLimit: 0 });
      for await (const page of pages) entries += page.searchEntries.length;
    }
    return { ms: performance.now() - started, entries };
  } finally {
    await client.unbind();
  }
}

// Run as a script (the benchmark's child), not imported for its searches. A module's URL is
// its real path; the script's argument may go through a symbolic link.
if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [url, bindDn, suffix] = process.argv.slice(2);
  if (url === undefined || bindDn === undefined || suffix === undefined) throw new Error('usage: ldapts-read.ts <url> <bind dn> <suffix>, the password on stdin');
  process.stdout.write(JSON.stringify(await readAll(url, bindDn, await text(process.stdin), suffix)));
}
