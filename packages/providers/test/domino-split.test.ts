import { type DominoDirectorySpec, type DominoServer, dominoUnid, startDomino, testDestinations } from '@dirsync/testkit';
import { type CanonicalObject, type ConnectionReport, type DominoSettingsInput, createProvider } from '../src/index.ts';

// Split searches against slapd with the Domino schema, a cap of a few hundred entries per answer
// and no paged results, on names no fixed alphabet covers: kanji only, hyphens, prefixes longer
// than any fixed depth, and more people with one identical name than the cap.

const cap = 200;
const servers: DominoServer[] = [];

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

const kanjiDigits = (n: number) => [...String(n)].map((d) => '〇一二三四五六七八九'[Number(d)]).join('');
// Surnames sharing their first character, so the first split goes at least two characters deep.
const surnames = ['山田', '山本', '山口'];
const given = ['太郎', '花子', '健', '翔太', '美咲'];

async function read(spec: DominoDirectorySpec, change: Partial<DominoSettingsInput> = {}): Promise<{ objects: CanonicalObject[]; report: ConnectionReport; server: DominoServer }> {
  const server = await startDomino({ data: spec, sizeLimit: cap, paging: false });
  servers.push(server);
  const provider = createProvider(
    'domino',
    {
      url: server.url,
      bindDn: server.readerDn,
      tls: { mode: 'none', allowInsecure: true },
      users: { baseDns: [server.suffix] },
      groups: { baseDns: [`ou=Groups,${server.suffix}`] },
      ...change,
    },
    server.readerPassword,
    { destinations: testDestinations },
  );
  try {
    const objects: CanonicalObject[] = [];
    for await (const page of provider.fetchFull(AbortSignal.timeout(60_000))) {
      for (const entry of page.entries) {
        const mapped = provider.map(entry);
        if (!mapped.ok) throw new Error(`unmappable: ${mapped.reason}`);
        objects.push(mapped.object);
      }
    }
    return { objects, report: await provider.testConnection(AbortSignal.timeout(60_000)), server };
  } finally {
    await provider.close();
  }
}

/** Every generated person and group exactly once: the union of the parts is the directory. */
function expectExactlyOnce(objects: readonly CanonicalObject[], spec: DominoDirectorySpec): void {
  const ids = objects.map((o) => o.externalId);
  expect(new Set(ids).size).toBe(ids.length);
  const expected = [
    ...Array.from({ length: spec.people }, (_, i) => dominoUnid('person', i)),
    ...Array.from({ length: spec.groups }, (_, j) => dominoUnid('group', j)),
  ];
  expect([...ids].sort()).toEqual(expected.sort());
}

const detail = (report: ConnectionReport, name: string) => report.checks.find((c) => c.name === name)?.detail;

it('reads kanji-only people and hyphenated groups (DL-app-1 … DL-app-520) under a cap of 200', async () => {
  const spec: DominoDirectorySpec = {
    people: 700,
    groups: 520,
    membersPerGroup: 2,
    personNames: (i) => `${surnames[i % surnames.length]}${given[Math.floor(i / surnames.length) % given.length]}${kanjiDigits(i)}`,
    groupNames: (j) => `DL-app-${j + 1}`,
  };
  const { objects, report } = await read(spec);
  expectExactlyOnce(objects, spec);
  expect(objects.find((o) => o.externalId === dominoUnid('person', 4))?.attributes['displayName']).toBe('山本花子四');
  expect(report.ok).toBe(true);
  expect(detail(report, 'users split')).toMatch(/^o=Acme: answers capped at 200 entries; split by the first characters of cn \("山"\) and the rest, \d+ parts, prefixes up to [2-9] characters/);
  expect(detail(report, 'groups split')).toMatch(/^ou=Groups,o=Acme: answers capped at 200 entries; split by the first characters of cn \("d"\) and the rest, .*prefixes up to [4-9] characters/);
  expect(detail(report, 'users base')).toBe('o=Acme: 700 users visible (read in ' + detail(report, 'users split')?.match(/(\d+) parts/)?.[1] + ' parts: the server does not offer paged results)');
}, 60_000);

it('reads groups sharing a prefix longer than any fixed depth (Project name 1 … 520), and 450 people with one identical name', async () => {
  const spec: DominoDirectorySpec = {
    people: 450,
    groups: 520,
    membersPerGroup: 2,
    personNames: () => 'Jean-Émile Dupont',
    groupNames: (j) => `Project name ${j + 1}`,
  };
  const { objects, report, server } = await read(spec);
  expectExactlyOnce(objects, spec);
  expect(report.ok).toBe(true);
  // 450 identical names (225 in each of the two OU variants "…/Sales/Acme", "…/Research/Acme")
  // cannot be narrowed by cn: both parts are split by dominoUNID.
  expect(detail(report, 'users split')).toMatch(/; 2 parts of identical cn split by dominoUNID$/);
  // Substring filters with spaces match: the split goes through "project name " to the digits.
  expect(detail(report, 'groups split')).toMatch(/prefixes up to 1[3-9] characters/);
  const admin = await server.client();
  try {
    const { searchEntries } = await admin.search(`ou=Groups,${server.suffix}`, { filter: '(cn=project name 52*)', attributes: ['cn'] });
    expect(searchEntries.map((e) => e.cn).sort()).toEqual(['Project name 52', 'Project name 520']);
  } finally {
    await admin.unbind();
  }
}, 60_000);

it('splits by another splitAttribute the same way (sn, kanji), falling back to dominoUNID for shared surnames', async () => {
  const spec: DominoDirectorySpec = { people: 700, groups: 0, membersPerGroup: 0, personNames: (i) => `${given[i % given.length]} ${surnames[i % 2]}` };
  const { objects, report } = await read(spec, { splitAttribute: 'sn' });
  expectExactlyOnce(objects, spec);
  expect(detail(report, 'users split')).toMatch(/split by the first characters of sn \("山"\).*; \d+ parts? of identical sn split by dominoUNID$/);
}, 60_000);
