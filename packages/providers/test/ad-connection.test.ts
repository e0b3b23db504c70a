import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SharedSamba, type TestCertificates, addAdUser, createTestCertificates, sambaPassword, sharedSamba, testDestinations } from '@dirsync/testkit';
import { AuthError, ConfigError } from '../src/errors.ts';
import { type ActiveDirectorySettingsInput, createProvider } from '../src/index.ts';
import type { ConnectionReport } from '../src/types.ts';

// Test Connection and the connection path of the Active Directory provider against the run's
// Samba DC, which like a hardened DC refuses simple binds without TLS.

let dc: SharedSamba;
let ou: string;
let other: TestCertificates;
let otherDir: string;
/** A plain user: may read the directory, not the tombstones, and write nothing. */
let plain: { dn: string; password: string };

beforeAll(async () => {
  dc = await sharedSamba();
  ou = await dc.createOu('adconn');
  otherDir = await mkdtemp(join(tmpdir(), 'dirsync-wrong-ca-'));
  other = await createTestCertificates(otherDir);
  const client = await dc.client();
  try {
    const password = sambaPassword();
    const dn = await addAdUser(client, ou, 'Plain Reader', {}, { password });
    plain = { dn, password };
  } finally {
    await client.unbind();
  }
});

afterAll(async () => {
  await rm(otherDir, { recursive: true, force: true });
  await dc?.release();
});

function settings(change: Partial<ActiveDirectorySettingsInput> = {}): ActiveDirectorySettingsInput {
  return {
    url: dc.ldapsUrl,
    bindDn: dc.reader.dn,
    tls: { caPem: dc.caPem, serverName: dc.dnsHostName },
    baseDns: [dc.seed.ouDn],
    ...change,
  };
}

async function testConnection(change: Partial<ActiveDirectorySettingsInput> = {}, password = dc.reader.password): Promise<ConnectionReport> {
  const provider = createProvider('active_directory', settings(change), password, { destinations: testDestinations });
  try {
    return await provider.testConnection(AbortSignal.timeout(60_000));
  } finally {
    await provider.close();
  }
}

function line(report: ConnectionReport, name: string) {
  return report.checks.find((c) => c.name === name);
}

