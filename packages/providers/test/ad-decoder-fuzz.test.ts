import tls from 'node:tls';
import fc from 'fast-check';
import { BindRequest, PagedResultsControl, SearchRequest, UnbindRequest } from 'ldapts';
import { type SharedSamba, sharedSamba } from '@dirsync/testkit';
import { parseFilter } from '../src/ldap/filter.ts';
import { MessageFramer, Op, messageHeader } from '../src/ldap/protocol.ts';
import { type FuzzTally, messageProperty, streamProperty } from './support/decoder-fuzz.ts';

// The decoder fuzz of ldap-decoder-fuzz.test.ts on responses captured from the run's Samba DC:
// Active Directory's shapes (binary objectGUID and objectSid, ranged member values, many
// controls in the RootDSE, 1,000-entry page cookies). Captured over LDAPS, after the handshake,
// as the bytes the decoder would see.

const messageRuns = 30_000;
const streamRuns = 10_000;

let dc: SharedSamba;
let corpus: Buffer[];

/** Sends requests over a verified LDAPS connection; returns every response message, split. */
async function capture(requests: readonly { id: number; bytes: Buffer }[]): Promise<Buffer[]> {
  const socket = tls.connect({ host: dc.host, port: 636, servername: dc.dnsHostName, ca: [dc.caPem], minVersion: 'TLSv1.2' });
  const messages: Buffer[] = [];
  const framer = new MessageFramer();
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
    });
    for (const request of requests) {
      await new Promise<void>((resolve, reject) => {
        const onData = (chunk: Buffer) => {
          framer.push(chunk, (buf, start, end) => {
            messages.push(Buffer.from(buf.subarray(start, end)));
            const { messageId, op } = messageHeader(buf, start, end);
            if (messageId === request.id && op !== Op.searchEntry && op !== Op.searchReference) {
              socket.removeListener('data', onData);
              resolve();
            }
          });
        };
        socket.on('data', onData);
        socket.once('error', reject);
        socket.write(request.bytes);
      });
    }
    socket.write(new UnbindRequest({ messageId: requests.length + 1 }).write());
  } finally {
    socket.destroy();
  }
  return messages;
}

beforeAll(async () => {
  dc = await sharedSamba();
  const search = (id: number, base: string, scope: 'base' | 'sub', attributes: string[], filter = '(objectClass=*)') =>
    new SearchRequest({
      messageId: id,
      baseDN: base,
      scope,
      filter: parseFilter(filter),
      attributes,
      sizeLimit: 0,
      timeLimit: 60,
      controls: scope === 'sub' ? [new PagedResultsControl({ value: { size: 25 } })] : [],
    }).write();
  corpus = await capture([
    { id: 1, bytes: new BindRequest({ messageId: 1, dn: dc.reader.dn, password: dc.reader.password }).write() },
    { id: 2, bytes: search(2, '', 'base', ['*', '+']) },
    { id: 3, bytes: search(3, dc.seed.ouDn, 'sub', ['objectGUID', 'objectSid', 'cn', 'sAMAccountName', 'mail', 'uSNChanged', 'whenChanged'], '(objectClass=user)') },
    { id: 4, bytes: search(4, dc.seed.ouDn, 'sub', ['objectGUID', 'cn', 'member;range=0-9'], '(objectClass=group)') },
    { id: 5, bytes: search(5, `OU=nowhere,${dc.baseDn}`, 'sub', ['cn']) },
  ]);
}, 120_000);

afterAll(async () => {
  await dc?.release();
});

test('the captured corpus holds Active Directory entries, binary values and paging cookies', () => {
  const text = Buffer.concat(corpus).toString('latin1');
  expect(text).toContain('objectGUID');
  expect(text).toContain('1.2.840.113556.1.4.319');
  expect(corpus.length).toBeGreaterThan(20);
});

test(`${messageRuns} mutated Samba messages: only typed errors, nothing from outside the message`, () => {
  const tally: FuzzTally = { cases: 0, decoded: 0, refused: 0 };
  fc.assert(messageProperty(corpus, tally), { numRuns: messageRuns, seed: Number(process.env['FUZZ_SEED'] ?? 20240602) });
  expect(tally.cases).toBeGreaterThanOrEqual(messageRuns);
  expect(tally.refused).toBeGreaterThan(messageRuns / 4);
});

test(`${streamRuns} mutated Samba streams through the framer: only typed errors, nothing from outside a frame`, () => {
  const tally: FuzzTally = { cases: 0, decoded: 0, refused: 0 };
  fc.assert(streamProperty(corpus, tally), { numRuns: streamRuns, seed: Number(process.env['FUZZ_SEED'] ?? 20240602) });
  expect(tally.cases).toBeGreaterThanOrEqual(streamRuns);
  expect(tally.refused).toBeGreaterThan(0);
});
