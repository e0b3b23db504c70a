import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SlapdServer, type TestCertificates, createTestCertificates, startSlapd, testDestinations } from '@dirsync/testkit';
import { ConfigError } from '../src/errors.ts';
import { createProvider } from '../src/index.ts';
import { LdapConnection, type LdapTlsOptions, readEntry } from '../src/ldap/index.ts';

let server: SlapdServer;
let other: TestCertificates;
let otherDir: string;

beforeAll(async () => {
  server = await startSlapd({ tls: true });
  otherDir = await mkdtemp(join(tmpdir(), 'dirsync-wrong-ca-'));
  other = await createTestCertificates(otherDir);
});
afterAll(async () => {
  await server.stop();
  await rm(otherDir, { recursive: true, force: true });
});

async function openWith(url: string, tls: LdapTlsOptions): Promise<LdapConnection> {
  return LdapConnection.open({ url, tls, bindDn: server.readerDn, password: server.readerPassword, connectTimeoutMs: 5_000, destinations: testDestinations });
}

describe('TLS', () => {
  it('verifies LDAPS against the configured CA', async () => {
    const connection = await openWith(server.ldapsUrl as string, { mode: 'ldaps', caPem: server.tls?.caPem });
    try {
      expect(connection.tlsInUse).toBe('ldaps');
      expect((await readEntry(connection, server.suffix, ['dc']))?.attributes['dc']).toEqual(['example']);
    } finally {
      await connection.close();
    }
  });

  it('upgrades with StartTLS and verifies against the configured CA', async () => {
    const url = server.url.replace('127.0.0.1', 'localhost');
    const connection = await openWith(url, { mode: 'starttls', caPem: server.tls?.caPem });
    try {
      expect(connection.tlsInUse).toBe('starttls');
      expect((await readEntry(connection, server.suffix, ['dc']))?.attributes['dc']).toEqual(['example']);
    } finally {
      await connection.close();
    }
  });

  it.each([
    ['LDAPS', 'ldaps'],
    ['StartTLS', 'starttls'],
  ] as const)('fails %s clearly with the wrong CA', async (_name, mode) => {
    const url = mode === 'ldaps' ? (server.ldapsUrl as string) : server.url;
    const error = await openWith(url, { mode, caPem: other.caPem }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/TLS certificate verification failed for .*tls\.caPem/);
  });

  it('fails without a CA when the system does not trust the server', async () => {
    const error = await openWith(server.ldapsUrl as string, { mode: 'ldaps' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/TLS certificate verification failed/);
  });

  it('fails when the certificate does not name the server', async () => {
    const error = await openWith(server.ldapsUrl as string, { mode: 'ldaps', caPem: server.tls?.caPem, serverName: 'ldap.elsewhere.test' }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/TLS certificate verification failed/);
  });

  it('reports LDAPS spoken to a plain LDAP port as a TLS configuration problem', async () => {
    const url = server.url.replace('ldap://', 'ldaps://');
    const error = await openWith(url, { mode: 'ldaps', caPem: server.tls?.caPem }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/TLS/);
  });

  it('shows a TLS failure as the failed line of Test Connection', async () => {
    const settings = (caPem: string) => ({
      url: server.ldapsUrl,
      bindDn: server.readerDn,
      tls: { caPem },
      users: { baseDns: [`ou=people,${server.suffix}`] },
      groups: { baseDns: [`ou=groups,${server.suffix}`] },
    });
    const good = createProvider('ldap', settings(server.tls?.caPem as string), server.readerPassword, { destinations: testDestinations });
    const bad = createProvider('ldap', settings(other.caPem), server.readerPassword, { destinations: testDestinations });
    try {
      const ok = await good.testConnection();
      expect(ok.ok).toBe(true);
      expect(ok.checks.find((c) => c.name === 'tls')).toEqual({ name: 'tls', ok: true, detail: 'LDAPS, certificate verified against the configured CA' });
      const failed = await bad.testConnection();
      expect(failed.ok).toBe(false);
      expect(failed.checks.map((c) => [c.name, c.ok])).toEqual([
        ['connect', true],
        ['tls', false],
      ]);
      expect(failed.checks[1]?.detail).toMatch(/TLS certificate verification failed/);
    } finally {
      await good.close();
      await bad.close();
    }
  });
});
