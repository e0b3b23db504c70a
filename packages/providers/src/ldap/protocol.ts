/**
 * Decoding of LDAP responses (RFC 4511) straight from the socket's buffers.
 *
 * Requests are encoded with ldapts' message classes; responses are decoded here because the read
 * path dominates a sync: ldapts materialises every entry three times (message object, attribute
 * objects, result object with locale-aware lower-casing), which measured ~3× the client CPU of
 * this decoder on a 105k-entry directory. Only what a reader needs is decoded: search entries,
 * search results with controls, bind and extended responses.
 */

/** A search result entry. Attribute names are lower-cased; values are always arrays. */
export interface LdapEntry {
  /** The DN as the server sent it. */
  readonly dn: string;
  /** Text attributes by lower-cased attribute description (e.g. `mail`, `member;range=0-1499`). */
  readonly attributes: Readonly<Record<string, readonly string[]>>;
  /** Attributes requested as binary (see `binaryAttributes`), by lower-cased description. */
  readonly buffers: Readonly<Record<string, readonly Buffer[]>>;
}

/** A control attached to a response, value left encoded for the caller to interpret. */
export interface ResponseControl {
  readonly oid: string;
  readonly critical: boolean;
  readonly value: Buffer | undefined;
}

/** The LDAPResult part of a response. */
export interface LdapResult {
  readonly resultCode: number;
  readonly matchedDn: string;
  readonly diagnosticMessage: string;
  readonly referrals: readonly string[];
}

/** A decoded response message other than a search entry. */
export interface LdapResponse {
  readonly messageId: number;
  /** Protocol operation tag (0x61 bind, 0x65 search done, 0x73 search reference, 0x78 extended, ...). */
  readonly op: number;
  readonly result: LdapResult | undefined;
  readonly controls: readonly ResponseControl[];
  /** Extended response name (RFC 4511 §4.12), when present. */
  readonly responseName: string | undefined;
  /** Extended response value, when present. */
  readonly responseValue: Buffer | undefined;
}

export const Op = {
  bindResponse: 0x61,
  searchEntry: 0x64,
  searchDone: 0x65,
  searchReference: 0x73,
  extendedResponse: 0x78,
} as const;

/** Result code 0 and the other codes of RFC 4511 the layer names. */
export const ResultCode = {
  success: 0,
  sizeLimitExceeded: 4,
  referral: 10,
} as const;

// Buffer#utf8Slice/latin1Slice skip toString's argument and encoding dispatch, measurable at
// millions of values per sync; toString is the fallback should a runtime lack them.
interface SliceableBuffer {
  utf8Slice?(start: number, end: number): string;
  latin1Slice?(start: number, end: number): string;
}
const proto = Buffer.prototype as unknown as SliceableBuffer;
const utf8: (buf: Buffer, start: number, end: number) => string =
  typeof proto.utf8Slice === 'function'
    ? (buf, start, end) => (buf as unknown as Required<SliceableBuffer>).utf8Slice(start, end)
    : (buf, start, end) => buf.toString('utf8', start, end);
const latin1: (buf: Buffer, start: number, end: number) => string =
  typeof proto.latin1Slice === 'function'
    ? (buf, start, end) => (buf as unknown as Required<SliceableBuffer>).latin1Slice(start, end)
    : (buf, start, end) => buf.toString('latin1', start, end);

/** The response bytes do not follow the protocol (or the server is not an LDAP server). */
export class ProtocolDecodeError extends Error {}

// Second return value of readLength: a module-level slot avoids allocating a tuple per element,
// which matters at millions of elements per sync. Decoding is synchronous, so it is never shared.
let lengthOut = 0;

/**
 * Reads a BER length at `pos` (the byte after the tag): returns the offset of the contents and
 * leaves the length in `lengthOut`.
 */
function readLength(buf: Buffer, pos: number): number {
  const first = buf[pos];
  if (first === undefined) throw new ProtocolDecodeError('truncated length');
  if (first < 0x80) {
    lengthOut = first;
    return pos + 1;
  }
  const count = first & 0x7f;
  if (count === 0 || count > 4) throw new ProtocolDecodeError(`unsupported BER length form 0x${first.toString(16)}`);
  let length = 0;
  for (let i = 1; i <= count; i++) {
    const b = buf[pos + i];
    if (b === undefined) throw new ProtocolDecodeError('truncated length');
    length = length * 256 + b;
  }
  lengthOut = length;
  return pos + 1 + count;
}

