import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ldifEntry, readerRdn, sshaPassword } from './ldif.ts';
import { type SlapdServer, startSlapd } from './slapd.ts';

/** The schema emulating Domino's LDAP view (`dominoPerson`, `dominoGroup`, `dominoUNID`). */
export const dominoSchemaFile = fileURLToPath(new URL('../schema/domino.schema', import.meta.url));

/** Hides the paged results control from the root DSE (slapd global directives, included like a schema). */
const noPagingRootDseFile = fileURLToPath(new URL('../schema/no-paging-rootdse.conf', import.meta.url));

/** Shape of a generated Domino directory. */
export interface DominoDirectorySpec {
  readonly people: number;
  readonly groups: number;
  /** Members of each group (people, consecutive from a group's offset). */
  readonly membersPerGroup: number;
  /** Organisation (the suffix is `o=<organization>`); default `Acme`. */
  readonly organization?: string;
  /**
   * Latest `createTimestamp`/`modifyTimestamp` of the loaded entries (slapadd keeps them): people
   * then groups, one second apart, the last group at exactly this time, so a test's live changes
   * are the only entries newer than the load. Default: slapadd stamps the load time.
   */
  readonly timestamp?: Date;
  /**
   * Common names of people instead of {@link dominoNames.personCn} (kanji, hyphens, long shared
   * prefixes, the same name many times); entries are then named `dominoUNID=<unid>` in their OU.
   */
  readonly personNames?: (i: number) => string;
  /** Common names of groups instead of {@link dominoNames.groupCn}; DNs as for `personNames`. */
  readonly groupNames?: (j: number) => string;
  /**
   * A root entry above the organisation (e.g. `dc=root`), the database suffix: the organisation
   * lies under it and the groups directly under it (`cn=Group 00001,dc=root`), as a Domino
   * server keeps groups beside `O=Acme` at the directory root. slapd then answers one-level and
   * subtree searches of the empty DN from this entry (`defaultsearchbase`), so a base of `""`
   * reads it the way it reads a Domino server's root.
   */
  readonly root?: string;
}

/** Common name of generated person `i` of `spec`. */
export function dominoPersonCn(spec: DominoDirectorySpec, i: number): string {
  return spec.personNames ? spec.personNames(i) : dominoNames.personCn(i);
}

/** DN of generated person `i` of `spec` under `suffix`. */
export function dominoPersonDn(spec: DominoDirectorySpec, i: number, suffix: string): string {
  return spec.personNames ? `dominoUNID=${dominoUnid('person', i)},ou=${units[i % units.length]},${suffix}` : dominoNames.personDn(i, suffix);
}

/** Common name of generated group `j` of `spec`. */
export function dominoGroupCn(spec: DominoDirectorySpec, j: number): string {
  return spec.groupNames ? spec.groupNames(j) : dominoNames.groupCn(j);
}

/** DN of generated group `j` of `spec` under `suffix`. */
export function dominoGroupDn(spec: DominoDirectorySpec, j: number, suffix: string): string {
  if (spec.root !== undefined) return spec.groupNames ? `dominoUNID=${dominoUnid('group', j)},${spec.root}` : `cn=${dominoNames.groupCn(j)},${spec.root}`;
  return spec.groupNames ? `dominoUNID=${dominoUnid('group', j)},ou=Groups,${suffix}` : dominoNames.groupDn(j, suffix);
}

