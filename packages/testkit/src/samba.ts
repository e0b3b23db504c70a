import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Attribute, Change, Client } from 'ldapts';

const execFileAsync = promisify(execFile);

/**
 * Samba's own Python bindings live in Debian's system Python; another `python3` earlier on PATH
 * (a virtualenv, pyenv) cannot import them.
 */
const systemPython = '/usr/bin/python3';

/** An entry to load offline: DN and attributes, as Samba's `SamDB.add` takes them. */
export interface SambaEntry {
  readonly dn: string;
  readonly attributes: { readonly [name: string]: string | readonly string[] };
}

/** A user account created with a password (service accounts of tests). */
export interface SambaAccountSpec {
  /** sAMAccountName, also the CN. */
  readonly name: string;
  readonly password: string;
  /** Parent of the account; default `CN=Users,<base>`. */
  readonly parentDn?: string;
}

/** How to provision and start a throwaway Samba AD domain controller. */
export interface SambaOptions {
  /**
   * Loopback address to listen on. Samba's ports (389, 636, 3268, 3269) cannot be changed, so
   * each DC needs an address of its own; default: a free random address of 127.0.0.0/8.
   */
  readonly host?: string;
  /** NetBIOS host name of the DC; default `dc1`. */
  readonly hostName?: string;
  /** Kerberos realm, also the DNS domain; default `DIRSYNC.TEST` (base DN `DC=dirsync,DC=test`). */
  readonly realm?: string;
  /** NetBIOS domain name; default `DIRSYNC`. */
  readonly domain?: string;
  /** Password of `Administrator`; default random (and complex enough for Samba's policy). */
  readonly adminPassword?: string;
  /**
   * Accept simple binds over plain LDAP (`ldap server require strong auth = no`). Default false:
   * like a hardened DC, only LDAPS and StartTLS binds work.
   */
  readonly allowPlainLdap?: boolean;
  /** Entries loaded offline (one transaction, Samba's Python bindings) before the first start. */
  readonly entries?: readonly SambaEntry[];
  /** Accounts created offline after `entries`. */
  readonly accounts?: readonly SambaAccountSpec[];
  /** Deadline for the DC to answer after start; default 60 s. */
  readonly startTimeoutMs?: number;
}

/** What a test needs to talk to a Samba DC; serialisable, so one process can describe it to others. */
export interface SambaInfo {
  /** Loopback address the DC listens on. */
  readonly host: string;
  /** `ldap://HOST` (StartTLS available; simple binds only when started with `allowPlainLdap`). */
  readonly url: string;
  /** `ldaps://HOST`, with the certificate Samba generated under `private/tls/`. */
  readonly ldapsUrl: string;
  readonly realm: string;
  readonly domain: string;
  /** `DC=…` of the domain: the default naming context. */
  readonly baseDn: string;
  /** The DC's DNS name (`dc1.dirsync.test`): the name its certificate is issued to. */
  readonly dnsHostName: string;
  readonly adminDn: string;
  readonly adminPassword: string;
  /** PEM of the CA Samba generated and signed its LDAPS certificate with. */
  readonly caPem: string;
  /** Provisioning directory (database, smb.conf, certificates). */
  readonly dir: string;
  /** Path of the DC's smb.conf (for Samba's tools and Python bindings). */
  readonly confPath: string;
  readonly allowPlainLdap: boolean;
}

/** A running throwaway Samba DC. */
export interface SambaServer extends SambaInfo {
  /** Process id while running. */
  readonly pid: number | undefined;
  /** An ldapts client bound as Administrator over LDAPS (verified), for live changes; the caller unbinds it. */
  client(): Promise<Client>;
  /** Loads entries and accounts offline: stops the DC, loads in one transaction, starts it again. */
  load(entries: readonly SambaEntry[], accounts?: readonly SambaAccountSpec[]): Promise<void>;
  /** `samba-tool domain backup offline` into a temp dir; returns the .tar.bz2 path. */
  backup(): Promise<string>;
  /** Stops the DC (stdin closed, then signals), removes its directory. Safe to call twice. */
  stop(): Promise<void>;
  /** SIGKILL and wait; the directory stays (restart works). */
  kill(): Promise<void>;
  /** Stop (if running) and start again with the same data. */
  restart(): Promise<void>;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

// A test process that exits without stopping its DCs must not leave them behind. Samba started
// with -i also exits when its stdin closes, and setpriv's parent-death signal covers a SIGKILL.
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

function randomPassword(): string {
  // Samba's default policy: 7+ characters from three classes.
  return `Ds-${randomBytes(9).toString('base64url')}-a1A`;
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

const sambaPorts = [389, 636, 3268, 3269];

/** True when none of Samba's fixed ports is taken on `host`. */
export async function sambaPortsFree(host: string): Promise<boolean> {
  for (const port of sambaPorts) if (!(await portFree(host, port))) return false;
  return true;
}

/**
 * A loopback address whose Samba ports are free. Random within 127.64.0.0–127.191.255.255, so
 * concurrent test runs on one machine (and 127.0.0.1 services) do not collide.
 */
export async function freeLoopbackAddress(): Promise<string> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const host = `127.${64 + randomInt(128)}.${randomInt(256)}.${1 + randomInt(254)}`;
    if (await sambaPortsFree(host)) return host;
  }
  throw new Error('no free loopback address for a Samba DC');
}