function readInteger(buf: Buffer, start: number, length: number): number {
  let value = 0;
  for (let i = 0; i < length; i++) value = value * 256 + (buf[start + i] ?? 0);
  // Two's complement for negative values (message ids and result codes are never negative).
  if (length > 0 && (buf[start] ?? 0) & 0x80) value -= 2 ** (8 * length);
  return value;
}

const typeNames = new Map<string, string>();

/** Lower-cased attribute description, cached: the same few names repeat in every entry. */
function attributeName(buf: Buffer, start: number, end: number): string {
  const raw = latin1(buf, start, end);
  let name = typeNames.get(raw);
  if (name === undefined) {
    name = raw.toLowerCase();
    if (typeNames.size < 10_000) typeNames.set(raw, name);
  }
  return name;
}

/**
 * Splits a byte stream into complete LDAP messages. A partial message is kept until its last
 * chunk arrives; when its length is known, chunks are collected and joined once (a 5 MB group
 * entry must not be re-copied on every 64 KB chunk).
 */
export class MessageFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private needed = -1;

  /** Feeds one chunk; calls `onMessage(buf, start, end)` for every complete message in order. */
  push(chunk: Buffer, onMessage: (buf: Buffer, start: number, end: number) => void): void {
    let buf: Buffer;
    if (this.buffered > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.needed >= 0 && this.buffered < this.needed) return;
      buf = Buffer.concat(this.chunks, this.buffered);
      this.chunks = [];
      this.buffered = 0;
      this.needed = -1;
    } else {
      buf = chunk;
    }
    let pos = 0;
    const size = buf.length;
    while (pos < size) {
      const total = messageLength(buf, pos);
      if (total < 0 || pos + total > size) {
        const rest = buf.subarray(pos);
        this.chunks = [rest];
        this.buffered = rest.length;
        this.needed = total;
        return;
      }
      onMessage(buf, pos, pos + total);
      pos += total;
    }
  }
}

/** Total length of the message at `pos`, or -1 when its header is not complete yet. */
function messageLength(buf: Buffer, pos: number): number {
  if (buf.length - pos < 2) return -1;
  if (buf[pos] !== 0x30) throw new ProtocolDecodeError(`expected an LDAPMessage, got tag 0x${(buf[pos] ?? 0).toString(16)}`);
  const first = buf[pos + 1] ?? 0;
  const count = first < 0x80 ? 0 : first & 0x7f;
  if (buf.length - pos < 2 + count) return -1;
  const contents = readLength(buf, pos + 1);
  return contents - pos + lengthOut;
}

/** Message id and operation of the message spanning [start, end). */
export function messageHeader(buf: Buffer, start: number): { messageId: number; op: number; opStart: number } {
  const seq = readLength(buf, start + 1);
  if (buf[seq] !== 0x02) throw new ProtocolDecodeError('expected a message id');
  const idStart = readLength(buf, seq + 1);
  const messageId = readInteger(buf, idStart, lengthOut);
  const opStart = idStart + lengthOut;
  const op = buf[opStart];
  if (op === undefined) throw new ProtocolDecodeError('truncated message');
  return { messageId, op, opStart };
}

/** Length in bytes of the SearchResultEntry operation starting at `opStart` (tag and length included). */
export function entryLength(buf: Buffer, opStart: number): number {
  const contents = readLength(buf, opStart + 1);
  return contents + lengthOut - opStart;
}

/** Decodes a SearchResultEntry whose operation starts at `opStart`. */
export function decodeEntry(buf: Buffer, opStart: number, binary: ReadonlySet<string> | undefined): LdapEntry {
  let pos = readLength(buf, opStart + 1);
  const dnStart = readLength(buf, pos + 1);
  const dn = utf8(buf, dnStart, dnStart + lengthOut);
  pos = readLength(buf, dnStart + lengthOut + 1);
  const listEnd = pos + lengthOut;
  const attributes: Record<string, string[]> = {};
  let buffers: Record<string, Buffer[]> | undefined;
  while (pos < listEnd) {
    const attrStart = readLength(buf, pos + 1);
    const attrEnd = attrStart + lengthOut;
    const typeStart = readLength(buf, attrStart + 1);
    const name = attributeName(buf, typeStart, typeStart + lengthOut);
    let valuePos = readLength(buf, typeStart + lengthOut + 1);
    const setEnd = valuePos + lengthOut;
    // Arrays of the exact size: grown by push, each would reserve room for 17 values, which made
    // arrays most of a decoded entry's memory.
    const count = countValues(buf, valuePos, setEnd);
    if (binary !== undefined && (binary.has(name) || name.endsWith(';binary'))) {
      const values = new Array<Buffer>(count);
      for (let i = 0; i < count; i++) {
        const v = readLength(buf, valuePos + 1);
        // Copied: a view would pin the whole socket chunk in memory for as long as the value lives.
        values[i] = Buffer.from(buf.subarray(v, v + lengthOut));
        valuePos = v + lengthOut;
      }
      (buffers ??= {})[name] = values;
    } else {
      const values = new Array<string>(count);
      for (let i = 0; i < count; i++) {
        const v = readLength(buf, valuePos + 1);
        values[i] = utf8(buf, v, v + lengthOut);
        valuePos = v + lengthOut;
      }
      attributes[name] = values;
    }
    pos = attrEnd;
  }
  return { dn, attributes, buffers: buffers ?? noBuffers };
}

