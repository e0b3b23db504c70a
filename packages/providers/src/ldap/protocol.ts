/**
 * Decoding of LDAP responses (RFC 4511) straight from the socket's buffers.
 *
 * Requests are encoded with ldapts' message classes; responses are decoded here because the read
 * path dominates a sync: ldapts materialises every entry three times (message object, attribute
 * objects, result object with locale-aware lower-casing), which measured ~3× the client CPU of
 * this decoder on a 105k-entry directory. Only what a reader needs is decoded: search entries,
 * search results with controls, bind and extended responses.
 *
 * The bytes come from customers' servers and are untrusted: every length is checked against the
 * element that encloses it (and so against the message end), every tag is checked, integers are
 * bounded, and a message larger than the framer's limit is refused from its header alone. A
 * violation is an {@link LdapProtocolError}; no decoded value ever holds a byte from outside its
 * own element.
 */
import { LdapProtocolError } from './protocol-error.ts';

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

/**
 * Default largest LDAP message accepted: 64 MiB. The largest legitimate message is one group
 * entry with every member in it: OpenLDAP and Domino send all values at once, and a million
 * 60-byte member DNs is about 64 MB (Active Directory sends at most MaxValRange, 1,500 by
 * default, values per request and stays far below). Anything larger is refused from its header,
 * before a byte of it is buffered.
 */
export const defaultMaxMessageBytes = 64 * 1024 * 1024;

// BER tags the decoder expects (RFC 4511 §4, universal and context tags).
const tagSequence = 0x30;
const tagSet = 0x31;
const tagInteger = 0x02;
const tagOctets = 0x04;
const tagBoolean = 0x01;
const tagEnumerated = 0x0a;
const tagReferral = 0xa3;
const tagControls = 0xa0;
const tagResponseName = 0x8a;
const tagResponseValue = 0x8b;
const tagSaslCredentials = 0x87;

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

function hex(byte: number | undefined): string {
  return byte === undefined ? 'end of data' : `0x${byte.toString(16).padStart(2, '0')}`;
}

// Second return value of readLength: a module-level slot avoids allocating a tuple per element,
// which matters at millions of elements per sync. Decoding is synchronous, so it is never shared.
let lengthOut = 0;

/**
 * Reads the element at `pos`, which must carry `tag` and lie entirely before `limit` (the end of
 * the enclosing element). Returns the offset of the contents and leaves their length in
 * `lengthOut`; the contents end at `result + lengthOut <= limit`.
 */
function element(buf: Buffer, pos: number, limit: number, tag: number, what: string): number {
  if (pos >= limit) throw new LdapProtocolError(`${what} is missing (the enclosing element ends first)`);
  if (buf[pos] !== tag) throw new LdapProtocolError(`expected ${what} (tag ${hex(tag)}), got tag ${hex(buf[pos])}`);
  return contentsOf(buf, pos, limit, what);
}

/** {@link element} without the tag check (the caller looked at the tag already). */
function contentsOf(buf: Buffer, pos: number, limit: number, what: string): number {
  const at = pos + 1;
  if (at >= limit) throw new LdapProtocolError(`the length of ${what} is missing`);
  const first = buf[at] as number;
  let length: number;
  let contents: number;
  if (first < 0x80) {
    length = first;
    contents = at + 1;
  } else {
    const count = first & 0x7f;
    // 0x80 is BER's indefinite form, which LDAP forbids (RFC 4511 §5.1); over four length bytes
    // would exceed any message the framer lets through.
    if (count === 0 || count > 4) throw new LdapProtocolError(`${what} has an unsupported length form ${hex(first)}`);
    if (at + 1 + count > limit) throw new LdapProtocolError(`the length of ${what} runs past its enclosing element`);
    length = 0;
    for (let i = 1; i <= count; i++) length = length * 256 + (buf[at + i] as number);
    contents = at + 1 + count;
  }
  if (contents + length > limit) {
    throw new LdapProtocolError(`${what} claims ${length} bytes but its enclosing element has ${Math.max(0, limit - contents)} left`);
  }
  lengthOut = length;
  return contents;
}

