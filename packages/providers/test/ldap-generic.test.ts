import { Attribute, Change } from 'ldapts';
import { type SlapdServer, groupDn, startSlapd, testDestinations, userDn } from '@dirsync/testkit';
import { AuthError, ConfigError, CursorRejectedError, UnavailableError } from '../src/errors.ts';
import {
  type CanonicalObject,
  type Cursor,
  type FetchPage,
  type GenericLdapEntry,
  type Provider,
  createProvider,
} from '../src/index.ts';

const users = 180;
const groups = 12;
const membersPerGroup = 25;
const bulkStamp = new Date(Date.UTC(2020, 0, 1));
let server: SlapdServer;
const providers: Provider[] = [];

function settings(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    url: server.url,
    bindDn: server.readerDn,
    tls: { mode: 'none', allowInsecure: true },
    users: { baseDns: [`ou=people,${server.suffix}`] },
    groups: { baseDns: [`ou=groups,${server.suffix}`] },
    pageSize: 40,
    ...overrides,
  };
}

function provider(overrides: Record<string, unknown> = {}, password: string | undefined = server.readerPassword): Provider<GenericLdapEntry> {
  const p = createProvider('ldap', settings(overrides), password, { destinations: testDestinations }) as Provider<GenericLdapEntry>;
  providers.push(p);
  return p;
}

interface Drained {
  pages: FetchPage<GenericLdapEntry>[];
  objects: CanonicalObject[];
  cursor: Cursor | undefined;
}

async function drain(p: Provider<GenericLdapEntry>, pages: AsyncIterable<FetchPage<GenericLdapEntry>>): Promise<Drained> {
  const out: Drained = { pages: [], objects: [], cursor: undefined };
  for await (const page of pages) {
    out.pages.push(page);
    for (const entry of page.entries) {
      const mapped = p.map(entry);
      if (!mapped.ok) throw new Error(`mapping failed: ${mapped.reason}`);
      out.objects.push(mapped.object);
    }
    if (page.cursor) out.cursor = page.cursor;
  }
  return out;
}

const byDn = (objects: CanonicalObject[], dn: string) => objects.find((o) => o.dn === dn.toLowerCase());

beforeAll(async () => {
  server = await startSlapd({ data: { users, groups, membersPerGroup, seed: 21, timestamp: bulkStamp } });
});
afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close()));
});
afterAll(async () => {
  await server.stop();
});