const noBuffers: Readonly<Record<string, readonly Buffer[]>> = Object.freeze({});

/** Number of values in the value set spanning [pos, end). */
function countValues(buf: Buffer, pos: number, end: number): number {
  let count = 0;
  while (pos < end) {
    const v = readLength(buf, pos + 1);
    pos = v + lengthOut;
    count++;
  }
  return count;
}

function readOctets(buf: Buffer, pos: number, tag: number): [string, number] {
  if (buf[pos] !== tag) throw new ProtocolDecodeError(`expected tag 0x${tag.toString(16)}, got 0x${(buf[pos] ?? 0).toString(16)}`);
  const start = readLength(buf, pos + 1);
  return [utf8(buf, start, start + lengthOut), start + lengthOut];
}

/** Decodes any response except a search entry (LDAPResult, extended fields, controls). */
export function decodeResponse(buf: Buffer, start: number, end: number): LdapResponse {
  const { messageId, op, opStart } = messageHeader(buf, start);
  const contents = readLength(buf, opStart + 1);
  const opEnd = contents + lengthOut;
  let result: LdapResult | undefined;
  let responseName: string | undefined;
  let responseValue: Buffer | undefined;
  if (op !== Op.searchReference && buf[contents] === 0x0a) {
    const codeStart = readLength(buf, contents + 1);
    const resultCode = readInteger(buf, codeStart, lengthOut);
    let pos = codeStart + lengthOut;
    let matchedDn: string;
    let diagnosticMessage: string;
    [matchedDn, pos] = readOctets(buf, pos, 0x04);
    [diagnosticMessage, pos] = readOctets(buf, pos, 0x04);
    const referrals: string[] = [];
    while (pos < opEnd) {
      const tag = buf[pos];
      const inner = readLength(buf, pos + 1);
      const innerEnd = inner + lengthOut;
      if (tag === 0xa3) {
        let r = inner;
        while (r < innerEnd) {
          let uri: string;
          [uri, r] = readOctets(buf, r, 0x04);
          referrals.push(uri);
        }
      } else if (tag === 0x8a) {
        responseName = latin1(buf, inner, innerEnd);
      } else if (tag === 0x8b) {
        responseValue = Buffer.from(buf.subarray(inner, innerEnd));
      }
      pos = innerEnd;
    }
    result = { resultCode, matchedDn, diagnosticMessage, referrals };
  }
  const controls: ResponseControl[] = [];
  if (opEnd < end && buf[opEnd] === 0xa0) {
    const listStart = readLength(buf, opEnd + 1);
    const listEnd = listStart + lengthOut;
    let pos = listStart;
    while (pos < listEnd) {
      const cStart = readLength(buf, pos + 1);
      const cEnd = cStart + lengthOut;
      let oid: string;
      let p: number;
      [oid, p] = readOctets(buf, cStart, 0x04);
      let critical = false;
      let value: Buffer | undefined;
      if (p < cEnd && buf[p] === 0x01) {
        const b = readLength(buf, p + 1);
        critical = (buf[b] ?? 0) !== 0;
        p = b + lengthOut;
      }
      if (p < cEnd && buf[p] === 0x04) {
        const v = readLength(buf, p + 1);
        value = Buffer.from(buf.subarray(v, v + lengthOut));
      }
      controls.push({ oid, critical, value });
      pos = cEnd;
    }
  }
  return { messageId, op, result, controls, responseName, responseValue };
}

/** Reads the cookie of a paged-results response control value (RFC 2696). */
export function pagedResultsCookie(value: Buffer | undefined): Buffer | undefined {
  if (!value || value[0] !== 0x30) return undefined;
  const seq = readLength(value, 1);
  const sizeStart = readLength(value, seq + 1);
  const cookiePos = sizeStart + lengthOut;
  if (value[cookiePos] !== 0x04) return undefined;
  const cookieStart = readLength(value, cookiePos + 1);
  return lengthOut > 0 ? Buffer.from(value.subarray(cookieStart, cookieStart + lengthOut)) : undefined;
}
