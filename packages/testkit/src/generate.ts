import { open } from 'node:fs/promises';
import { baseEntriesLdif, groupsRdn, ldifEntry, peopleRdn } from './ldif.ts';

/** Size and shape of a generated directory. */
export interface DirectorySpec {
  readonly users: number;
  readonly groups: number;
  /** Members of every group (clamped to the number of users). */
  readonly membersPerGroup: number;
  /** Same seed, same directory, byte for byte. Default 1. */
  readonly seed?: number;
  /** Default `dc=example,dc=org`. */
  readonly suffix?: string;
  /**
   * Latest `createTimestamp`/`modifyTimestamp` written on users and groups (slapadd keeps them),
   * so tests can tell bulk-loaded entries from later changes without waiting for the clock. Like
   * a directory that grew over time, entries are one second apart, the last one (the last group)
   * at exactly this time: a delta's overlap window then covers a few hundred entries, not all.
   * Default: slapadd stamps the load time.
   */
  readonly timestamp?: Date;
}

/** What a generated LDIF file holds. */
export interface GeneratedDirectory {
  readonly path: string;
  readonly suffix: string;
  readonly users: number;
  readonly groups: number;
  /** Group → member edges written. */
  readonly memberships: number;
  /** Every entry in the file, including the suffix, the two OUs and the reader account. */
  readonly entries: number;
}

/** The default suffix of generated and test directories. */
export const defaultSuffix = 'dc=example,dc=org';

const givenNames = [
  'Ada', 'Alan', 'Grace', 'Linus', 'Margaret', 'Dennis', 'Barbara', 'Ken', 'Frances', 'Edsger',
  'Radia', 'Donald', 'Sophie', 'Tim', 'Hedy', 'John', 'Zoë', 'José', 'Åsa', 'Björn', 'Chloé',
  'Dmitri', 'Emeka', 'Fatima', 'Gustav', 'Hana', 'Ines', 'Jamal', 'Keiko', 'Lars',
];
const surnames = [
  'Lovelace', 'Turing', 'Hopper', 'Torvalds', 'Hamilton', 'Ritchie', 'Liskov', 'Thompson', 'Allen',
  'Dijkstra', 'Perlman', 'Knuth', 'Wilson', 'Berners-Lee', 'Lamarr', 'McCarthy', 'Müller',
  'García', 'Öberg', 'Nguyen', 'Okafor', 'Haddad', 'Sato', 'Kowalski', 'Rossi', 'Dubois',
  'Jensen', 'Novak', 'Silva', 'Petrov',
];
const titles = ['Engineer', 'Senior Engineer', 'Manager', 'Director', 'Analyst', 'Designer', 'Accountant', 'Support Specialist'];
const departments = ['100', '200', '300', '400', '500', '600', '700', '800', '900'];

/** mulberry32: tiny, fast, deterministic; quality is ample for test data. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Each entry draws from its own stream so any single entry can be recomputed without the others.
function entryRng(seed: number, kind: number, index: number): () => number {
  return rng(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35) ^ kind);
}

function pick<T>(list: readonly T[], r: () => number): T {
  return list[Math.floor(r() * list.length)] as T;
}

/** `uid` of generated user `i` (0-based). */
export function userUid(i: number): string {
  return `user${String(i).padStart(7, '0')}`;
}

/** DN of generated user `i`. */
export function userDn(i: number, suffix: string = defaultSuffix): string {
  return `uid=${userUid(i)},${peopleRdn},${suffix}`;
}

/** `cn` of generated group `j` (0-based). */
export function groupCn(j: number): string {
  return `group${String(j).padStart(5, '0')}`;
}

/** DN of generated group `j`. */
export function groupDn(j: number, suffix: string = defaultSuffix): string {
  return `cn=${groupCn(j)},${groupsRdn},${suffix}`;
}

/**
 * The attributes generated user `i` gets for `seed`: tests use it to know what the directory
 * holds without reading the file back.
 */
