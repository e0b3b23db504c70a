import { readFile } from 'node:fs/promises';
import { Attribute, Change } from 'ldapts';
import { type SlapdServer, startSlapd, testDestinations, userDn, waitFor } from '@dirsync/testkit';
import { AuthError, ConfigError, UnavailableError } from '../src/errors.ts';
import {
  type LdapConnectOptions,
  LdapConnection,
  pagedSearch,
  pagedSearchPages,
  readEntry,
  readRangedValues,
  readRootDse,
  searchAll,
} from '../src/ldap/index.ts';

const users = 237;
const groups = 9;
let server: SlapdServer;
const open: LdapConnection[] = [];

function options(overrides: Partial<LdapConnectOptions> = {}): LdapConnectOptions {
  return {
    url: server.url,
    tls: { mode: 'none', allowInsecure: true },
    bindDn: server.readerDn,
    password: server.readerPassword,
    destinations: testDestinations,
    ...overrides,
  };
}

async function connect(overrides: Partial<LdapConnectOptions> = {}): Promise<LdapConnection> {
  const connection = await LdapConnection.open(options(overrides));
  open.push(connection);
  return connection;
}

beforeAll(async () => {
  server = await startSlapd({ data: { users, groups, membersPerGroup: 60, seed: 11 } });
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await server.stop();
});

