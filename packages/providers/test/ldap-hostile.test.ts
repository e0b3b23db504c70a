import { type HostileBehaviour, type HostileLdapServer, hostileMarker, startHostileLdap, testDestinations } from '@dirsync/testkit';
import { ProtocolError, ProviderError, UnavailableError } from '../src/errors.ts';
import { type GenericLdapEntry, type Provider, createProvider } from '../src/index.ts';
import { LdapConnection } from '../src/ldap/connection.ts';
import { pagedSearchRawPages } from '../src/ldap/search.ts';

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
  return createProvider(
    'ldap',
    {
      url: server.url,
      bindDn: server.bindDn,
      tls: { mode: 'none', allowInsecure: true },
      users: { baseDns: [server.usersBase] },
      groups: { baseDns: [server.groupsBase] },
      pageSize: 10,
      timeouts: { connectMs: 60_000, operationMs: 60_000, searchTimeLimitSeconds: 600 },
      ...extra,
    },
    server.password,
    { destinations: testDestinations },
  ) as Provider<GenericLdapEntry>;
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
