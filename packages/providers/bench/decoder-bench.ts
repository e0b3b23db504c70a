/**
 * The same read through the bounded decoder and through ldapts' own client: N generated users
 * from a throwaway slapd, paged by 1,000, every entry decoded with the attributes a sync asks
 * for. Prints wall time and client CPU per reader (best of the rounds, after a warm-up).
 *
 *   node packages/providers/bench/decoder-bench.ts [users=20000] [rounds=5]
 *
 * The decoder is kept only while it stays clearly ahead of ldapts on this read.
 */
import { Client } from 'ldapts';
import { startSlapd, testDestinations } from '@dirsync/testkit';
import { userAttributes } from '../src/ldap-generic/map.ts';
import { LdapConnection } from '../src/ldap/connection.ts';
import { pagedSearchRawPages } from '../src/ldap/search.ts';

const users = Number(process.argv[2] ?? 20_000);
const rounds = Number(process.argv[3] ?? 5);
const pageSize = 1000;
const filter = '(objectClass=inetOrgPerson)';

interface Figures {
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly entries: number;
  readonly values: number;
}

async function measure(read: () => Promise<{ entries: number; values: number }>): Promise<Figures> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const { entries, values } = await read();
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { wallMs, cpuMs: (used.user + used.system) / 1000, entries, values };
}

const server = await startSlapd({ data: { users, groups: 0, membersPerGroup: 0, seed: 11 } });
const base = `ou=people,${server.suffix}`;
try {
  const ours = async () => {
    const connection = await LdapConnection.open({
      url: server.url,
      tls: { mode: 'none', allowInsecure: true },
      bindDn: server.readerDn,
      password: server.readerPassword,
      destinations: testDestinations,
    });
    let entries = 0;
    let values = 0;
    try {
      for await (const page of pagedSearchRawPages(connection, { base, filter, attributes: userAttributes, pageSize })) {
        for (let i = 0; i < page.entries.length; i++) {
          const entry = page.entries.entry(i);
          entries += 1;
          for (const list of Object.values(entry.attributes)) values += list.length;
        }
      }
    } finally {
      await connection.close();
    }
    return { entries, values };
  };
  const theirs = async () => {
    const client = new Client({ url: server.url });
    let entries = 0;
    let values = 0;
    try {
      await client.bind(server.readerDn, server.readerPassword);
      const { searchEntries } = await client.search(base, { scope: 'sub', filter, attributes: [...userAttributes], paged: { pageSize } });
      for (const entry of searchEntries) {
        entries += 1;
        for (const [key, value] of Object.entries(entry)) if (key !== 'dn') values += Array.isArray(value) ? value.length : 1;
      }
    } finally {
      await client.unbind();
    }
    return { entries, values };
  };
  // Warm-up: JIT and slapd's caches.
  await ours();
  await theirs();
  const results: Record<'bounded decoder' | 'ldapts Client.search', Figures[]> = { 'bounded decoder': [], 'ldapts Client.search': [] };
  for (let r = 0; r < rounds; r++) {
    results['bounded decoder'].push(await measure(ours));
    results['ldapts Client.search'].push(await measure(theirs));
  }
  const best = (list: Figures[]) => list.reduce((a, b) => (b.cpuMs < a.cpuMs ? b : a));
  console.log(`${users} users, pages of ${pageSize}, ${rounds} rounds (best round by client CPU), Node ${process.version}`);
  const rows = Object.entries(results).map(([name, list]) => ({ name, ...best(list) }));
  for (const row of rows) {
    console.log(
      `${row.name.padEnd(22)} wall ${row.wallMs.toFixed(0).padStart(6)} ms   client CPU ${row.cpuMs.toFixed(0).padStart(6)} ms   ${row.entries} entries, ${row.values} values   ${(row.entries / (row.wallMs / 1000)).toFixed(0)} entries/s`,
    );
  }
  const [mine, other] = rows as [(typeof rows)[number], (typeof rows)[number]];
  if (mine.entries !== other.entries) throw new Error(`the readers disagree: ${mine.entries} vs ${other.entries} entries`);
  console.log(`ldapts / bounded decoder: wall ×${(other.wallMs / mine.wallMs).toFixed(2)}, client CPU ×${(other.cpuMs / mine.cpuMs).toFixed(2)}`);
} finally {
  await server.stop();
}
