import net from 'node:net';
import { testDestinations } from '@dirsync/testkit';
import { type ConnectionReport, DestinationPolicy, UnexpectedPeerError, createProvider, entraIdSettingsSchema } from '../src/index.ts';
import { LdapConnection } from '../src/ldap/connection.ts';

/** A TCP server on loopback that records every connection and byte, and answers as `answer` says. */
interface RecordingServer {
  readonly port: number;
  readonly connections: number;
  readonly received: Buffer;
  close(): Promise<void>;
}

async function recordingServer(answer: (socket: net.Socket, chunk: Buffer) => void): Promise<RecordingServer> {
  let connections = 0;
  const chunks: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      answer(socket, chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get connections() {
      return connections;
    },
    get received() {
      return Buffer.concat(chunks);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const password = 'Reader-Passw0rd-7731';
const bindDn = 'cn=reader,dc=example,dc=com';

function ldapSettings(url: string, kind = 'ldap'): Record<string, unknown> {
  const bases =
    kind === 'active_directory'
      ? { baseDns: ['ou=staff,dc=example,dc=com'] }
      : { users: { baseDns: ['ou=people,dc=example,dc=com'] }, groups: { baseDns: ['ou=groups,dc=example,dc=com'] } };
  return {
    url,
    bindDn,
    tls: url.startsWith('ldaps:') ? { mode: 'ldaps' } : { mode: 'none', allowInsecure: true },
    ...bases,
    timeouts: { connectMs: 3_000 },
  };
}

async function testConnection(url: string, policy?: DestinationPolicy, kind = 'ldap'): Promise<ConnectionReport> {
  const provider = createProvider(kind, ldapSettings(url, kind), password, policy ? { destinations: policy } : {});
  try {
    return await provider.testConnection(AbortSignal.timeout(20_000));
  } finally {
    await provider.close();
  }
}

describe('a peer that does not answer as an LDAP server', () => {
  test.each([
    ['a web server', 'HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'],
    ['a Redis server', '-ERR unknown command\r\n'],
  ])('%s gets the anonymous RootDSE read and no bind', async (_what, reply) => {
    const server = await recordingServer((socket) => socket.write(reply));
    try {
      for (const kind of ['ldap', 'active_directory', 'domino']) {
        const report = await testConnection(`ldap://127.0.0.1:${server.port}`, testDestinations, kind);
        expect(report.ok).toBe(false);
        expect(report.checks).toEqual([
          {
            name: 'destination',
            ok: false,
            detail: expect.stringMatching(new RegExp(`^refused: ldap://127\\.0\\.0\\.1:${server.port} did not answer as an LDAP server .*no credentials were sent`)),
          },
        ]);
      }
      expect(server.connections).toBe(3);
      // Only the probe arrived: neither the password nor the bind DN was ever written.
      expect(server.received.includes(Buffer.from(password))).toBe(false);
      expect(server.received.includes(Buffer.from(bindDn))).toBe(false);
      expect(server.received.includes(Buffer.from('supportedLDAPVersion'))).toBe(true);
    } finally {
      await server.close();
    }
  });

  test('opening the connection directly fails with the typed refusal', async () => {
    const server = await recordingServer((socket) => socket.end('garbage that is not BER\n'));
    try {
      const error = await LdapConnection.open({
        url: `ldap://127.0.0.1:${server.port}`,
        tls: { mode: 'none', allowInsecure: true },
        bindDn,
        password,
        destinations: testDestinations,
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnexpectedPeerError);
      expect((error as UnexpectedPeerError).retryable).toBe(false);
      expect(server.received.includes(Buffer.from(password))).toBe(false);
    } finally {
      await server.close();
    }
  });

  test('a silent peer times out without being sent the bind', async () => {
    const server = await recordingServer(() => undefined);
    try {
      const report = await testConnection(`ldap://127.0.0.1:${server.port}`, testDestinations);
      expect(report.ok).toBe(false);
      expect(report.checks[0]?.name).toBe('connect');
      expect(server.received.length).toBeGreaterThan(0);
      expect(server.received.includes(Buffer.from(password))).toBe(false);
    } finally {
      await server.close();
    }
  });
});

describe('destinations refused before connecting', () => {
  test('the strict policy (the default) refuses a loopback port: no connection is attempted', async () => {
    const server = await recordingServer((socket) => socket.end());
    try {
      const report = await testConnection(`ldap://127.0.0.1:${server.port}`);
      expect(report).toEqual({
        ok: false,
        checks: [
          {
            name: 'destination',
            ok: false,
            detail: `refused: ldap://127.0.0.1:${server.port} resolves to 127.0.0.1, a loopback address, which this installation does not allow; the platform can allow a network for directories reached over a VPN or private link with DIRSYNC_ALLOWED_NETWORKS (comma-separated CIDRs)`,
          },
        ],
      });
      const viaName = await testConnection(`ldap://localhost:${server.port}`);
      expect(viaName.checks[0]?.detail).toMatch(/^refused: ldap:\/\/localhost:\d+ resolves to (127\.0\.0\.1|::1), a loopback address/);
      // An integer host is an IPv4 address to the resolver: checked on what it resolves to.
      const numeric = await testConnection(`ldap://2130706433:${server.port}`);
      expect(numeric.checks[0]?.detail).toMatch(/resolves to 127\.0\.0\.1, a loopback address/);
      expect(server.connections).toBe(0);
    } finally {
      await server.close();
    }
  });

  test('the metadata address is refused whatever the allowed networks', async () => {
    const generous = new DestinationPolicy({ allowedNetworks: ['169.254.0.0/16'] });
    for (const policy of [undefined, testDestinations, generous]) {
      const report = await testConnection('ldap://169.254.169.254:389', policy);
      expect(report.checks).toEqual([
        {
          name: 'destination',
          ok: false,
          detail: 'refused: ldap://169.254.169.254:389 resolves to 169.254.169.254, a link-local metadata address (the cloud metadata service), which is never a valid destination',
        },
      ]);
    }
    const mapped = await testConnection('ldaps://[::ffff:169.254.169.254]:636', testDestinations);
    expect(mapped.checks[0]).toMatchObject({ name: 'destination', detail: expect.stringMatching(/a link-local metadata address/) });
  });

  test('Entra ID token and Graph URLs pass the policy too', async () => {
    const settings = entraIdSettingsSchema.parse({
      tenantId: '11111111-2222-3333-4444-555555555555',
      legacyApp: { clientId: '66666666-7777-8888-9999-000000000000' },
      authorityHost: 'https://169.254.169.254',
      graphBaseUrl: 'https://127.0.0.1:8443',
    });
    for (const policy of [undefined, testDestinations]) {
      const provider = createProvider('entra_id', settings, 'client-secret-value', policy ? { destinations: policy } : {});
      try {
        const report = await provider.testConnection(AbortSignal.timeout(20_000));
        expect(report.checks).toEqual([
          { name: 'destination', ok: false, detail: 'refused: https://169.254.169.254 resolves to 169.254.169.254, a link-local metadata address (the cloud metadata service), which is never a valid destination' },
        ]);
      } finally {
        await provider.close();
      }
    }
    const graphOnLoopback = createProvider('entra_id', { ...settings, authorityHost: 'https://192.0.3.1' }, 'client-secret-value');
    try {
      const report = await graphOnLoopback.testConnection(AbortSignal.timeout(20_000));
      expect(report.checks[0]).toMatchObject({ name: 'destination', detail: expect.stringMatching(/^refused: https:\/\/127\.0\.0\.1:8443 resolves to 127\.0\.0\.1, a loopback address/) });
    } finally {
      await graphOnLoopback.close();
    }
  });
});

test('a host name is resolved once and the connection goes to the checked address', async () => {
  const server = await recordingServer((socket) => socket.end('not LDAP\n'));
  let lookups = 0;
  const policy = new DestinationPolicy({
    allowedNetworks: ['127.0.0.0/8'],
    resolve: async () => {
      lookups += 1;
      // Rebinding: a second answer would point elsewhere.
      return lookups === 1 ? [{ address: '127.0.0.1', family: 4 }] : [{ address: '169.254.169.254', family: 4 }];
    },
  });
  try {
    const error = await LdapConnection.open({ url: `ldap://directory.test:${server.port}`, tls: { mode: 'none', allowInsecure: true }, destinations: policy }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnexpectedPeerError);
    expect(server.connections).toBe(1);
    expect(lookups).toBe(1);
  } finally {
    await server.close();
  }
});

test('a bind password with CR, LF or NUL is refused before connecting', async () => {
  const server = await recordingServer((socket) => socket.end());
  try {
    const provider = createProvider('ldap', ldapSettings(`ldap://127.0.0.1:${server.port}`), 'pw\r\nSET k v\r\n', { destinations: testDestinations });
    const report = await provider.testConnection(AbortSignal.timeout(10_000));
    expect(report.ok).toBe(false);
    expect(report.checks[0]?.detail).toBe(`the bind password of ${bindDn} contains a carriage return, line feed or NUL character, which dirsync refuses; set it again without line breaks`);
    expect(JSON.stringify(report)).not.toContain('SET k v');
    expect(server.connections).toBe(0);
  } finally {
    await server.close();
  }
});