/** A non-negative INTEGER or ENUMERATED of at most four bytes (ids and result codes). */
function readSmallInteger(buf: Buffer, start: number, length: number, what: string): number {
  if (length < 1 || length > 4) throw new LdapProtocolError(`${what} has ${length} bytes (1 to 4 expected)`);
  if ((buf[start] as number) & 0x80) throw new LdapProtocolError(`${what} is negative`);
  let value = 0;
  for (let i = 0; i < length; i++) value = value * 256 + (buf[start + i] as number);
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
 * entry must not be re-copied on every 64 KB chunk). A message whose header claims more than
 * `maxMessageBytes` is refused before anything of it is kept, so at most one message of that
 * size (plus one socket chunk) is ever buffered.
 */
export class MessageFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private needed = -1;
  readonly maxMessageBytes: number;

  constructor(maxMessageBytes: number = defaultMaxMessageBytes) {
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Bytes of a message still arriving. */
  get pendingBytes(): number {
    return this.buffered;
  }

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
      const total = messageLength(buf, pos, this.maxMessageBytes);
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
function messageLength(buf: Buffer, pos: number, max: number): number {
  const available = buf.length - pos;
  if (buf[pos] !== tagSequence) throw new LdapProtocolError(`expected an LDAPMessage, got tag ${hex(buf[pos])}`);
  if (available < 2) return -1;
  const first = buf[pos + 1] as number;
  let header = 2;
  let length = first;
  if (first >= 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 4) throw new LdapProtocolError(`an LDAPMessage has an unsupported length form ${hex(first)}`);
    if (available < 2 + count) return -1;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (buf[pos + 2 + i] as number);
    header += count;
  }
  const total = header + length;
  if (total > max) throw new LdapProtocolError(`a message claims ${total} bytes, over the limit of ${max}`, 'limit');
  return total;
}

/** The parts of a message's header the connection dispatches on. */
export interface MessageHeader {
  readonly messageId: number;
  /** Protocol operation tag. */
  readonly op: number;
  /** Offset of the protocol operation (its tag). */
  readonly opStart: number;
  /** End of the protocol operation (controls, if any, follow up to the message end). */
  readonly opEnd: number;
}

/** Message id and operation of the message spanning [start, end); every length is checked. */
export function messageHeader(buf: Buffer, start: number, end: number): MessageHeader {
  const seq = element(buf, start, end, tagSequence, 'an LDAPMessage');
  if (seq + lengthOut !== end) throw new LdapProtocolError('an LDAPMessage length disagrees with its frame');
  const idStart = element(buf, seq, end, tagInteger, 'a message id');
  const messageId = readSmallInteger(buf, idStart, lengthOut, 'a message id');
  const opStart = idStart + lengthOut;
  if (opStart >= end) throw new LdapProtocolError('a message has no protocol operation');
  const op = buf[opStart] as number;
  const contents = contentsOf(buf, opStart, end, 'the protocol operation');
  const opEnd = contents + lengthOut;
  if (opEnd < end && buf[opEnd] !== tagControls) {
    throw new LdapProtocolError(`unexpected tag ${hex(buf[opEnd])} after the protocol operation`);
  }
  return { messageId, op, opStart, opEnd };
}

/**
 * Length in bytes of the SearchResultEntry operation starting at `opStart` (tag and length
 * included), checked against `end`, the end of its message.
 */
export function entryLength(buf: Buffer, opStart: number, end: number): number {
  const contents = element(buf, opStart, end, Op.searchEntry, 'a SearchResultEntry');
  return contents + lengthOut - opStart;
}

/**
 * Attributes decoded from one entry at most. Searches ask for a few dozen; a directory entry with
 * every operational attribute has a few hundred. Each attribute costs a name and an array, so a
 * server sending hundreds of thousands of empty ones would cost far more memory than its bytes.
 */
export const maxAttributesPerEntry = 4096;

/**
 * Decodes a SearchResultEntry whose operation starts at `opStart` in a message ending at `end`.
 * Throws {@link LdapProtocolError} for any element that does not fit its enclosing one.
 */
