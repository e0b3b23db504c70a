import { Attribute, Change } from 'ldapts';
import { type DominoDirectorySpec, type DominoServer, dominoNames, dominoUnid, startDomino, testDestinations } from '@dirsync/testkit';
import { ConfigError, CursorRejectedError } from '../src/errors.ts';
import { type CanonicalObject, type ConnectionReport, type Cursor, type DominoSettingsInput, type Provider, createProvider } from '../src/index.ts';

// The Domino provider against slapd with the Domino schema, capped at a few entries per answer
// like a Domino server's LDAPMaxEntriesReturned, with and without paged results.

const spec: DominoDirectorySpec = { people: 150, groups: 6, membersPerGroup: 12, timestamp: new Date(Date.now() - 86_400_000) };
const total = spec.people + spec.groups;
const sizeLimit = 20;
const servers: DominoServer[] = [];

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

async function start(paging: boolean | 'capped' | 'refused', limit = sizeLimit): Promise<DominoServer> {
  const server = await startDomino({ data: spec, sizeLimit: limit, paging });
  servers.push(server);
  return server;
}

function settings(server: DominoServer, change: Partial<DominoSettingsInput> = {}): DominoSettingsInput {
  return {
    url: server.url,
    bindDn: server.readerDn,
    tls: { mode: 'none', allowInsecure: true },
    users: { baseDns: [server.suffix] },
    groups: { baseDns: [`ou=Groups,${server.suffix}`] },
    pageSize: 25,
    deltaOverlapSeconds: 5,
    ...change,
  };
}

interface Fetched {
  objects: CanonicalObject[];
  deletions: number;
  cursor: Cursor | undefined;
}

async function withProvider<T>(server: DominoServer, change: Partial<DominoSettingsInput>, run: (p: Provider) => Promise<T>): Promise<T> {
  const provider = createProvider('domino', settings(server, change), server.readerPassword, { destinations: testDestinations });
  try {
    return await run(provider);
  } finally {
    await provider.close();
  }
}

async function drain(provider: Provider, pages: AsyncIterable<{ entries: readonly unknown[]; deletions?: readonly string[]; cursor?: Cursor }>): Promise<Fetched> {
  const out: Fetched = { objects: [], deletions: 0, cursor: undefined };
  for await (const page of pages) {
    for (const entry of page.entries) {
      const result = provider.map(entry);
      if (!result.ok) throw new Error(`unmappable: ${result.reason}`);
      out.objects.push(result.object);
    }
    out.deletions += page.deletions?.length ?? 0;
    if (page.cursor) out.cursor = page.cursor;
  }
  return out;
}

const full = (server: DominoServer, change: Partial<DominoSettingsInput> = {}) =>
  withProvider(server, change, (p) => drain(p, p.fetchFull(AbortSignal.timeout(60_000))));
const delta = (server: DominoServer, cursor: Cursor, change: Partial<DominoSettingsInput> = {}) =>
  withProvider(server, change, (p) => drain(p, p.fetchDelta(cursor, AbortSignal.timeout(60_000))));
const testConnection = (server: DominoServer, change: Partial<DominoSettingsInput> = {}): Promise<ConnectionReport> =>
  withProvider(server, change, (p) => p.testConnection(AbortSignal.timeout(60_000)));

function expectComplete(fetched: Fetched): void {
  expect(fetched.objects).toHaveLength(total);
  const ids = new Set(fetched.objects.map((o) => o.externalId));
  expect(ids.size).toBe(total);
  for (let i = 0; i < spec.people; i++) expect(ids.has(dominoUnid('person', i))).toBe(true);
  for (let j = 0; j < spec.groups; j++) expect(ids.has(dominoUnid('group', j))).toBe(true);
}

