/**
 * The split read of a capped Domino directory that does not page: N people with non-ASCII names
 * (kanji, Cyrillic, Greek, Hangul, Arabic, Latin with diacritics) in a throwaway slapd with the
 * Domino schema, answering at most `cap` entries per search. Prints the split plan Test
 * Connection shows (cap found, first characters, parts, depth, searches) and the seconds of a
 * full read, checking every person was read exactly once.
 *
 *   node packages/providers/bench/domino-split-bench.ts [people=10000] [cap=500]
 */
import { type DominoDirectorySpec, dominoUnid, startDomino, testDestinations } from '@dirsync/testkit';
import { createProvider } from '../src/index.ts';

const people = Number(process.argv[2] ?? 10_000);
const cap = Number(process.argv[3] ?? 500);

const kanjiDigits = (n: number) => [...String(n)].map((d) => '〇一二三四五六七八九'[Number(d)]).join('');
const scripts: readonly (readonly [readonly string[], readonly string[]])[] = [
  [['山田', '佐藤', '鈴木', '高橋', '田中', '伊藤', '渡辺', '中村', '小林', '加藤'], ['太郎', '花子', '健', '翔太', '美咲']],
  [['Иванов', 'Смирнов', 'Кузнецов', 'Попов', 'Васильев', 'Петров'], ['Иван', 'Ольга', 'Сергей', 'Анна', 'Дмитрий']],
  [['Παπαδόπουλος', 'Γεωργίου', 'Οικονόμου', 'Νικολάου'], ['Μαρία', 'Γιώργος', 'Ελένη', 'Νίκος']],
  [['김', '이', '박', '최', '정'], ['민준', '서연', '지훈', '하은']],
  [['العلي', 'الحسن', 'السعيد'], ['محمد', 'فاطمة', 'أحمد', 'مريم']],
  [['Ødegård', 'Ångström', 'Çelik', 'Žukauskas', 'Łukasiewicz', 'Écoffey'], ['Åsa', 'Émile', 'Ørjan', 'Şule', 'Ľubomír']],
];

function personName(i: number): string {
  const [surnames, given] = scripts[i % scripts.length] as (typeof scripts)[number];
  const k = Math.floor(i / scripts.length);
  const sn = surnames[k % surnames.length] as string;
  const gn = given[Math.floor(k / surnames.length) % given.length] as string;
  return i % scripts.length === 0 ? `${sn}${gn}${kanjiDigits(k)}` : `${sn} ${gn} ${given[k % given.length]}`;
}

const spec: DominoDirectorySpec = { people, groups: 0, membersPerGroup: 0, personNames: personName };
const server = await startDomino({ data: spec, sizeLimit: cap, paging: false });
try {
  const provider = createProvider(
    'domino',
    {
      url: server.url,
      bindDn: server.readerDn,
      tls: { mode: 'none', allowInsecure: true },
      users: { baseDns: [server.suffix] },
      groups: { baseDns: [`ou=Groups,${server.suffix}`] },
    },
    server.readerPassword,
    { destinations: testDestinations },
  );
  try {
    const started = performance.now();
    const ids = new Set<string>();
    let read = 0;
    for await (const page of provider.fetchFull(AbortSignal.timeout(600_000))) {
      for (const entry of page.entries) {
        const mapped = provider.map(entry);
        if (mapped.ok) ids.add(mapped.object.externalId);
        read += 1;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    let missing = 0;
    for (let i = 0; i < people; i++) if (!ids.has(dominoUnid('person', i))) missing += 1;
    const report = await provider.testConnection(AbortSignal.timeout(600_000));
    const plan = report.checks.find((c) => c.name === 'users split')?.detail ?? 'no split';
    console.log(`people ${people}, cap ${cap}, no paging`);
    console.log(`full read: ${read} entries, ${ids.size} distinct, ${missing} missing, ${seconds.toFixed(2)} s`);
    console.log(`split plan: ${plan}`);
    if (missing > 0 || read !== people) process.exitCode = 1;
  } finally {
    await provider.close();
  }
} finally {
  await server.stop();
}
