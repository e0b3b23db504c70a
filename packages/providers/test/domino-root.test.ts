import { Attribute } from 'ldapts';
import { type DominoDirectorySpec, type DominoServer, dominoGroupDn, dominoPersonDn, dominoSuffix, dominoUnid, startDomino, testDestinations } from '@dirsync/testkit';
import { CursorRejectedError } from '../src/errors.ts';
import { type CanonicalObject, type ConnectionReport, type Cursor, type DominoSettingsInput, type Provider, createProvider } from '../src/index.ts';

// Groups directly under the directory root, beside the organisation, as a Domino server keeps
// them, read with the groups base "" (the root) and its default one-level scope. slapd cannot
// hold entries at the empty DN itself: its database suffix `dc=root` stands in for the root
// (`cn=Group 00001,dc=root` next to `o=Acme,dc=root`), and slapd answers searches of "" from it
// (defaultsearchbase). What this proves: the empty base goes on the wire and is read one level
// deep, paged or split under a size limit; every group there is read with its members; entries
// beside them that are not groups, and groups further down, are not taken.

const root = 'dc=root';
const spec: DominoDirectorySpec = { people: 60, groups: 45, membersPerGroup: 4, root };
const organisation = dominoSuffix(spec);
const deepGroupUnid = 'DEE00000000000000000000000000001';
const rootPersonUnid = 'A0070000000000000000000000000001';
const servers: DominoServer[] = [];

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

/**
 * Starts the directory with two decoys: a group one level further down (in `ou=Groups` of the
 * organisation), which a one-level read of the root must not reach, and a person at the root,
 * which is no group.
 */
async function start(paging: boolean): Promise<DominoServer> {
  const server = await startDomino({ data: spec, sizeLimit: 20, paging });
  servers.push(server);
  const admin = await server.client();
  try {
    await admin.add(`cn=Deep Group,ou=Groups,${organisation}`, [
      new Attribute({ type: 'objectClass', values: ['top', 'dominoGroup'] }),
      new Attribute({ type: 'cn', values: ['Deep Group'] }),
      new Attribute({ type: 'dominoUNID', values: [deepGroupUnid] }),
      new Attribute({ type: 'member', values: [dominoPersonDn(spec, 0, organisation)] }),
    ]);
    await admin.add(`cn=Root Person,${root}`, [
      new Attribute({ type: 'objectClass', values: ['top', 'person', 'organizationalPerson', 'inetOrgPerson', 'dominoPerson'] }),
      new Attribute({ type: 'cn', values: ['Root Person'] }),
      new Attribute({ type: 'sn', values: ['Person'] }),
      new Attribute({ type: 'dominoUNID', values: [rootPersonUnid] }),
    ]);
  } finally {
    await admin.unbind();
  }
  return server;
}

function settings(server: DominoServer, change: Partial<DominoSettingsInput>): DominoSettingsInput {
  return {
    url: server.url,
    bindDn: server.readerDn,
    tls: { mode: 'none', allowInsecure: true },
    users: { baseDns: [organisation] },
    groups: { baseDns: [''] },
    pageSize: 25,
    ...change,
  };
}

async function withProvider<T>(server: DominoServer, change: Partial<DominoSettingsInput>, run: (p: Provider) => Promise<T>): Promise<T> {
  const provider = createProvider('domino', settings(server, change), server.readerPassword, { destinations: testDestinations });
  try {
    return await run(provider);
  } finally {
    await provider.close();
  }
}

async function drain(provider: Provider, pages: AsyncIterable<{ entries: readonly unknown[]; cursor?: Cursor }>): Promise<{ objects: CanonicalObject[]; cursor: Cursor | undefined }> {
  const objects: CanonicalObject[] = [];
  let cursor: Cursor | undefined;
  for await (const page of pages) {
    for (const entry of page.entries) {
      const result = provider.map(entry);
      if (!result.ok) throw new Error(`unmappable: ${result.reason}`);
      objects.push(result.object);
    }
    if (page.cursor) cursor = page.cursor;
  }
  return { objects, cursor };
}