describe('paged search', () => {
  it.each([1, 7, 100, 1000])('returns every entry exactly once with page size %i', async (pageSize) => {
    const connection = await connect();
    const dns = new Set<string>();
    let pages = 0;
    for await (const page of pagedSearch(connection, {
      base: `ou=people,${server.suffix}`,
      filter: '(objectClass=inetOrgPerson)',
      attributes: ['uid'],
      pageSize,
    })) {
      pages++;
      expect(page.length).toBeLessThanOrEqual(pageSize);
      for (const entry of page) dns.add(entry.dn);
    }
    expect(dns.size).toBe(users);
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(users / pageSize));
  });

  it('returns only the requested attributes, lower-cased, values as arrays', async () => {
    const connection = await connect();
    const entry = await readEntry(connection, userDn(3), ['UID', 'mail', 'entryUUID']);
    expect(Object.keys(entry?.attributes ?? {}).sort()).toEqual(['entryuuid', 'mail', 'uid']);
    expect(entry?.attributes['uid']).toEqual(['user0000003']);
    expect(entry?.attributes['entryuuid']?.[0]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('returns binary attributes as Buffers', async () => {
    const admin = await server.client();
    const photo = Buffer.from([0xff, 0xd8, 0xff, 0x00, 0x01, 0x80]);
    await admin.modify(userDn(4), new Change({ operation: 'replace', modification: new Attribute({ type: 'jpegPhoto', values: [photo] }) }));
    await admin.unbind();
    const connection = await connect();
    const entry = await readEntry(connection, userDn(4), ['jpegPhoto', 'uid'], { binaryAttributes: ['JPEGPHOTO'] });
    expect(entry?.buffers['jpegphoto']).toEqual([photo]);
    expect(entry?.attributes['uid']).toEqual(['user0000004']);
  });

  it('passes extra controls and reports response controls per page', async () => {
    const connection = await connect();
    const pages = [];
    for await (const page of pagedSearchPages(connection, { base: `ou=groups,${server.suffix}`, attributes: ['cn'], pageSize: 4 })) {
      pages.push(page);
    }
    expect(pages.map((p) => p.entries.length)).toEqual([4, 4, 2]);
    expect(pages[0]?.response.controls.map((c) => c.oid)).toContain('1.2.840.113556.1.4.319');
  });

  it('reads the root DSE anonymously-visible parts', async () => {
    const connection = await connect();
    const dse = await readRootDse(connection);
    expect(dse?.attributes['namingcontexts']).toEqual([server.suffix]);
    expect(dse?.attributes['supportedcontrol']).toContain('1.2.840.113556.1.4.319');
  });

  it('reads multi-valued attributes through the range helper (slapd ignores ranged requests)', async () => {
    const connection = await connect();
    const dn = `cn=group00002,ou=groups,${server.suffix}`;
    const values = await readRangedValues(connection, dn, 'member', { rangeSize: 10 });
    const plain = await readEntry(connection, dn, ['member']);
    expect(values).toHaveLength(60);
    expect(values).toEqual(plain?.attributes['member']);
  });
});

describe('typed errors', () => {
  it('refuses invalid credentials with a non-retryable AuthError that hides the password', async () => {
    const error = await LdapConnection.open(options({ password: 'wrong-password-123' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).retryable).toBe(false);
    expect((error as Error).message).toContain('invalid credentials');
    expect((error as Error).message).not.toContain('wrong-password-123');
  });

  it('refuses an empty password instead of binding anonymously', async () => {
    await expect(LdapConnection.open(options({ password: '' }))).rejects.toThrow(ConfigError);
  });

  it('reports a base DN that does not exist as ConfigError', async () => {
    const connection = await connect();
    const error = await searchAll(connection, { base: `ou=nowhere,${server.suffix}`, attributes: ['cn'] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(`ou=nowhere,${server.suffix} does not exist`);
  });

  it('reports an invalid base DN and an invalid filter as ConfigError', async () => {
    const connection = await connect();
    await expect(searchAll(connection, { base: 'not a dn', attributes: ['cn'] })).rejects.toThrow(ConfigError);
    await expect(searchAll(connection, { base: server.suffix, filter: '(&(cn=a)', attributes: ['cn'] })).rejects.toThrow(ConfigError);
  });

  it('refuses plain LDAP without allowInsecure before connecting', async () => {
    await expect(LdapConnection.open(options({ tls: { mode: 'none' } }))).rejects.toThrow(/allowInsecure/);
  });

  it('reports a refused connection as retryable UnavailableError', async () => {
    const error = await LdapConnection.open(options({ url: 'ldap://127.0.0.1:1' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as UnavailableError).retryable).toBe(true);
  });

  it('aborts a search when the signal fires', async () => {
    const connection = await connect();
    const controller = new AbortController();
    const pages = pagedSearch(connection, { base: server.suffix, attributes: ['cn'], pageSize: 5, signal: controller.signal });
    await pages.next();
    controller.abort(new Error('stop now'));
    await expect(pages.next()).rejects.toThrow('stop now');
    // The connection stays usable after an abandoned search.
    expect((await readEntry(connection, userDn(0), ['uid']))?.attributes['uid']).toEqual(['user0000000']);
  });
});

describe('a server dying mid-paging', () => {
  it('fails the search with a retryable UnavailableError', async () => {
    const connection = await connect();
    const pages = pagedSearch(connection, { base: `ou=people,${server.suffix}`, attributes: ['uid'], pageSize: 10 });
    const first = await pages.next();
    expect(first.value).toHaveLength(10);
    await server.kill();
    try {
      const error = await (async () => {
        for (;;) {
          const next = await pages.next();
          if (next.done) return undefined;
        }
      })().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnavailableError);
      expect((error as UnavailableError).retryable).toBe(true);
      expect((error as Error).message).toMatch(/lost|cannot reach/);
    } finally {
      await server.restart();
    }
  });

  it('times out an operation the server never answers', async () => {
    const connection = await connect({ operationTimeoutMs: 300 });
    // SIGSTOP freezes slapd: the connection stays open but nothing comes back.
    process.kill(server.pid as number, 'SIGSTOP');
    try {
      // Stopping is asynchronous: wait until the kernel reports slapd stopped ("T") before asking.
      await waitFor(async () => /^\d+ \(.*\) T/.test(await readFile(`/proc/${server.pid}/stat`, 'utf8')), { timeoutMs: 5_000, intervalMs: 5, what: 'slapd to stop' });
      const error = await searchAll(connection, { base: server.suffix, attributes: ['cn'] }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnavailableError);
      expect((error as Error).message).toContain('timed out');
    } finally {
      process.kill(server.pid as number, 'SIGCONT');
    }
  });
});