describe('a server that caps answers and pages', () => {
  let server: DominoServer;
  beforeAll(async () => {
    server = await start(true);
  });

  it('reads everything through paged results, without splitting', async () => {
    expectComplete(await full(server));
    const report = await testConnection(server);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual(['connect', 'tls', 'bind', 'server', 'users base', 'groups base', 'delta']);
    expect(report.checks.find((c) => c.name === 'server')?.detail).toMatch(/paged results offered$/);
    expect(report.checks.find((c) => c.name === 'users base')?.detail).toBe(`${server.suffix}: ${spec.people} users visible`);
    expect(report.checks.find((c) => c.name === 'delta')?.detail).toMatch(/^entries newer than the last modifyTimestamp/);
  });

  it('maps people (name variants, short names, internet address, mail file) and groups with nested members', async () => {
    const { objects } = await full(server);
    const person = objects.find((o) => o.externalId === dominoUnid('person', 5));
    const cn = dominoNames.personCn(5);
    expect(person).toEqual({
      externalId: dominoUnid('person', 5),
      type: 'user',
      dn: dominoNames.personDn(5, server.suffix).toLowerCase(),
      attributes: {
        displayName: cn,
        cn: [cn, `${cn}/Research/Acme`],
        mail: 'p00005@acme.example',
        uid: 'p00005',
        shortNames: ['p00005', `${cn.split(' ')[0]?.toLowerCase()}00005`],
        givenName: cn.split(' ')[0],
        sn: cn.split(' ')[1],
        mailDomain: 'Acme',
        mailServer: 'CN=Mail01/O=Acme',
        mailFile: 'mail/p00005.nsf',
      },
    });
    const group = objects.find((o) => o.externalId === dominoUnid('group', 1));
    expect(group).toMatchObject({ type: 'group', attributes: { displayName: 'Group 00001', cn: ['Group 00001'], description: 'Group 1', mail: 'group00001@acme.example' } });
    expect(group?.members).toHaveLength(spec.membersPerGroup + 1);
    expect(group?.members).toContainEqual({ by: 'dn', value: dominoNames.groupDn(0, server.suffix).toLowerCase() });
  });

  it('reads deltas by modifyTimestamp: only what changed since the cursor, no deletions', async () => {
    const start = await full(server, { deltaOverlapSeconds: 0 });
    expect(start.cursor).toMatchObject({ kind: 'domino', method: 'modifyTimestamp', highWater: expect.stringMatching(/^\d{14}Z$/) });
    const admin = await server.client();
    try {
      await admin.modify(dominoNames.personDn(7, server.suffix), new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Buyer'] }) }));
      await admin.del(dominoNames.personDn(8, server.suffix));
    } finally {
      await admin.unbind();
    }
    // Without overlap the delta reads entries stamped at or after the mark: the change, and the
    // entry that set the mark (the last group loaded).
    const changes = await delta(server, start.cursor as Cursor, { deltaOverlapSeconds: 0 });
    expect(changes.objects.map((o) => o.externalId)).toEqual([dominoUnid('person', 7), dominoUnid('group', spec.groups - 1)]);
    expect(changes.objects[0]?.attributes['title']).toBe('Buyer');
    expect(changes.deletions).toBe(0);
    expect((changes.cursor as { highWater: string }).highWater > (start.cursor as { highWater: string }).highWater).toBe(true);
  });

  it('reads everything on a delta with deltaMethod "hash" (the pipeline writes only what changed)', async () => {
    const start = await full(server, { deltaMethod: 'hash' });
    expect(start.cursor).toMatchObject({ kind: 'domino', method: 'hash' });
    expect(start.cursor).not.toHaveProperty('highWater');
    const changes = await delta(server, start.cursor as Cursor, { deltaMethod: 'hash' });
    expect(changes.objects).toHaveLength(start.objects.length);
    expect(changes.deletions).toBe(0);
  });

  it('rejects a cursor of another scope or server before reading', async () => {
    const { cursor } = await full(server);
    const other = delta(server, cursor as Cursor, { groups: { baseDns: [server.suffix] } });
    await expect(other).rejects.toThrow(CursorRejectedError);
    await expect(other).rejects.toThrow(/base DNs, scopes, filters, object classes or member attributes changed/);
    await expect(delta(server, { ...(cursor as object), server: 'ldap://elsewhere:389' } as Cursor)).rejects.toThrow(/taken on ldap:\/\/elsewhere:389/);
  });
});

describe.each([
  ['caps paged results like plain searches', 'capped' as const, /read in \d+ parts: the server caps paged results too/],
  ['lists paged results but refuses them', 'refused' as const, /read in \d+ parts: the server refused paged results/],
  ['does not offer paged results', false as const, /read in \d+ parts: the server does not offer paged results/],
])('a server that caps answers at %s entries and %s', (_name, paging, how) => {
  let server: DominoServer;
  beforeAll(async () => {
    server = await start(paging);
  });

  it('reads everything by splitting searches by the first characters of cn', async () => {
    expectComplete(await full(server));
  });

  it('shows the split in Test Connection', async () => {
    const report = await testConnection(server);
    expect(report.ok).toBe(true);
    expect(report.checks.find((c) => c.name === 'users base')?.detail).toMatch(new RegExp(`^${server.suffix}: ${spec.people} users visible \\(${how.source.slice(0)}`));
    if (paging === false) expect(report.checks.find((c) => c.name === 'server')?.detail).toMatch(/paged results not offered/);
  });
});

describe('a server whose cap is smaller than the entries sharing long name prefixes', () => {
  it('reads everything, splitting by longer prefixes (and by dominoUNID where names are identical up to the cap)', async () => {
    const server = await start(false, 5);
    expectComplete(await full(server));
    const report = await testConnection(server);
    expect(report.ok).toBe(true);
    expect(report.checks.find((c) => c.name === 'users split')?.detail).toMatch(/^o=Acme: answers capped at 5 entries; split by the first characters of cn \(/);
  });
});