export function decodeEntry(buf: Buffer, opStart: number, end: number, binary: ReadonlySet<string> | undefined): LdapEntry {
  const contents = element(buf, opStart, end, Op.searchEntry, 'a SearchResultEntry');
  const entryEnd = contents + lengthOut;
  const dnStart = element(buf, contents, entryEnd, tagOctets, 'the entry DN');
  const dnEnd = dnStart + lengthOut;
  const dn = utf8(buf, dnStart, dnEnd);
  let pos = element(buf, dnEnd, entryEnd, tagSequence, 'the attribute list');
  const listEnd = pos + lengthOut;
  if (listEnd !== entryEnd) throw new LdapProtocolError('unexpected bytes after the attribute list of an entry');
  const attributes: Record<string, string[]> = {};
  let buffers: Record<string, Buffer[]> | undefined;
  let attributeCount = 0;
  while (pos < listEnd) {
    if (++attributeCount > maxAttributesPerEntry) {
      throw new LdapProtocolError(`an entry has more than ${maxAttributesPerEntry} attributes, over the limit this client reads`, 'limit');
    }
    const attrStart = element(buf, pos, listEnd, tagSequence, 'an attribute');
    const attrEnd = attrStart + lengthOut;
    const typeStart = element(buf, attrStart, attrEnd, tagOctets, 'an attribute description');
    const typeEnd = typeStart + lengthOut;
    const name = attributeName(buf, typeStart, typeEnd);
    let valuePos = element(buf, typeEnd, attrEnd, tagSet, 'an attribute value set');
    const setEnd = valuePos + lengthOut;
    if (setEnd !== attrEnd) throw new LdapProtocolError(`unexpected bytes after the values of attribute ${JSON.stringify(name.slice(0, 64))}`);
    // Arrays of the exact size: grown by push, each would reserve room for 17 values, which made
    // arrays most of a decoded entry's memory. Counting also checks every value's bounds.
    const count = countValues(buf, valuePos, setEnd);
    if (binary !== undefined && (binary.has(name) || name.endsWith(';binary'))) {
      const values = new Array<Buffer>(count);
      for (let i = 0; i < count; i++) {
        const v = contentsOf(buf, valuePos, setEnd, 'a value');
        // Copied: a view would pin the whole socket chunk in memory for as long as the value lives.
        values[i] = Buffer.from(buf.subarray(v, v + lengthOut));
        valuePos = v + lengthOut;
      }
      (buffers ??= {})[name] = values;
    } else {
      const values = new Array<string>(count);
      for (let i = 0; i < count; i++) {
        const v = contentsOf(buf, valuePos, setEnd, 'a value');
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

/** Number of values in the value set spanning [pos, end); checks each value's tag and bounds. */
function countValues(buf: Buffer, pos: number, end: number): number {
  let count = 0;
  while (pos < end) {
    const v = element(buf, pos, end, tagOctets, 'a value');
    pos = v + lengthOut;
    count++;
  }
  return count;
}

function readOctets(buf: Buffer, pos: number, limit: number, what: string): [string, number] {
  const start = element(buf, pos, limit, tagOctets, what);
  return [utf8(buf, start, start + lengthOut), start + lengthOut];
}

// Operations whose contents start with an LDAPResult: bind, search done, modify, add, delete,
// modify DN, compare and extended responses.
const resultOps: ReadonlySet<number> = new Set([0x61, 0x65, 0x67, 0x69, 0x6b, 0x6d, 0x6f, 0x78]);

/** Decodes any response except a search entry (LDAPResult, extended fields, controls). */
export function decodeResponse(buf: Buffer, start: number, end: number): LdapResponse {
  const { messageId, op, opStart, opEnd } = messageHeader(buf, start, end);
  const contents = contentsOf(buf, opStart, end, 'the protocol operation');
  let result: LdapResult | undefined;
  let responseName: string | undefined;
  let responseValue: Buffer | undefined;
  if (op === Op.searchReference) {
    // SEQUENCE OF URI: the layer ignores references, but their bounds are still checked.
    for (let r = contents; r < opEnd; ) r = readOctets(buf, r, opEnd, 'a referral URI')[1];
  } else if (resultOps.has(op)) {
    const codeStart = element(buf, contents, opEnd, tagEnumerated, 'a result code');
    const resultCode = readSmallInteger(buf, codeStart, lengthOut, 'a result code');
    let pos = codeStart + lengthOut;
    let matchedDn: string;
    let diagnosticMessage: string;
    [matchedDn, pos] = readOctets(buf, pos, opEnd, 'the matched DN');
    [diagnosticMessage, pos] = readOctets(buf, pos, opEnd, 'the diagnostic message');
    const referrals: string[] = [];
    while (pos < opEnd) {
      const tag = buf[pos] as number;
      const inner = contentsOf(buf, pos, opEnd, `element ${hex(tag)} of a result`);
      const innerEnd = inner + lengthOut;
      if (tag === tagReferral) {
        for (let r = inner; r < innerEnd; ) {
          let uri: string;
          [uri, r] = readOctets(buf, r, innerEnd, 'a referral URI');
          referrals.push(uri);
        }
      } else if (tag === tagResponseName) {
        responseName = latin1(buf, inner, innerEnd);
      } else if (tag === tagResponseValue) {
        responseValue = Buffer.from(buf.subarray(inner, innerEnd));
      } else if (tag !== tagSaslCredentials) {
        throw new LdapProtocolError(`unexpected tag ${hex(tag)} in a result`);
      }
      pos = innerEnd;
    }
    result = { resultCode, matchedDn, diagnosticMessage, referrals };
  } else {
    throw new LdapProtocolError(`unexpected protocol operation ${hex(op)} in a response`);
  }
  const controls: ResponseControl[] = [];
  if (opEnd < end) {
    const listStart = element(buf, opEnd, end, tagControls, 'the response controls');
    const listEnd = listStart + lengthOut;
    if (listEnd !== end) throw new LdapProtocolError('unexpected bytes after the response controls');
    let pos = listStart;
    while (pos < listEnd) {
      const cStart = element(buf, pos, listEnd, tagSequence, 'a control');
      const cEnd = cStart + lengthOut;
      let oid: string;
      let p: number;
      [oid, p] = readOctets(buf, cStart, cEnd, 'a control type');
      let critical = false;
      let value: Buffer | undefined;
      if (p < cEnd && buf[p] === tagBoolean) {
        const b = contentsOf(buf, p, cEnd, 'a control criticality');
        if (lengthOut !== 1) throw new LdapProtocolError('a control criticality is not one byte');
        critical = (buf[b] as number) !== 0;
        p = b + lengthOut;
      }
      if (p < cEnd) {
        const v = element(buf, p, cEnd, tagOctets, 'a control value');
        value = Buffer.from(buf.subarray(v, v + lengthOut));
        p = v + lengthOut;
      }
      if (p !== cEnd) throw new LdapProtocolError('unexpected bytes after a control value');
      controls.push({ oid, critical, value });
      pos = cEnd;
    }
  }
  return { messageId, op, result, controls, responseName, responseValue };
}

/**
 * Reads the cookie of a paged-results response control value (RFC 2696): undefined for no value
 * or an empty cookie (the last page). A malformed value is an {@link LdapProtocolError}, never
 * "the last page": ending a paged read early would make a partial read look complete.
 */
export function pagedResultsCookie(value: Buffer | undefined): Buffer | undefined {
  if (!value) return undefined;
  const end = value.length;
  const seq = element(value, 0, end, tagSequence, 'a paged results value');
  const seqEnd = seq + lengthOut;
  const sizeStart = element(value, seq, seqEnd, tagInteger, 'a paged results size');
  const cookieStart = element(value, sizeStart + lengthOut, seqEnd, tagOctets, 'a paged results cookie');
  return lengthOut > 0 ? Buffer.from(value.subarray(cookieStart, cookieStart + lengthOut)) : undefined;
}