describe('Active Directory Test Connection', () => {
  it('reports every line for the read-only service account over LDAPS with the DC\'s CA', async () => {
    const report = await testConnection();
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual(['connect', 'tls', 'bind', 'domain controller', 'naming context', 'base', 'tombstones', 'read-only', 'delta']);
    expect(report.checks.filter((c) => c.warning)).toEqual([]);
    expect(line(report, 'tls')?.detail).toBe('LDAPS, certificate verified against the configured CA');
    expect(line(report, 'domain controller')?.detail).toMatch(new RegExp(`^${dc.dnsHostName} \\(Samba.*\\), invocationId [0-9a-f-]{36}, highest committed USN \\d+$`));
    expect(line(report, 'naming context')?.detail).toMatch(/^DC=dirsync,DC=test \(tombstone lifetime 180 days\)$/);
    const { users, contacts, groups } = { users: dc.seed.spec.users, contacts: dc.seed.spec.contacts, groups: dc.seed.spec.groups + 2 };
    expect(line(report, 'base')?.detail).toBe(`${dc.seed.ouDn}: ${users} users, ${groups} groups, ${contacts} contacts visible`);
    expect(line(report, 'tombstones')?.detail).toMatch(/^readable/);
  });

  it('warns when the account can write, and when it cannot read tombstones', async () => {
    const admin = await testConnection({ bindDn: dc.adminDn }, dc.adminPassword);
    expect(admin.ok).toBe(true);
    expect(line(admin, 'read-only')).toMatchObject({ ok: true, warning: true, detail: expect.stringMatching(/^the account can write: OU=Seed.*attributes writable.*read-only account is enough/) });

    const user = await testConnection({ bindDn: plain.dn }, plain.password);
    expect(user.ok).toBe(true);
    expect(line(user, 'tombstones')).toMatchObject({ ok: true, warning: true, detail: expect.stringMatching(/not readable by .*only full syncs find them/) });
    expect(line(user, 'read-only')).toMatchObject({ ok: true, detail: 'the account cannot write to the configured bases' });
  });

  it('says the password is wrong, after connect and TLS worked', async () => {
    const report = await testConnection({}, 'not-the-password');
    expect(report.ok).toBe(false);
    expect(report.checks.map((c) => [c.name, c.ok])).toEqual([['connect', true], ['tls', true], ['bind', false]]);
    expect(line(report, 'bind')?.detail).toMatch(/^invalid credentials as CN=dirsync-reader,CN=Users,DC=dirsync,DC=test on ldaps:\/\/.*: wrong password/);
    expect(line(report, 'bind')?.detail).not.toContain('not-the-password');
  });

  it('fails TLS clearly with the wrong CA, or when the certificate does not name the host', async () => {
    const wrongCa = await testConnection({ tls: { caPem: other.caPem, serverName: dc.dnsHostName } });
    expect(wrongCa.ok).toBe(false);
    expect(line(wrongCa, 'tls')).toMatchObject({ ok: false, detail: expect.stringMatching(/^TLS certificate verification failed for ldaps:\/\/.*check tls\.caPem/) });
    expect(line(wrongCa, 'bind')).toBeUndefined();

    const wrongName = await testConnection({ tls: { caPem: dc.caPem } });
    expect(line(wrongName, 'tls')).toMatchObject({ ok: false, detail: expect.stringMatching(/^TLS certificate verification failed.*(IP|altnames|host)/i) });
  });

  it('upgrades ldap:// with StartTLS', async () => {
    const report = await testConnection({ url: dc.url });
    expect(report.ok).toBe(true);
    expect(line(report, 'tls')?.detail).toBe('StartTLS, certificate verified against the configured CA');
  });

  it('reports the DC\'s refusal of a simple bind over plain LDAP', async () => {
    const report = await testConnection({ url: dc.url, tls: { mode: 'none', allowInsecure: true } });
    expect(report.ok).toBe(false);
    expect(line(report, 'tls')).toMatchObject({ ok: true, warning: true });
    expect(line(report, 'bind')?.detail).toMatch(/refused this kind of authentication.*stronger authentication/);
  });

  it('fails the lines of a missing base and of a base outside the domain', async () => {
    const missing = `OU=Nowhere,${dc.baseDn}`;
    const report = await testConnection({ baseDns: [missing, 'DC=elsewhere,DC=example'] });
    expect(report.ok).toBe(false);
    expect(line(report, 'naming context')).toMatchObject({ ok: false, detail: expect.stringContaining('DC=elsewhere,DC=example lies outside the naming contexts') });
    const bases = report.checks.filter((c) => c.name === 'base');
    expect(bases[0]).toMatchObject({ ok: false, detail: expect.stringMatching(/^OU=Nowhere,DC=dirsync,DC=test does not exist on ldaps:/) });
  });

  it('checks that DirSync may be used when it is the delta method', async () => {
    const report = await testConnection({ deltaMethod: 'dirsync' });
    expect(line(report, 'delta')).toMatchObject({ ok: true, detail: expect.stringMatching(/^DirSync on dc1\.dirsync\.test/) });
  });
});

describe('Active Directory connection errors during a sync', () => {
  it('fails a fetch with a non-retryable AuthError naming the account, never the password', async () => {
    const provider = createProvider('active_directory', settings(), 'Wrong-Passw0rd!', { destinations: testDestinations });
    try {
      const pages = provider.fetchFull(AbortSignal.timeout(30_000))[Symbol.asyncIterator]();
      const error = await pages.next().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AuthError);
      expect((error as AuthError).retryable).toBe(false);
      expect((error as Error).message).toMatch(/invalid credentials as CN=dirsync-reader.*wrong password/);
      expect((error as Error).message).not.toContain('Wrong-Passw0rd!');
    } finally {
      await provider.close();
    }
  });

  it('fails a fetch with a ConfigError when the CA is wrong', async () => {
    const provider = createProvider('active_directory', settings({ tls: { caPem: other.caPem, serverName: dc.dnsHostName } }), dc.reader.password, { destinations: testDestinations });
    try {
      const error = await provider.fetchFull(AbortSignal.timeout(30_000))[Symbol.asyncIterator]().next().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/TLS certificate verification failed/);
    } finally {
      await provider.close();
    }
  });
});