/** Stamps of the `k`-th loaded entry (people first, then groups). */
function stamps(spec: DominoDirectorySpec, k: number): { createTimestamp?: string; modifyTimestamp?: string } {
  if (!spec.timestamp) return {};
  const last = spec.people + spec.groups - 1;
  const at = `${new Date(spec.timestamp.getTime() - (last - k) * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
  return { createTimestamp: at, modifyTimestamp: at };
}

const givenNames = ['Ada', 'Alan', 'Grace', 'Linus', 'Margaret', 'Dennis', 'Barbara', 'Ken', 'Zoë', 'Åsa', '9Lives', 'Émile'];
const surnames = ['Lovelace', 'Turing', 'Hopper', 'Torvalds', 'Hamilton', 'Ritchie', 'Liskov', 'Thompson', 'Müller', 'Öberg'];
const units = ['Sales', 'Research'];

const pad = (i: number) => String(i).padStart(5, '0');

/** The document UNID of generated entry `kind`/`i` (stable: same spec, same ids). */
export function dominoUnid(kind: 'person' | 'group', i: number): string {
  return createHash('md5').update(`${kind}:${i}`).digest('hex').toUpperCase();
}

/** Names of generated Domino entries. */
export const dominoNames = {
  /** Common name: "Ada Lovelace 00003" (first letters spread over the alphabet, some not ASCII). */
  personCn: (i: number) => `${givenNames[i % givenNames.length]} ${surnames[Math.floor(i / givenNames.length) % surnames.length]} ${pad(i)}`,
  personDn: (i: number, suffix: string) => `cn=${dominoNames.personCn(i)},ou=${units[i % units.length]},${suffix}`,
  shortName: (i: number) => `p${pad(i)}`,
  groupCn: (j: number) => `Group ${pad(j)}`,
  groupDn: (j: number, suffix: string) => `cn=${dominoNames.groupCn(j)},ou=Groups,${suffix}`,
};

/** DN of the organisation of a generated Domino directory (its suffix unless it has a `root`). */
export function dominoSuffix(spec: Pick<DominoDirectorySpec, 'organization' | 'root'>): string {
  return `o=${spec.organization ?? 'Acme'}${spec.root !== undefined ? `,${spec.root}` : ''}`;
}

/**
 * LDIF of a Domino-like directory: the organisation, OUs, people (several `cn` values as Domino
 * lists full name variants, short names as `uid`, internet address as `mail`, mail domain,
 * server and file), groups with members, one group holding another, and the reader account.
 */
export function dominoDirectoryLdif(spec: DominoDirectorySpec, readerPassword: string): string {
  const suffix = dominoSuffix(spec);
  const org = spec.organization ?? 'Acme';
  let out = spec.root !== undefined ? ldifEntry(spec.root, { objectClass: ['top', 'domain'], dc: rootDc(spec.root) }) : '';
  out += ldifEntry(suffix, { objectClass: ['top', 'organization'], o: org });
  for (const unit of [...units, 'Groups']) out += ldifEntry(`ou=${unit},${suffix}`, { objectClass: ['top', 'organizationalUnit'], ou: unit });
  // The reader lives under the database suffix, where startSlapd names it.
  out += ldifEntry(`${readerRdn},${spec.root ?? suffix}`, { objectClass: ['top', 'person'], cn: 'reader', sn: 'reader', userPassword: sshaPassword(readerPassword) });
  for (let i = 0; i < spec.people; i++) {
    const cn = dominoPersonCn(spec, i);
    const [given = '', surname = ''] = cn.split(' ');
    const sn = surname || cn;
    const unit = units[i % units.length] as string;
    out += ldifEntry(dominoPersonDn(spec, i, suffix), {
      objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson', 'dominoPerson'],
      cn: [cn, `${cn}/${unit}/${org}`],
      givenName: given || cn,
      sn,
      uid: i % 5 === 0 ? [dominoNames.shortName(i), `${given.toLowerCase()}${pad(i)}`] : dominoNames.shortName(i),
      mail: `${dominoNames.shortName(i)}@${org.toLowerCase()}.example`,
      dominoUNID: dominoUnid('person', i),
      mailDomain: org,
      mailServer: `CN=Mail01/O=${org}`,
      mailFile: `mail/${dominoNames.shortName(i)}.nsf`,
      ...stamps(spec, i),
    });
  }
  const members = Math.min(spec.membersPerGroup, spec.people);
  for (let j = 0; j < spec.groups; j++) {
    const list: string[] = [];
    for (let m = 0; m < members; m++) list.push(dominoPersonDn(spec, (j * 3 + m) % spec.people, suffix));
    if (j === 1) list.push(dominoGroupDn(spec, 0, suffix));
    out += ldifEntry(dominoGroupDn(spec, j, suffix), {
      objectClass: ['top', 'dominoGroup'],
      cn: dominoGroupCn(spec, j),
      description: `Group ${j}`,
      mail: `group${pad(j)}@${org.toLowerCase()}.example`,
      dominoUNID: dominoUnid('group', j),
      ...(list.length > 0 ? { member: list } : {}),
      ...stamps(spec, spec.people + j),
    });
  }
  return out;
}

function rootDc(root: string): string {
  const match = /^dc=([^,]+)$/i.exec(root);
  if (!match) throw new Error(`a Domino test directory root must be a single dc= RDN, not "${root}"`);
  return match[1] as string;
}

/** How to start a Domino-like test directory. */
export interface DominoOptions {
  readonly data: DominoDirectorySpec;
  /** Server-side size limit (Domino's LDAPMaxEntriesReturned). Default: unlimited. */
  readonly sizeLimit?: number;
  /**
   * `true` (default): paged results work, past the size limit too. `'capped'`: they work but
   * stop at the size limit like plain searches. `'refused'`: the root DSE lists the control but
   * the server refuses it. `false`: the root DSE lists no controls and paging is refused, like
   * Domino servers that cannot page.
   */
  readonly paging?: boolean | 'capped' | 'refused';
  /** Serve TLS too (see startSlapd). */
  readonly tls?: boolean;
}

/** A running Domino-like directory: slapd with the Domino schema, and what it was loaded with. */
export interface DominoServer extends SlapdServer {
  readonly spec: DominoDirectorySpec;
}

/**
 * Starts slapd with the Domino schema and a generated Domino directory; optionally capped at
 * `sizeLimit` entries per answer and without paged results. The caller must `stop()` it.
 */
export async function startDomino(options: DominoOptions): Promise<DominoServer> {
  const readerPassword = randomBytes(12).toString('hex');
  const dir = await mkdtemp(join(tmpdir(), 'dirsync-domino-'));
  try {
    const ldifPath = join(dir, 'domino.ldif');
    await writeFile(ldifPath, dominoDirectoryLdif(options.data, readerPassword));
    const paging = options.paging ?? true;
    const globals: string[] = [];
    if (options.data.root !== undefined) {
      // A global directive, included before any database like the schema files.
      const rootConf = join(dir, 'root.conf');
      await writeFile(rootConf, `defaultsearchbase "${options.data.root}"\n`);
      globals.push(rootConf);
    }
    const server = await startSlapd({
      suffix: options.data.root ?? dominoSuffix(options.data),
      readerPassword,
      data: { ldifPath },
      extraSchemaFiles: [dominoSchemaFile, ...(paging === false ? [noPagingRootDseFile] : []), ...globals],
      pagedResults: paging === true || paging === 'capped',
      ...(options.sizeLimit !== undefined ? { sizeLimit: options.sizeLimit } : {}),
      ...(options.tls ? { tls: true } : {}),
      extraDatabaseConfig: [
        'index dominoUNID eq',
        'index cn eq,sub',
        // slapd counts paged answers against the size limit too, unless told otherwise.
        ...(paging === true ? ['limits * size.prtotal=unlimited'] : []),
      ],
    });
    const stop = server.stop.bind(server);
    return Object.assign(server, {
      spec: options.data,
      async stop() {
        await stop();
        await rm(dir, { recursive: true, force: true });
      },
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
