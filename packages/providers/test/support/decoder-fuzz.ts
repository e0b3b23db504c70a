import net from 'node:net';
import fc from 'fast-check';
import { testDestinations } from '@dirsync/testkit';
import { LdapProtocolError } from '../../src/ldap/errors.ts';
import { LdapConnection } from '../../src/ldap/connection.ts';
import { MessageFramer, Op, decodeEntry, decodeResponse, messageHeader, pagedResultsCookie } from '../../src/ldap/protocol.ts';

/**
 * Property-based mutation of real LDAP responses: the shared part of the decoder fuzz tests. The
 * responses are captured from a real server through a recording proxy; each case mutates some of
 * them (bit flips, length changes, truncation, insertion, deletion, splicing) and decodes the
 * result. Properties: only {@link LdapProtocolError} is thrown, every case ends quickly, and no
 * decoded value holds a byte from outside its own message.
 */

/** Bytes that no captured response contains, planted around each message. */
export const marker = Buffer.from('\u00ff\u00feQZJX-outside-the-element-QZJX\u00fe\u00ff', 'latin1');
const markerText = marker.toString('utf8');
const markerLatin1 = marker.toString('latin1');

/** Server-to-client bytes of everything a callback did through a recording proxy to `target`. */
export async function captureResponses(target: { host: string; port: number }, run: (url: string) => Promise<void>): Promise<Buffer> {
  const recorded: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(client).add(upstream);
    upstream.on('data', (chunk: Buffer) => {
      recorded.push(Buffer.from(chunk));
      client.write(chunk);
    });
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', () => resolve()));
  try {
    await run(`ldap://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  }
  return Buffer.concat(recorded);
}

/** Opens a plain-LDAP connection as the capture runs use it. */
export function openPlain(url: string, bindDn?: string, password?: string): Promise<LdapConnection> {
  return LdapConnection.open({
    url,
    tls: { mode: 'none', allowInsecure: true },
    ...(bindDn !== undefined ? { bindDn, password } : {}),
    destinations: testDestinations,
  });
}

/** The captured stream split into messages (each its own Buffer). */
export function splitMessages(stream: Buffer): Buffer[] {
  const out: Buffer[] = [];
  new MessageFramer().push(stream, (buf, start, end) => out.push(Buffer.from(buf.subarray(start, end))));
  return out;
}

/** Offsets of every length byte of every element in `msg` (constructed elements walked). */
function lengthOffsets(msg: Buffer): number[] {
  const out: number[] = [];
  const walk = (pos: number, end: number, depth: number): void => {
    while (pos + 1 < end && depth < 12) {
      const tag = msg[pos] as number;
      const first = msg[pos + 1] as number;
      const count = first & 0x80 ? first & 0x7f : 0;
      for (let i = 0; i <= count; i++) out.push(pos + 1 + i);
      let length = first & 0x80 ? 0 : first;
      for (let i = 0; i < count; i++) length = length * 256 + (msg[pos + 2 + i] ?? 0);
      const contents = pos + 2 + count;
      if (contents + length > end) return;
      if (tag & 0x20) walk(contents, contents + length, depth + 1);
      pos = contents + length;
    }
  };
  walk(0, msg.length, 0);
  return out;
}

type Mutation =
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'length'; readonly which: number; readonly value: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'delete'; readonly at: number; readonly count: number }
  | { readonly kind: 'splice'; readonly at: number; readonly count: number; readonly from: number; readonly fromAt: number; readonly fromCount: number };

const position = fc.nat({ max: 1 << 20 });

/** One mutation; positions are taken modulo the message length when applied. */
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
  // Length bytes get the most weight: they are what the bounds are about.
  { arbitrary: fc.record({ kind: fc.constant('length' as const), which: position, value: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x80, 0x81, 0x84, 0x85, 0xff, 0x7f)) }), weight: 3 },
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: position, count: fc.integer({ min: 1, max: 16 }) }),
  fc.record({
    kind: fc.constant('splice' as const),
    at: position,
    count: fc.integer({ min: 0, max: 32 }),
    from: position,
    fromAt: position,
    fromCount: fc.integer({ min: 1, max: 64 }),
  }),
);

function apply(msg: Buffer, m: Mutation, corpus: readonly Buffer[]): Buffer {
  if (msg.length === 0) return msg;
  const at = (n: number) => n % msg.length;
  switch (m.kind) {
    case 'flip': {
      const out = Buffer.from(msg);
      out[at(m.at)] = (out[at(m.at)] as number) ^ (1 << m.bit);
      return out;
    }
    case 'length': {
      const offsets = lengthOffsets(msg);
      if (offsets.length === 0) return msg;
      const out = Buffer.from(msg);
      out[offsets[m.which % offsets.length] as number] = m.value;
      return out;
    }
    case 'truncate':
      return msg.subarray(0, at(m.at));
    case 'insert':
      return Buffer.concat([msg.subarray(0, at(m.at)), m.bytes, msg.subarray(at(m.at))]);
    case 'delete':
      return Buffer.concat([msg.subarray(0, at(m.at)), msg.subarray(at(m.at) + m.count)]);
    case 'splice': {
      const donor = corpus[m.from % corpus.length] as Buffer;
      const fromAt = m.fromAt % donor.length;
      return Buffer.concat([msg.subarray(0, at(m.at)), donor.subarray(fromAt, fromAt + m.fromCount), msg.subarray(at(m.at) + m.count)]);
    }
  }
}

/** Everything decodable from the message spanning [start, end) of `buf`, as text. */
function decodeAll(buf: Buffer, start: number, end: number, seen: string[]): void {
  const { op, opStart } = messageHeader(buf, start, end);
  if (op === Op.searchEntry) {
    const entry = decodeEntry(buf, opStart, end, new Set(['objectguid', 'objectsid']));
    seen.push(entry.dn);
    for (const values of Object.values(entry.attributes)) seen.push(...values);
    for (const values of Object.values(entry.buffers)) for (const v of values) seen.push(v.toString('latin1'));
    return;
  }
  const response = decodeResponse(buf, start, end);
  if (response.result) seen.push(response.result.matchedDn, response.result.diagnosticMessage, ...response.result.referrals);
  if (response.responseName !== undefined) seen.push(response.responseName);
  if (response.responseValue) seen.push(response.responseValue.toString('latin1'));
  for (const control of response.controls) {
    seen.push(control.oid);
    if (control.value) seen.push(control.value.toString('latin1'));
    if (control.oid === '1.2.840.113556.1.4.319') {
      const cookie = pagedResultsCookie(control.value);
      if (cookie) seen.push(cookie.toString('latin1'));
    }
  }
}

function holdsMarker(values: readonly string[]): boolean {
  return values.some((v) => v.includes(markerText) || v.includes(markerLatin1) || v.includes('QZJX-outside'));
}

/** Fails unless `error` is the decoder's typed error. */
function expectTyped(error: unknown): void {
  if (!(error instanceof LdapProtocolError)) {
    throw new Error(`untyped error from the decoder: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
  }
}

/** Counts of what the properties saw, to show the cases did reach the decoder's paths. */
export interface FuzzTally {
  cases: number;
  decoded: number;
  refused: number;
}

/**
 * Property 1: each mutated message, alone between two markers, decodes or is refused with an
 * LdapProtocolError, quickly, and nothing decoded contains the marker.
 */
export function messageProperty(corpus: readonly Buffer[], tally: FuzzTally) {
  return fc.property(fc.nat(), fc.array(mutation, { minLength: 1, maxLength: 3 }), (pick, mutations) => {
    tally.cases += 1;
    let msg = corpus[pick % corpus.length] as Buffer;
    for (const m of mutations) msg = apply(msg, m, corpus);
    const buf = Buffer.concat([marker, msg, marker]);
    const seen: string[] = [];
    // This thread's CPU time, not wall time nor the process's: a loaded machine stretches wall time, and
    // the collector's helper threads add process time, without the decoder doing more work.
    const started = process.threadCpuUsage();
    try {
      decodeAll(buf, marker.length, marker.length + msg.length, seen);
      tally.decoded += 1;
    } catch (error) {
      expectTyped(error);
      tally.refused += 1;
    }
    const spent = process.threadCpuUsage(started);
    if (spent.user + spent.system > 2_000_000) throw new Error('one message took over two seconds of CPU to decode');
    if (holdsMarker(seen)) throw new Error('a decoded value holds bytes from outside its message');
  });
}

/**
 * Property 2: a mutated stream of several messages, followed by a marker, goes through the
 * framer (small message limit) and the decoder: only typed errors, and a value holds the marker
 * only if the framer's own frame does (its outer length swallowed the marker, which the decoder
 * cannot know) — never by reading past its frame.
 */
export function streamProperty(corpus: readonly Buffer[], tally: FuzzTally) {
  return fc.property(
    fc.nat(),
    fc.integer({ min: 1, max: 6 }),
    fc.array(mutation, { minLength: 1, maxLength: 3 }),
    fc.integer({ min: 1, max: 4096 }),
    (pick, count, mutations, chunk) => {
      tally.cases += 1;
      const parts: Buffer[] = [];
      for (let i = 0; i < count; i++) parts.push(corpus[(pick + i) % corpus.length] as Buffer);
      let stream: Buffer = Buffer.concat(parts);
      for (const m of mutations) stream = apply(stream, m, corpus);
      stream = Buffer.concat([stream, marker, marker]);
      const framer = new MessageFramer(64 * 1024);
      const started = process.threadCpuUsage();
      try {
        for (let i = 0; i < stream.length; i += chunk) {
          framer.push(stream.subarray(i, i + chunk), (buf, start, end) => {
            const seen: string[] = [];
            try {
              decodeAll(buf, start, end, seen);
            } catch (error) {
              expectTyped(error);
              return;
            }
            if (holdsMarker(seen) && !buf.subarray(start, end).includes('QZJX-outside')) {
              throw new Error('a decoded value holds bytes from outside its frame');
            }
          });
        }
        tally.decoded += 1;
      } catch (error) {
        expectTyped(error);
        tally.refused += 1;
      }
      const spent = process.threadCpuUsage(started);
      if (spent.user + spent.system > 2_000_000) throw new Error('one stream took over two seconds of CPU to decode');
    },
  );
}