describe('generic LDAP provider against slapd', () => {
  it('reads every user, then every group, as the read-only account; the last page carries the cursor', async () => {
    const p = provider();
    const { pages, objects, cursor } = await drain(p, p.fetchFull(new AbortController().signal));
    const types = objects.map((o) => o.type);
    expect(types.filter((t) => t === 'user')).toHaveLength(users);
    expect(types.filter((t) => t === 'group')).toHaveLength(groups);
    // Users first, then groups: the pipeline resolves member DNs against users already stored.
    expect(types.lastIndexOf('user')).toBeLessThan(types.indexOf('group'));
    expect(new Set(objects.map((o) => o.externalId)).size).toBe(users + groups);
    expect(pages.slice(0, -1).every((page) => page.cursor === undefined)).toBe(true);
    expect(pages.every((page) => page.deletions === undefined)).toBe(true);
    expect(cursor).toMatchObject({ kind: 'ldap', server: server.url, highWater: '20200101000000Z' });

    const user = byDn(objects, userDn(5));
    expect(user?.attributes).toMatchObject({ uid: 'user0000005', employeeNumber: '100005' });
    expect(user?.attributes).not.toHaveProperty('dn');
    const userDns = new Set(objects.filter((o) => o.type === 'user').map((o) => o.dn));
    const group = byDn(objects, groupDn(3));
    expect(group?.members).toHaveLength(membersPerGroup);
    for (const member of group?.members ?? []) {
      expect(member.by).toBe('dn');
      expect(userDns.has(member.value)).toBe(true);
    }
  });

  it('picks up a modify, an add, a membership change and a move in a delta, and never reports deletions', async () => {
    const p = provider();
    const admin = await server.client();
    try {
      // A change before the full sync, so its high-water mark is a live stamp rather than the bulk stamp.
      await admin.modify(userDn(1), new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Before'] }) }));
      const full = await drain(p, p.fetchFull(new AbortController().signal));
      const before = byDn(full.objects, userDn(7));
      expect(full.cursor?.['highWater']).not.toBe('20200101000000Z');

      await admin.modify(userDn(2), new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Chief Tester'] }) }));
      await admin.add(`uid=newcomer,ou=people,${server.suffix}`, {
        objectClass: ['inetOrgPerson'],
        uid: 'newcomer',
        cn: 'New Comer',
        sn: 'Comer',
        mail: 'newcomer@example.org',
      });
      await admin.modify(groupDn(4), new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [`uid=newcomer,ou=people,${server.suffix}`] }) }));
      await admin.add(`ou=alumni,ou=people,${server.suffix}`, { objectClass: ['organizationalUnit'], ou: 'alumni' });
      await admin.modifyDN(userDn(7), `uid=user0000007,ou=alumni,ou=people,${server.suffix}`);
      await admin.del(userDn(9));

      const delta = await drain(p, p.fetchDelta(full.cursor as Cursor, new AbortController().signal));
      const dns = delta.objects.map((o) => o.dn);
      expect(dns).toEqual(
        expect.arrayContaining([
          userDn(2),
          `uid=newcomer,ou=people,${server.suffix}`,
          groupDn(4),
          `uid=user0000007,ou=alumni,ou=people,${server.suffix}`,
        ]),
      );
      // Only what changed since the mark: the bulk-loaded entries stay out.
      expect(delta.objects.length).toBeLessThanOrEqual(5);
      expect(byDn(delta.objects, userDn(2))?.attributes['title']).toBe('Chief Tester');
      expect(byDn(delta.objects, groupDn(4))?.members).toContainEqual({ by: 'dn', value: `uid=newcomer,ou=people,${server.suffix}` });
      const moved = byDn(delta.objects, `uid=user0000007,ou=alumni,ou=people,${server.suffix}`);
      expect(moved?.externalId).toBe(before?.externalId);
      expect(moved?.attributes).toEqual(before?.attributes);
      expect(delta.pages.every((page) => page.deletions === undefined)).toBe(true);
      expect(delta.objects.some((o) => o.dn === userDn(9))).toBe(false);
      expect(delta.cursor?.['highWater'] as string >= (full.cursor?.['highWater'] as string)).toBe(true);
    } finally {
      await admin.unbind();
    }
  });

  it('keeps entryUUID across a rename', async () => {
    const p = provider();
    const admin = await server.client();
    try {
      const full = await drain(p, p.fetchFull(new AbortController().signal));
      const before = byDn(full.objects, userDn(11));
      await admin.modifyDN(userDn(11), 'uid=renamed11');
      const delta = await drain(p, p.fetchDelta(full.cursor as Cursor, new AbortController().signal));
      const after = byDn(delta.objects, `uid=renamed11,ou=people,${server.suffix}`);
      expect(after?.externalId).toBe(before?.externalId);
      expect(after?.attributes['uid']).toBe('renamed11');
    } finally {
      await admin.unbind();
    }
  });

  it('rejects cursors it cannot use, saying why', async () => {
    const p = provider();
    const { cursor } = await drain(p, p.fetchFull(new AbortController().signal));
    const signal = new AbortController().signal;
    const attempt = (c: Cursor) => drain(p, p.fetchDelta(c, signal));
    await expect(attempt({ ...cursor, server: 'ldap://other.example.com:389' })).rejects.toThrow(CursorRejectedError);
    await expect(attempt({ ...cursor, server: 'ldap://other.example.com:389' })).rejects.toThrow(/other\.example\.com/);
    await expect(attempt({ ...cursor, highWater: 'yesterday' })).rejects.toThrow(/not a GeneralizedTime/);
    await expect(attempt({ kind: 'entra', token: 'x' })).rejects.toThrow(/kind "entra"/);
    const wider = provider({ users: { baseDns: [server.suffix] } });
    await expect(drain(wider, wider.fetchDelta(cursor as Cursor, signal))).rejects.toThrow(/base DNs, filters or member attributes changed/);
  });

  it('fails with AuthError on a wrong password and ConfigError on a wrong base DN', async () => {
    const wrongPassword = provider({}, 'not-the-password');
    const authError = await drain(wrongPassword, wrongPassword.fetchFull(new AbortController().signal)).catch((e: unknown) => e);
    expect(authError).toBeInstanceOf(AuthError);
    expect((authError as Error).message).not.toContain('not-the-password');

    const wrongBase = provider({ users: { baseDns: [`ou=staff,${server.suffix}`] } });
    const configError = await drain(wrongBase, wrongBase.fetchFull(new AbortController().signal)).catch((e: unknown) => e);
    expect(configError).toBeInstanceOf(ConfigError);
    expect((configError as Error).message).toContain(`ou=staff,${server.suffix} does not exist`);
  });

  it('fails a fetch whose server dies mid-paging with a retryable error and no cursor', async () => {
    const p = provider({ pageSize: 10 });
    const pages = p.fetchFull(new AbortController().signal)[Symbol.asyncIterator]();
    expect((await pages.next()).value?.entries).toHaveLength(10);
    await server.kill();
    try {
      let cursor: Cursor | undefined;
      const error = await (async () => {
        for (;;) {
          const next = await pages.next();
          if (next.done) return undefined;
          cursor ??= next.value.cursor;
        }
      })().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnavailableError);
      expect((error as UnavailableError).retryable).toBe(true);
      expect(cursor).toBeUndefined();
    } finally {
      await server.restart();
    }
  });

  it('answers Test Connection with a checklist', async () => {
    const report = await provider().testConnection();
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual(['connect', 'tls', 'bind', 'users base', 'groups base']);
    expect(report.checks.find((c) => c.name === 'tls')).toMatchObject({ ok: true, warning: true });
    expect(report.checks.find((c) => c.name === 'groups base')?.detail).toContain(`${groups} groups visible`);

    const refused = await provider({}, 'bad-password').testConnection();
    expect(refused.ok).toBe(false);
    expect(refused.checks.find((c) => c.name === 'bind')).toMatchObject({ ok: false, detail: expect.stringContaining('invalid credentials') });
    expect(JSON.stringify(refused)).not.toContain('bad-password');

    const withoutPassword = createProvider('ldap', settings(), undefined, { destinations: testDestinations });
    providers.push(withoutPassword);
    const noPassword = await withoutPassword.testConnection();
    expect(noPassword.checks.map((c) => [c.name, c.ok])).toEqual([
      ['connect', true],
      ['tls', true],
      ['bind', false],
    ]);

    const unreachable = await provider({ url: 'ldap://127.0.0.1:1' }).testConnection();
    expect(unreachable).toEqual({ ok: false, checks: [expect.objectContaining({ name: 'connect', ok: false })] });
  });

  it('refuses invalid settings with every problem in one ConfigError', () => {
    expect(() => createProvider('ldap', { ...settings(), url: 'http://x', bindDn: 'nope' }, 'pw')).toThrow(ConfigError);
    expect(() => createProvider('ldap', { ...settings(), url: 'http://x', bindDn: 'nope' }, 'pw')).toThrow(/url: .*; bindDn: /);
  });
});