/** `DIRSYNC.TEST` → `DC=dirsync,DC=test`. */
export function realmBaseDn(realm: string): string {
  return realm
    .toLowerCase()
    .split('.')
    .map((part) => `DC=${part}`)
    .join(',');
}

async function run(command: string, args: readonly string[], what: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, [...args], { maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string };
    const output = `${e.stderr ?? ''}\n${e.stdout ?? ''}`.trim().slice(-3000);
    throw new Error(`${what} failed: ${output}`, { cause: error });
  }
}

/**
 * Rewrites the generated smb.conf: provisioning drops some `--option` values, and a test DC must
 * keep every path inside its directory, run only the LDAP server, and listen on its own address.
 */
export function editSmbConf(text: string, settings: { readonly dir: string; readonly host: string; readonly allowPlainLdap: boolean }): string {
  const { dir, host } = settings;
  const values: [string, string][] = [
    ['server services', 'ldap'],
    ['interfaces', `${host}/8`],
    ['bind interfaces only', 'yes'],
    ['log file', join(dir, 'log.%m')],
    ['log level', '0'],
    ['pid directory', join(dir, 'run')],
    ['ncalrpc dir', join(dir, 'run', 'ncalrpc')],
    ['ntp signd socket directory', join(dir, 'run', 'ntp_signd')],
    ['winbindd socket directory', join(dir, 'run', 'winbindd')],
    ['ldap server require strong auth', settings.allowPlainLdap ? 'no' : 'yes'],
    // Samba accepts a replaced password for an hour (NTLM's grace period), LDAP binds included;
    // Active Directory refuses it to simple binds at once.
    ['old password allowed period', '0'],
  ];
  let out = text;
  for (const [key, value] of values) {
    const line = new RegExp(`^\\s*${key.replace(/ /g, '\\s+')}\\s*=.*$`, 'mi');
    out = line.test(out) ? out.replace(line, `\t${key} = ${value}`) : out.replace(/^\[global\]\s*$/m, `[global]\n\t${key} = ${value}`);
  }
  return out;
}

// Loads entries and accounts in one transaction, with the DC stopped: LDAP adds run at about 70
// per second and slow down as the database grows; this loads 10,000 users in about 20 s.
const loadScript = String.raw`
import json, sys
import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

conf, spec_path = sys.argv[1], sys.argv[2]
with open(spec_path) as f:
    spec = json.load(f)
lp = LoadParm()
lp.load(conf)
db = SamDB(url=lp.private_path('sam.ldb'), session_info=system_session(), lp=lp,
           flags=ldb.FLG_NOSYNC, options=['batch_mode:1', 'transaction_index_cache_size:200000'])
base = str(db.domain_dn())
db.transaction_start()
try:
    for entry in spec['entries']:
        message = {'dn': entry['dn']}
        message.update(entry['attributes'])
        db.add(message)
    for account in spec['accounts']:
        parent = account.get('parentDn') or ('CN=Users,' + base)
        dn = 'CN=%s,%s' % (account['name'], parent)
        db.add({'dn': dn, 'objectClass': 'user', 'sAMAccountName': account['name']})
        db.setpassword('(distinguishedName=%s)' % ldb.binary_encode(dn), account['password'],
                       force_change_at_next_login=False)
        db.modify_ldif('dn: %s\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 512\n' % dn)
    db.transaction_commit()
except Exception:
    db.transaction_cancel()
    raise
`;

