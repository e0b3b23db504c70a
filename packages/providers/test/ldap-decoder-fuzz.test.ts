import fc from 'fast-check';
import { type SlapdServer, startSlapd } from '@dirsync/testkit';
import { pagedSearch, readRootDse } from '../src/ldap/search.ts';
import { type FuzzTally, captureResponses, messageProperty, openPlain, splitMessages, streamProperty } from './support/decoder-fuzz.ts';

// Random mutations of real slapd responses (bind, RootDSE, paged user and group entries, search
// results with paging cookies) thrown at the bounded decoder. See support/decoder-fuzz.ts for the
// mutations and the properties. The Samba counterpart is ad-decoder-fuzz.test.ts.

const messageRuns = 60_000;
const streamRuns = 20_000;

let server: SlapdServer;
let corpus: Buffer[];

beforeAll(async () => {
  server = await startSlapd({ data: { users: 40, groups: 4, membersPerGroup: 15, seed: 5 } });
  const url = new URL(server.url);
  const stream = await captureResponses({ host: url.hostname, port: Number(url.port) }, async (proxied) => {
    const connection = await openPlain(proxied, server.readerDn, server.readerPassword);
    try {
      await readRootDse(connection);
      for (const base of [`ou=people,${server.suffix}`, `ou=groups,${server.suffix}`]) {
        for await (const page of pagedSearch(connection, { base, attributes: ['*', '+'], pageSize: 7 })) expect(page.length).toBeGreaterThan(0);
      }
      // A non-success result with a diagnostic message and a matched DN.
      await expect(async () => {
        for await (const page of pagedSearch(connection, { base: `ou=nowhere,${server.suffix}`, attributes: ['cn'] })) void page;
      }).rejects.toThrow(/does not exist/);
    } finally {
      await connection.close();
    }
  });
  corpus = splitMessages(stream);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

test('the captured corpus holds every kind of response the read path decodes', () => {
  const ops = new Set(corpus.map((m) => m[m.indexOf(0x02, 2) + 2 + (m[m.indexOf(0x02, 2) + 1] ?? 0)]));
  // bind response, search entry, search done
  expect([...ops].sort()).toEqual(expect.arrayContaining([0x61, 0x64, 0x65]));
  expect(corpus.length).toBeGreaterThan(40);
});

test(`${messageRuns} mutated messages: only typed errors, nothing from outside the message`, () => {
  const tally: FuzzTally = { cases: 0, decoded: 0, refused: 0 };
  fc.assert(messageProperty(corpus, tally), { numRuns: messageRuns, seed: Number(process.env['FUZZ_SEED'] ?? 20240601) });
  expect(tally.cases).toBeGreaterThanOrEqual(messageRuns);
  // Both outcomes occur: the mutations reach past the first check, and many are refused.
  expect(tally.decoded).toBeGreaterThan(messageRuns / 50);
  expect(tally.refused).toBeGreaterThan(messageRuns / 4);
});

test(`${streamRuns} mutated streams through the framer: only typed errors, nothing from outside a frame`, () => {
  const tally: FuzzTally = { cases: 0, decoded: 0, refused: 0 };
  fc.assert(streamProperty(corpus, tally), { numRuns: streamRuns, seed: Number(process.env['FUZZ_SEED'] ?? 20240601) });
  expect(tally.cases).toBeGreaterThanOrEqual(streamRuns);
  expect(tally.refused).toBeGreaterThan(0);
});