const full = (server: DominoServer, change: Partial<DominoSettingsInput> = {}) =>
  withProvider(server, change, (p) => drain(p, p.fetchFull(AbortSignal.timeout(60_000))));
const testConnection = (server: DominoServer, change: Partial<DominoSettingsInput> = {}): Promise<ConnectionReport> =>
  withProvider(server, change, (p) => p.testConnection(AbortSignal.timeout(60_000)));

/** Member DNs (canonical, lower case) the generator gave group `j`. */
function expectedMembers(j: number): string[] {
  const members: string[] = [];
  for (let m = 0; m < spec.membersPerGroup; m++) members.push(dominoPersonDn(spec, (j * 3 + m) % spec.people, organisation).toLowerCase());
  if (j === 1) members.push(dominoGroupDn(spec, 0, organisation).toLowerCase());
  return members.sort();
}

describe.each([
  ['pages', true, /^"" \(the directory root\), one level: 45 groups visible$/],
  ['caps answers at 20 entries without paging', false, /^"" \(the directory root\), one level: 45 groups visible \(read in \d+ parts: the server does not offer paged results\)$/],
] as const)('groups at the directory root, on a server that %s', (_name, paging, groupsDetail) => {
  let server: DominoServer;
  beforeAll(async () => {
    server = await start(paging);
  });

  it('reads every group at the root with its members, and nothing else under the root as a group', async () => {
    const { objects } = await full(server);
    const groups = objects.filter((o) => o.type === 'group');
    expect(groups.map((g) => g.externalId).sort()).toEqual(Array.from({ length: spec.groups }, (_, j) => dominoUnid('group', j)).sort());
    for (let j = 0; j < spec.groups; j++) {
      const group = groups.find((g) => g.externalId === dominoUnid('group', j));
      expect(group?.dn).toBe(`cn=group ${String(j).padStart(5, '0')},dc=root`);
      expect((group?.members ?? []).map((m) => m.value).sort()).toEqual(expectedMembers(j));
    }
    // Every person of the organisation, once; the person at the root is outside the users base.
    const users = objects.filter((o) => o.type === 'user').map((u) => u.externalId);
    expect(users.sort()).toEqual(Array.from({ length: spec.people }, (_, i) => dominoUnid('person', i)).sort());
    expect(objects.map((o) => o.externalId)).not.toContain(deepGroupUnid);
    expect(objects.map((o) => o.externalId)).not.toContain(rootPersonUnid);
  });

  it('reads the group one level down when the root entry is read as a subtree (the scope decides)', async () => {
    const { objects } = await full(server, { groups: { baseDns: [root], scope: 'sub' } });
    const groups = objects.filter((o) => o.type === 'group').map((g) => g.externalId);
    expect(groups).toHaveLength(spec.groups + 1);
    expect(groups).toContain(deepGroupUnid);
  });

  it('names the root base and its scope in Test Connection', async () => {
    const report = await testConnection(server);
    expect(report.ok).toBe(true);
    expect(report.checks.find((c) => c.name === 'groups base')?.detail).toMatch(groupsDetail);
    if (!paging) expect(report.checks.find((c) => c.name === 'groups split')?.detail).toMatch(/^"" \(the directory root\): answers capped at 20 entries; split by the first characters of cn/);
  });

  it('rejects a cursor taken with another groups scope', async () => {
    const { cursor } = await full(server, { groups: { baseDns: [root], scope: 'one' } });
    expect(cursor).toBeDefined();
    const other = withProvider(server, { groups: { baseDns: [root], scope: 'sub' } }, (p) => drain(p, p.fetchDelta(cursor as Cursor, AbortSignal.timeout(60_000))));
    await expect(other).rejects.toBeInstanceOf(CursorRejectedError);
    await expect(other).rejects.toThrow(/base DNs, scopes, filters/);
  });
});