/** Runs {@link loadScript} against a stopped DC's database. */
async function loadOffline(dir: string, confPath: string, entries: readonly SambaEntry[], accounts: readonly SambaAccountSpec[]): Promise<void> {
  if (entries.length === 0 && accounts.length === 0) return;
  const specPath = join(dir, `load-${randomBytes(4).toString('hex')}.json`);
  const scriptPath = join(dir, 'load.py');
  await writeFile(specPath, JSON.stringify({ entries, accounts }));
  await writeFile(scriptPath, loadScript);
  try {
    await run(systemPython, [scriptPath, confPath, specPath], `loading ${entries.length} entries into Samba`);
  } finally {
    await rm(specPath, { force: true });
  }
}

interface DcLayout {
  readonly dir: string;
  readonly confPath: string;
  readonly host: string;
  readonly realm: string;
  readonly domain: string;
  readonly hostName: string;
  readonly adminPassword: string;
  readonly allowPlainLdap: boolean;
}

/**
 * Provisions a throwaway Samba AD DC into a temp dir (about 5 s), loads `entries` offline, and
 * starts it in the foreground (`samba -i -M single`). The caller must `stop()` it.
 */
export async function startSamba(options: SambaOptions = {}): Promise<SambaServer> {
  const host = options.host ?? (await freeLoopbackAddress());
  const realm = (options.realm ?? 'DIRSYNC.TEST').toUpperCase();
  const domain = options.domain ?? 'DIRSYNC';
  const hostName = (options.hostName ?? 'dc1').toLowerCase();
  const adminPassword = options.adminPassword ?? randomPassword();
  const allowPlainLdap = options.allowPlainLdap ?? false;
  const dir = await mkdtemp(join(tmpdir(), 'dirsync-samba-'));
  try {
    // The DNS partitions (SAMBA_INTERNAL) are needed by `backup restore`; the DNS server itself
    // is not started (server services = ldap).
    await run(
      'samba-tool',
      [
        'domain', 'provision', `--realm=${realm}`, `--domain=${domain}`, '--server-role=dc',
        '--dns-backend=SAMBA_INTERNAL', '--use-rfc2307', `--adminpass=${adminPassword}`,
        `--targetdir=${dir}`, `--host-name=${hostName}`, `--host-ip=${host}`,
        '--option=interfaces=lo', '--option=bind interfaces only=yes',
      ],
      'samba-tool domain provision',
    );
    const layout: DcLayout = { dir, confPath: join(dir, 'etc', 'smb.conf'), host, realm, domain, hostName, adminPassword, allowPlainLdap };
    await prepare(layout);
    await loadOffline(dir, layout.confPath, options.entries ?? [], options.accounts ?? []);
    return await launch(layout, options.startTimeoutMs ?? 60_000);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Options of {@link restoreSamba}. */
export interface SambaRestoreOptions {
  /** New NetBIOS name of the restored DC (a restore makes a new DC: new name, new invocationId). */
  readonly hostName: string;
  /** Default: a free loopback address. */
  readonly host?: string;
  /** The backed-up domain's Administrator password (unchanged by a restore). */
  readonly adminPassword: string;
  readonly allowPlainLdap?: boolean;
  readonly startTimeoutMs?: number;
}

/**
 * Restores a backup (`SambaServer.backup()`) as a new DC and starts it: same domain, same
 * objects (objectGUIDs, USNs), but another DC name and invocationId — what a directory looks
 * like to a client after a restore from backup or a switch to another DC.
 */
export async function restoreSamba(backupFile: string, options: SambaRestoreOptions): Promise<SambaServer> {
  const host = options.host ?? (await freeLoopbackAddress());
  const parent = await mkdtemp(join(tmpdir(), 'dirsync-samba-'));
  const dir = join(parent, 'dc');
  try {
    await run(
      'samba-tool',
      ['domain', 'backup', 'restore', `--backup-file=${backupFile}`, `--newservername=${options.hostName}`, `--targetdir=${dir}`, `--host-ip=${host}`],
      'samba-tool domain backup restore',
    );
    const conf = await readFile(join(dir, 'etc', 'smb.conf'), 'utf8');
    const realm = /^\s*realm\s*=\s*(\S+)/im.exec(conf)?.[1]?.toUpperCase() ?? 'DIRSYNC.TEST';
    const domain = /^\s*workgroup\s*=\s*(\S+)/im.exec(conf)?.[1] ?? 'DIRSYNC';
    // The backup carries the old DC's certificate; Samba makes one for the new name when missing.
    for (const file of ['ca.pem', 'cert.pem', 'key.pem']) await rm(join(dir, 'private', 'tls', file), { force: true });
    const layout: DcLayout = {
      dir,
      confPath: join(dir, 'etc', 'smb.conf'),
      host,
      realm,
      domain,
      hostName: options.hostName.toLowerCase(),
      adminPassword: options.adminPassword,
      allowPlainLdap: options.allowPlainLdap ?? false,
    };
    await prepare(layout);
    const server = await launch(layout, options.startTimeoutMs ?? 60_000);
    const stop = server.stop.bind(server);
    return Object.assign(server, {
      async stop() {
        await stop();
        await rm(parent, { recursive: true, force: true });
      },
    });
  } catch (error) {
    await rm(parent, { recursive: true, force: true });
    throw error;
  }
}

async function prepare(layout: DcLayout): Promise<void> {
  await mkdir(join(layout.dir, 'run'), { recursive: true });
  const conf = await readFile(layout.confPath, 'utf8');
  await writeFile(layout.confPath, editSmbConf(conf, layout));
}

async function launch(layout: DcLayout, startTimeoutMs: number): Promise<SambaServer> {
  installExitHook();
  const { dir, confPath, host, realm, domain, hostName, adminPassword, allowPlainLdap } = layout;
  const baseDn = realmBaseDn(realm);
  const adminDn = `CN=Administrator,CN=Users,${baseDn}`;
  const dnsHostName = `${hostName}.${realm.toLowerCase()}`;
  const url = `ldap://${host}`;
  const ldapsUrl = `ldaps://${host}`;
  let child: { proc: ChildProcess; exited: Promise<void> } | undefined;
  let stopped = false;
  let caPem = '';

  const start = async () => {
    if (!(await sambaPortsFree(host))) throw new Error(`Samba's ports on ${host} are taken (another DC on this address?)`);
    const proc = spawn('setpriv', ['--pdeathsig', 'KILL', 'samba', '-i', '-M', 'single', '-s', confPath], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (text: string) => {
      stderr = (stderr + text).slice(-4000);
    });
    // Samba -i exits when its stdin closes: the pipe ties its life to this process.
    proc.stdin?.on('error', () => {});
    running.add(proc);
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    void exited.then(() => running.delete(proc));
    child = { proc, exited };
    try {
      await waitForRootDse(url, startTimeoutMs, () =>
        proc.exitCode !== null || proc.signalCode !== null ? `samba exited (${proc.exitCode ?? proc.signalCode}): ${stderr.trim() || 'no output'}` : undefined,
      );
      caPem = await readFile(join(dir, 'private', 'tls', 'ca.pem'), 'utf8');
    } catch (error) {
      child = undefined;
      proc.kill('SIGKILL');
      await exited;
      throw error;
    }
  };

  const terminate = async (signal: 'graceful' | 'SIGKILL') => {
    const current = child;
    if (!current) return;
    child = undefined;
    const { proc, exited } = current;
    if (proc.exitCode === null && proc.signalCode === null) {
      if (signal === 'SIGKILL') proc.kill('SIGKILL');
      else {
        proc.stdin?.end();
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
    }
    await exited;
  };

  await start();

  const server: SambaServer = {
    host,
    url,
    ldapsUrl,
    realm,
    domain,
    baseDn,
    dnsHostName,
    adminDn,
    adminPassword,
    get caPem() {
      return caPem;
    },
    dir,
    confPath,
    allowPlainLdap,
    get pid() {
      return child?.proc.pid;
    },
    client: () => sambaAdminClient(server),
    async load(entries, accounts = []) {
      if (stopped) throw new Error('the DC was stopped');
      await terminate('graceful');
      await loadOffline(dir, confPath, entries, accounts);
      await start();
    },
    backup: () => backupSamba(server),
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate('graceful');
      await rm(dir, { recursive: true, force: true });
    },
    async kill() {
      await terminate('SIGKILL');
    },
    async restart() {
      if (stopped) throw new Error('the DC was stopped; start a new one');
      await terminate('graceful');
      await start();
    },
  };
  return server;
}

/**
 * `samba-tool domain backup offline` of a DC (running or not) into a new temp dir; returns the
 * .tar.bz2 path (the caller removes its directory).
 */
export async function backupSamba(info: Pick<SambaInfo, 'confPath'>): Promise<string> {
  const target = await mkdtemp(join(tmpdir(), 'dirsync-samba-backup-'));
  await run('samba-tool', ['domain', 'backup', 'offline', `--targetdir=${target}`, '-s', info.confPath], 'samba-tool domain backup offline');
  const file = (await readdir(target)).find((name) => name.endsWith('.tar.bz2'));
  if (!file) throw new Error(`samba-tool wrote no backup into ${target}`);
  return join(target, file);
}

async function waitForRootDse(url: string, timeoutMs: number, exited: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const exit = exited();
    if (exit) throw new Error(exit);
    const client = new Client({ url, connectTimeout: 1_000, timeout: 5_000 });
    try {
      const { searchEntries } = await client.search('', { scope: 'base', attributes: ['dsServiceName'] });
      if (searchEntries[0]?.['dsServiceName']) return;
    } catch (error) {
      last = error;
    } finally {
      await client.unbind().catch(() => {});
    }
    if (Date.now() > deadline) throw new Error(`Samba did not answer on ${url} within ${timeoutMs} ms: ${String(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** An ldapts client bound as Administrator over LDAPS, verifying the DC's certificate. */
export async function sambaAdminClient(info: SambaInfo): Promise<Client> {
  const client = new Client({
    url: info.ldapsUrl,
    connectTimeout: 5_000,
    timeout: 60_000,
    tlsOptions: { ca: [info.caPem], servername: info.dnsHostName },
  });
  await client.bind(info.adminDn, info.adminPassword);
  return client;
}

/** The `unicodePwd` value that sets `password` (UTF-16LE of the quoted password; LDAPS only). */
export function unicodePwd(password: string): Buffer {
  return Buffer.from(`"${password}"`, 'utf16le');
}

/** A password Samba's default policy accepts. */
export function sambaPassword(): string {
  return randomPassword();
}

// Grants List Contents + Read Property on CN=Deleted Objects, which Samba (like AD) cannot do
// over LDAP without the Show Deleted control on the modify.
const grantTombstonesScript = String.raw`
import sys
import ldb
from samba.auth import system_session
from samba.dcerpc import security
from samba.ndr import ndr_pack, ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB

conf, account = sys.argv[1], sys.argv[2]
lp = LoadParm()
lp.load(conf)
db = SamDB(url=lp.private_path('sam.ldb'), session_info=system_session(), lp=lp)
sid = str(ndr_unpack(security.dom_sid, db.search(base=account, scope=ldb.SCOPE_BASE, attrs=['objectSid'])[0]['objectSid'][0]))
deleted = 'CN=Deleted Objects,' + str(db.domain_dn())
controls = ['show_deleted:1', 'sd_flags:1:4']
res = db.search(base=deleted, scope=ldb.SCOPE_BASE, attrs=['nTSecurityDescriptor'], controls=controls)
sd = ndr_unpack(security.descriptor, res[0]['nTSecurityDescriptor'][0])
sd.dacl_add(security.descriptor.from_sddl('D:(A;;LCRP;;;%s)' % sid, security.dom_sid(sid)).dacl.aces[0])
m = ldb.Message()
m.dn = ldb.Dn(db, deleted)
m['nTSecurityDescriptor'] = ldb.MessageElement(ndr_pack(sd), ldb.FLAG_MOD_REPLACE, 'nTSecurityDescriptor')
db.modify(m, controls=controls)
`;

/** Lets an account read tombstones (what the delta of a service account needs), on a running DC. */
export async function grantTombstoneRead(info: Pick<SambaInfo, 'confPath' | 'dir'>, accountDn: string): Promise<void> {
  await sambaPython(info, grantTombstonesScript, [accountDn]);
}

/** Runs a Python snippet against a DC's database with Samba's bindings (`conf` as argv[1]). */
export async function sambaPython(info: Pick<SambaInfo, 'confPath' | 'dir'>, script: string, args: readonly string[] = []): Promise<string> {
  const path = join(info.dir, `snippet-${randomBytes(4).toString('hex')}.py`);
  await writeFile(path, script);
  try {
    return await run(systemPython, [path, info.confPath, ...args], 'Samba Python snippet');
  } finally {
    await rm(path, { force: true });
  }
}

/** Shape of a generated Active Directory test directory. */
export interface AdDirectorySpec {
  /** Name of the OU holding everything (and prefix of names); letters and digits, at most 8. */
  readonly ou: string;
  readonly users: number;
  readonly groups: number;
  /** Members of each ordinary group (users, consecutive from a group's offset). */
  readonly membersPerGroup: number;
  readonly contacts: number;
  /** Members of one extra group `<ou> Big` (more than AD's 1,500 MaxValRange exercises range retrieval). */
  readonly largeGroupMembers?: number;
  /** Every n-th user is disabled (userAccountControl 546); default 50. */
  readonly disabledEvery?: number;
}

/** A generated AD test directory: its entries in load order and where things are. */
export interface AdTestDirectory {
  readonly entries: readonly SambaEntry[];
  readonly ouDn: string;
  readonly spec: AdDirectorySpec;
}

const pad = (i: number) => String(i).padStart(5, '0');

/** DNs and names of generated AD objects (pure; the same spec gives the same names). */
export const adNames = {
  userCn: (ou: string, i: number) => `${ou} User ${pad(i)}`,
  userDn: (ouDn: string, ou: string, i: number) => `CN=${ou} User ${pad(i)},OU=People,${ouDn}`,
  sam: (ou: string, i: number) => `${ou.toLowerCase()}${pad(i)}`,
  mail: (ou: string, i: number, dnsDomain: string) => `${ou.toLowerCase()}.${pad(i)}@${dnsDomain}`,
  groupDn: (ouDn: string, ou: string, j: number) => `CN=${ou} Group ${pad(j)},OU=Groups,${ouDn}`,
  largeGroupDn: (ouDn: string, ou: string) => `CN=${ou} Big,OU=Groups,${ouDn}`,
  nestedGroupDn: (ouDn: string, ou: string) => `CN=${ou} Nested,OU=Groups,${ouDn}`,
  contactDn: (ouDn: string, ou: string, k: number) => `CN=${ou} Contact ${pad(k)},OU=Contacts,${ouDn}`,
};

/** `DC=dirsync,DC=test` → `dirsync.test`. */
export function dnsDomainOf(baseDn: string): string {
  return baseDn
    .split(',')
    .map((part) => part.replace(/^\s*DC=/i, ''))
    .join('.')
    .toLowerCase();
}

/**
 * Generates an AD directory under `OU=<ou>,<baseDn>`: users (with UPN, mail, proxy addresses,
 * managers, some disabled), contacts, groups of users, one large group and one group nesting
 * two others. Entries are in load order (parents and referenced objects first).
 */
export function adTestDirectory(baseDn: string, spec: AdDirectorySpec): AdTestDirectory {
  if (!/^[A-Za-z][A-Za-z0-9]{0,7}$/.test(spec.ou)) throw new Error(`ou "${spec.ou}" must be 1-8 letters or digits`);
  const { ou } = spec;
  const ouDn = `OU=${ou},${baseDn}`;
  const domain = dnsDomainOf(baseDn);
  const disabledEvery = spec.disabledEvery ?? 50;
  const entries: SambaEntry[] = [
    { dn: ouDn, attributes: { objectClass: 'organizationalUnit' } },
    { dn: `OU=People,${ouDn}`, attributes: { objectClass: 'organizationalUnit' } },
    { dn: `OU=Groups,${ouDn}`, attributes: { objectClass: 'organizationalUnit' } },
    { dn: `OU=Contacts,${ouDn}`, attributes: { objectClass: 'organizationalUnit' } },
  ];
  const titles = ['Engineer', 'Manager', 'Analyst', 'Designer', 'Director'];
  const departments = ['Sales', 'Research', 'Finance', 'Support'];
  for (let i = 0; i < spec.users; i++) {
    const mail = adNames.mail(ou, i, domain);
    const attributes: Record<string, string | string[]> = {
      objectClass: 'user',
      sAMAccountName: adNames.sam(ou, i),
      userPrincipalName: `${adNames.sam(ou, i)}@${domain}`,
      givenName: `Given${pad(i)}`,
      sn: `${ou}${pad(i)}`,
      displayName: adNames.userCn(ou, i),
      mail,
      proxyAddresses: [`SMTP:${mail}`, `smtp:${ou.toLowerCase()}${pad(i)}@alias.${domain}`],
      department: departments[i % departments.length] as string,
      title: titles[i % titles.length] as string,
      telephoneNumber: `+1 555 ${pad(i)}`,
      // 512 = normal account; +32: no password needed (bulk users have none); +2: disabled.
      userAccountControl: disabledEvery > 0 && i % disabledEvery === disabledEvery - 1 ? '546' : '544',
    };
    if (i % 10 !== 0) attributes['manager'] = adNames.userDn(ouDn, ou, i - (i % 10));
    entries.push({ dn: adNames.userDn(ouDn, ou, i), attributes });
  }
  for (let k = 0; k < spec.contacts; k++) {
    entries.push({
      dn: adNames.contactDn(ouDn, ou, k),
      attributes: {
        objectClass: 'contact',
        displayName: `${ou} Contact ${pad(k)}`,
        mail: `contact${pad(k)}@partner.example`,
        givenName: 'Contact',
        sn: pad(k),
      },
    });
  }
  const members = Math.min(spec.membersPerGroup, spec.users);
  for (let j = 0; j < spec.groups; j++) {
    const list: string[] = [];
    for (let m = 0; m < members; m++) list.push(adNames.userDn(ouDn, ou, (j * 7 + m) % spec.users));
    if (j === 0 && spec.contacts > 0) list.push(adNames.contactDn(ouDn, ou, 0));
    entries.push({
      dn: adNames.groupDn(ouDn, ou, j),
      attributes: {
        objectClass: 'group',
        sAMAccountName: `${ou.toLowerCase()}-g${pad(j)}`,
        description: `${ou} group ${j}`,
        // Global security groups (-2147483646), every third one a universal distribution list (8).
        groupType: j % 3 === 2 ? '8' : '-2147483646',
        ...(j % 3 === 2 ? { mail: `list${pad(j)}@${domain}` } : {}),
        ...(list.length > 0 ? { member: list } : {}),
      },
    });
  }
  const large = Math.min(spec.largeGroupMembers ?? 0, spec.users);
  if (large > 0) {
    const list: string[] = [];
    for (let i = 0; i < large; i++) list.push(adNames.userDn(ouDn, ou, i));
    entries.push({
      dn: adNames.largeGroupDn(ouDn, ou),
      attributes: { objectClass: 'group', sAMAccountName: `${ou.toLowerCase()}-big`, groupType: '-2147483646', member: list },
    });
  }
  if (spec.groups >= 2) {
    entries.push({
      dn: adNames.nestedGroupDn(ouDn, ou),
      attributes: {
        objectClass: 'group',
        sAMAccountName: `${ou.toLowerCase()}-nested`,
        groupType: '-2147483646',
        member: [adNames.groupDn(ouDn, ou, 0), adNames.groupDn(ouDn, ou, 1), adNames.userDn(ouDn, ou, 0)],
      },
    });
  }
  return { entries, ouDn, spec };
}

/** Objects a generated directory holds, by type (what a full sync of its OU must find). */
export function adDirectoryCounts(spec: AdDirectorySpec): { users: number; groups: number; contacts: number; memberships: number } {
  const members = Math.min(spec.membersPerGroup, spec.users);
  const large = Math.min(spec.largeGroupMembers ?? 0, spec.users);
  const groups = spec.groups + (large > 0 ? 1 : 0) + (spec.groups >= 2 ? 1 : 0);
  const memberships = spec.groups * members + (spec.groups > 0 && spec.contacts > 0 ? 1 : 0) + large + (spec.groups >= 2 ? 3 : 0);
  return { users: spec.users, groups, contacts: spec.contacts, memberships };
}

/** The seed directory of the shared DC: read it, never change it (tests make their own OUs). */
export const sharedSeedSpec: AdDirectorySpec = {
  ou: 'Seed',
  users: 2000,
  groups: 20,
  membersPerGroup: 25,
  contacts: 40,
  largeGroupMembers: 1600,
};

/** The DC shared by a test run, as the jest global setup describes it to test files. */
export interface SharedSambaInfo extends SambaInfo {
  /** Read-only service account that may read tombstones. */
  readonly reader: { readonly dn: string; readonly password: string };
  /** The seed directory ({@link sharedSeedSpec}) under `seed.ouDn`. */
  readonly seed: { readonly ouDn: string; readonly spec: AdDirectorySpec };
}

/** Environment variable through which the global setup describes the shared DC to test workers. */
export const sharedSambaEnv = 'DIRSYNC_TEST_SAMBA';

/**
 * Provisions and starts the run's shared DC with the seed directory and the reader account.
 * Called by the jest global setup; also the fallback of {@link sharedSamba}.
 */
export async function startSharedSamba(options: Pick<SambaOptions, 'host'> = {}): Promise<{ server: SambaServer; info: SharedSambaInfo }> {
  const readerPassword = randomPassword();
  const realm = 'DIRSYNC.TEST';
  const seed = adTestDirectory(realmBaseDn(realm), sharedSeedSpec);
  const server = await startSamba({
    ...options,
    realm,
    entries: seed.entries,
    accounts: [{ name: 'dirsync-reader', password: readerPassword }],
  });
  const readerDn = `CN=dirsync-reader,CN=Users,${server.baseDn}`;
  await grantTombstoneRead(server, readerDn);
  const info: SharedSambaInfo = {
    ...describeSamba(server),
    reader: { dn: readerDn, password: readerPassword },
    seed: { ouDn: seed.ouDn, spec: sharedSeedSpec },
  };
  return { server, info };
}

/** The serialisable part of a running DC. */
export function describeSamba(server: SambaInfo): SambaInfo {
  const { host, url, ldapsUrl, realm, domain, baseDn, dnsHostName, adminDn, adminPassword, caPem, dir, confPath, allowPlainLdap } = server;
  return { host, url, ldapsUrl, realm, domain, baseDn, dnsHostName, adminDn, adminPassword, caPem, dir, confPath, allowPlainLdap };
}

/** A test file's view of the shared DC. */
export interface SharedSamba extends SharedSambaInfo {
  /** Administrator client over LDAPS; the caller unbinds it. */
  client(): Promise<Client>;
  /**
   * Creates `OU=<label>-<random>` under the domain for one test file, so files never see each
   * other's objects; returns its DN.
   */
  createOu(label: string): Promise<string>;
  /** Stops the DC when this file had to start its own; nothing for the run's shared DC. */
  release(): Promise<void>;
}

/**
 * The run's shared DC, described by the global setup through {@link sharedSambaEnv}. When a file
 * runs without it (a run the global setup did not expect to need Samba), it starts a DC of its
 * own, which `release()` stops.
 */
export async function sharedSamba(): Promise<SharedSamba> {
  const described = process.env[sharedSambaEnv];
  let info: SharedSambaInfo;
  let release = async () => {};
  if (described) {
    info = JSON.parse(described) as SharedSambaInfo;
  } else {
    const started = await startSharedSamba();
    info = started.info;
    release = () => started.server.stop();
  }
  return {
    ...info,
    client: () => sambaAdminClient(info),
    async createOu(label: string) {
      const dn = `OU=${label.replace(/[^A-Za-z0-9-]/g, '-')}-${randomBytes(3).toString('hex')},${info.baseDn}`;
      const client = await sambaAdminClient(info);
      try {
        await client.add(dn, { objectClass: 'organizationalUnit' });
      } finally {
        await client.unbind();
      }
      return dn;
    },
    release,
  };
}

type AdAttributes = Record<string, string | string[]>;

/** A sAMAccountName unique in the domain (at most 20 characters), for objects tests create. */
export function uniqueSam(prefix = 't'): string {
  return `${prefix.slice(0, 8)}-${randomBytes(5).toString('hex')}`;
}

/**
 * Adds an enabled user `CN=<cn>,<parentDn>` and returns its DN: with `password` an ordinary
 * account that can bind (userAccountControl 512), without one an account that needs none (544).
 * `attributes` are added as given (sAMAccountName defaults to a unique one).
 */
export async function addAdUser(
  client: Client,
  parentDn: string,
  cn: string,
  attributes: AdAttributes = {},
  options: { readonly password?: string } = {},
): Promise<string> {
  const dn = `CN=${cn},${parentDn}`;
  const values: AdAttributes = { objectClass: 'user', sAMAccountName: uniqueSam('u'), userAccountControl: options.password ? '512' : '544', ...attributes };
  const list = Object.entries(values).map(([type, value]) => new Attribute({ type, values: Array.isArray(value) ? value : [value] }));
  if (options.password) list.push(new Attribute({ type: 'unicodePwd', values: [unicodePwd(options.password)] }));
  await client.add(dn, list);
  return dn;
}

/** Sets a user's password (the DC requires LDAPS for it, as the admin client uses). */
export async function setAdPassword(client: Client, dn: string, password: string): Promise<void> {
  await client.modify(dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'unicodePwd', values: [unicodePwd(password)] }) }));
}

/** Adds a global security group with the given member DNs and returns its DN. */
export async function addAdGroup(client: Client, parentDn: string, cn: string, members: readonly string[] = [], attributes: AdAttributes = {}): Promise<string> {
  const dn = `CN=${cn},${parentDn}`;
  await client.add(dn, {
    objectClass: 'group',
    sAMAccountName: uniqueSam('g'),
    groupType: '-2147483646',
    ...(members.length > 0 ? { member: [...members] } : {}),
    ...attributes,
  });
  return dn;
}

/** Adds a contact and returns its DN. */
export async function addAdContact(client: Client, parentDn: string, cn: string, attributes: AdAttributes = {}): Promise<string> {
  const dn = `CN=${cn},${parentDn}`;
  await client.add(dn, { objectClass: 'contact', ...attributes });
  return dn;
}

/** Adds an organizational unit and returns its DN. */
export async function addAdOu(client: Client, parentDn: string, name: string): Promise<string> {
  const dn = `OU=${name},${parentDn}`;
  await client.add(dn, { objectClass: 'organizationalUnit' });
  return dn;
}