export function generatedUser(i: number, seed = 1): Record<string, string | string[]> {
  const r = entryRng(seed, 1, i);
  const uid = userUid(i);
  const givenName = pick(givenNames, r);
  const sn = pick(surnames, r);
  const mail = [`${uid}@example.org`];
  // Every tenth user has an alias, so multi-valued mail is exercised.
  if (i % 10 === 0) mail.push(`${asciiLower(givenName)}.${uid}@alias.example.org`);
  return {
    objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson'],
    uid,
    cn: `${givenName} ${sn}`,
    sn,
    givenName,
    displayName: `${givenName} ${sn} (${uid})`,
    mail,
    title: pick(titles, r),
    departmentNumber: pick(departments, r),
    telephoneNumber: `+1 555 ${String(Math.floor(r() * 10_000_000)).padStart(7, '0')}`,
    employeeNumber: String(100_000 + i),
  };
}

// Mail addresses must be IA5 (ASCII) for a live LDAP add; slapadd alone would accept more.
function asciiLower(name: string): string {
  return name.normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/[^A-Za-z0-9-]/g, '').toLowerCase();
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * Indexes of the users that are members of generated group `j`: `k` distinct users on an
 * arithmetic walk (step coprime with the user count) from a seeded start, so membership is
 * spread over the directory yet computed in O(k) without any shared state.
 */
export function groupMemberIndexes(j: number, users: number, membersPerGroup: number, seed = 1): number[] {
  const k = Math.min(membersPerGroup, users);
  if (k <= 0) return [];
  const r = entryRng(seed, 2, j);
  const start = Math.floor(r() * users);
  let step = 1 + Math.floor(r() * Math.max(1, users - 1));
  while (gcd(step, users) !== 1) step = (step % users) + 1;
  const out = new Array<number>(k);
  for (let m = 0; m < k; m++) out[m] = (start + m * step) % users;
  return out;
}

/** The attributes generated group `j` gets (members as DNs). */
export function generatedGroup(j: number, spec: DirectorySpec): Record<string, string | string[]> {
  const suffix = spec.suffix ?? defaultSuffix;
  const cn = groupCn(j);
  const members = groupMemberIndexes(j, spec.users, spec.membersPerGroup, spec.seed ?? 1).map((i) => userDn(i, suffix));
  return {
    objectClass: ['top', 'groupOfNames'],
    cn,
    description: `Generated group ${j}`,
    // groupOfNames requires a member; the empty DN is the conventional placeholder.
    member: members.length > 0 ? members : [''],
  };
}

const flushAt = 1 << 18;

function generalizedTime(date: Date): string {
  return `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

/**
 * Writes a whole directory as LDIF to `path`: the base entries (suffix, `ou=people`,
 * `ou=groups`, the reader account with `readerPassword`), then users, then groups. Output is
 * streamed in chunks of ~256 KB, so memory stays flat for a million users.
 */
export async function writeDirectoryLdif(
  path: string,
  spec: DirectorySpec & { readonly readerPassword: string },
): Promise<GeneratedDirectory> {
  const suffix = spec.suffix ?? defaultSuffix;
  const seed = spec.seed ?? 1;
  const file = await open(path, 'w');
  let memberships = 0;
  try {
    let chunk = baseEntriesLdif(suffix, spec.readerPassword);
    const flush = async (force: boolean) => {
      if (chunk.length >= flushAt || (force && chunk.length > 0)) {
        await file.write(chunk);
        chunk = '';
      }
    };
    const last = spec.users + spec.groups - 1;
    const stamps = (k: number) => {
      if (!spec.timestamp) return {};
      const at = generalizedTime(new Date(spec.timestamp.getTime() - (last - k) * 1000));
      return { createTimestamp: at, modifyTimestamp: at };
    };
    for (let i = 0; i < spec.users; i++) {
      chunk += ldifEntry(userDn(i, suffix), { ...generatedUser(i, seed), ...stamps(i) });
      await flush(false);
    }
    for (let j = 0; j < spec.groups; j++) {
      const group = generatedGroup(j, { ...spec, suffix, seed });
      memberships += Math.min(spec.membersPerGroup, spec.users);
      chunk += ldifEntry(groupDn(j, suffix), { ...group, ...stamps(spec.users + j) });
      await flush(false);
    }
    await flush(true);
  } finally {
    await file.close();
  }
  return { path, suffix, users: spec.users, groups: spec.groups, memberships, entries: 4 + spec.users + spec.groups };
}
