import {
  type AddressCategory,
  DestinationPolicy,
  DestinationRefusedError,
  type ResolvedAddress,
  addressCategory,
  parseCidr,
  parseCidrList,
  platformEndpointsOf,
} from './destination.ts';
import { refuseUnsafeSecret, unsafeSecretProblem } from './secrets.ts';

const target = (host: string, port = 389) => ({ host, port, label: `ldap://${host.includes(':') ? `[${host}]` : host}:${port}` });

async function refusalOf(policy: DestinationPolicy, host: string, port = 389): Promise<DestinationRefusedError | undefined> {
  try {
    await policy.check(target(host, port));
    return undefined;
  } catch (error) {
    if (error instanceof DestinationRefusedError) return error;
    throw error;
  }
}

describe('address categories', () => {
  test.each<[string, AddressCategory | undefined]>([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['169.254.169.254', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf:ffff::1', 'link-local'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.254', 'private'],
    ['192.168.1.1', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.254', 'shared'],
    ['240.0.0.1', 'reserved'],
    ['2001:db8::1', 'reserved'],
    // Just outside the ranges.
    ['172.15.255.255', undefined],
    ['172.32.0.0', undefined],
    ['100.63.255.255', undefined],
    ['100.128.0.0', undefined],
    ['169.253.255.255', undefined],
    ['8.8.8.8', undefined],
    ['2606:4700:4700::1111', undefined],
    ['fec0::1', 'private'],
  ])('%s is %s', (address, category) => {
    expect(addressCategory(address)).toBe(category);
  });

  test.each<[string, AddressCategory]>([
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:0.0.0.0', 'unspecified'],
    ['::ffff:224.0.0.1', 'multicast'],
    ['::127.0.0.1', 'loopback'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['::ffff:0:7f00:1', 'loopback'],
    ['::ffff:0:a9fe:a9fe', 'metadata'],
    ['64:ff9b:1::7f00:1', 'reserved'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['2002:7f00:1::1', 'loopback'],
    ['2002:a00:1::', 'private'],
  ])('IPv6 carrying IPv4: %s is %s', (address, category) => {
    expect(addressCategory(address)).toBe(category);
  });

  test('a public IPv4 inside a mapped address stays public', () => {
    expect(addressCategory('::ffff:8.8.8.8')).toBeUndefined();
  });
});

describe('CIDR parsing', () => {
  test.each([
    ['10.0.0.0/8', '10.0.0.0/8'],
    [' 192.168.10.0/24 ', '192.168.10.0/24'],
    ['10.1.2.3', '10.1.2.3/32'],
    ['fd12:3456:789a::/48', 'fd12:3456:789a::/48'],
    ['::1', '::1/128'],
    ['FD00::/8', 'fd00::/8'],
  ])('%s parses as %s', (text, canonical) => {
    expect(parseCidr(text).text).toBe(canonical);
  });

  test.each([
    ['10.0.0.0/33', /prefix length outside 0–32/],
    ['fd00::/129', /prefix length outside 0–128/],
    ['10.0.0.0/', /prefix length/],
    ['10.0.0.0/-1', /prefix length/],
    ['10.1.0.0/8', /host bits set; did you mean 10\.0\.0\.0\/8\?/],
    ['fd00::1/8', /host bits set; did you mean fd00::\/8\?/],
    ['0.0.0.0/0', /would allow every address/],
    ['::/0', /would allow every address/],
    ['10.0.0.256/32', /not a network in CIDR notation/],
    ['vpn.example.com/24', /not a network/],
    ['fe80::1%eth0/64', /not a network/],
    ['', /not a network/],
  ])('%s is refused', (text, message) => {
    expect(() => parseCidr(text)).toThrow(message);
  });

  test('a list reports every bad entry at once and ignores empty ones', () => {
    expect(parseCidrList('')).toEqual({ ok: true, networks: [] });
    const good = parseCidrList('10.0.0.0/8, fd00::/8,,');
    expect(good.ok && good.networks.map((n) => n.text)).toEqual(['10.0.0.0/8', 'fd00::/8']);
    const bad = parseCidrList('10.0.0.0/8,10.1.0.0/8,nonsense');
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.problems).toEqual([expect.stringMatching(/10\.1\.0\.0\/8.*host bits/), expect.stringMatching(/"nonsense" is not a network/)]);
  });
});

describe('the strict policy', () => {
  const strict = DestinationPolicy.strict();

  test.each([
    ['127.0.0.1', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['169.254.169.254', 'metadata'],
    ['fe80::1', 'link-local'],
    ['10.0.0.5', 'private'],
    ['172.20.1.1', 'private'],
    ['192.168.0.10', 'private'],
    ['fd00::5', 'private'],
    ['100.64.1.1', 'shared'],
    ['224.0.0.251', 'multicast'],
  ])('refuses %s (%s)', async (host, category) => {
    const refusal = await refusalOf(strict, host);
    expect(refusal).toBeInstanceOf(DestinationRefusedError);
    expect(refusal?.category).toBe(category);
    expect(refusal?.retryable).toBe(false);
    expect(refusal?.code).toBe('config');
  });

  test('says what was refused and how the platform allows a network', async () => {
    const refusal = await refusalOf(strict, '127.0.0.1', 6379);
    expect(refusal?.message).toBe(
      'ldap://127.0.0.1:6379 resolves to 127.0.0.1, a loopback address, which this installation does not allow; the platform can allow a network for directories reached over a VPN or private link with DIRSYNC_ALLOWED_NETWORKS (comma-separated CIDRs)',
    );
  });

  test('allows public addresses', async () => {
    const checked = await strict.check(target('192.0.3.1'));
    expect(checked.addresses).toEqual([{ address: '192.0.3.1', family: 4 }]);
    await expect(strict.check(target('2606:4700:4700::1111'))).resolves.toMatchObject({ addresses: [{ family: 6 }] });
  });
});

describe('allowed networks and platform endpoints', () => {
  const platform = platformEndpointsOf({ redisUrl: 'redis://127.0.0.1:6379', databaseUrl: 'postgres://dirsync@127.0.0.1:5432/dirsync' });
  const policy = new DestinationPolicy({ allowedNetworks: ['127.0.0.0/8', '10.20.0.0/16'], platformEndpoints: platform, localAddresses: ['127.0.0.1', '10.20.0.7'] });

  test('an allowed network lets its addresses through, and only those', async () => {
    expect(await refusalOf(policy, '127.0.0.1', 389)).toBeUndefined();
    expect(await refusalOf(policy, '10.20.3.4', 636)).toBeUndefined();
    expect(await refusalOf(policy, '::ffff:10.20.3.4', 636)).toBeUndefined();
    expect((await refusalOf(policy, '10.21.0.1', 636))?.category).toBe('private');
    expect((await refusalOf(policy, '::1', 389))?.category).toBe('loopback');
  });

  test("the platform's own endpoints are refused inside an allowed network, in every form", async () => {
    for (const [host, port, service] of [
      ['127.0.0.1', 6379, 'Redis'],
      ['127.0.0.1', 5432, 'PostgreSQL'],
      // A service on loopback may listen on every local address.
      ['127.0.0.2', 6379, 'Redis'],
      ['::ffff:127.0.0.1', 6379, 'Redis'],
      ['10.20.0.7', 5432, 'PostgreSQL'],
    ] as const) {
      const refusal = await refusalOf(policy, host, port);
      expect(refusal?.category).toBe('platform');
      expect(refusal?.message).toContain(`the platform's own ${service}, which no integration may reach (not even inside DIRSYNC_ALLOWED_NETWORKS)`);
    }
    // Another port of the same machine is not the platform's.
    expect(await refusalOf(policy, '127.0.0.1', 6380)).toBeUndefined();
    expect(await refusalOf(policy, '10.20.0.8', 5432)).toBeUndefined();
  });

  test('metadata, unspecified and multicast addresses stay refused even when listed', async () => {
    const generous = new DestinationPolicy({ allowedNetworks: ['169.254.0.0/16', '0.0.0.0/8', '224.0.0.0/4'] });
    expect((await refusalOf(generous, '169.254.169.254', 80))?.message).toMatch(/never a valid destination/);
    expect((await refusalOf(generous, '0.0.0.0'))?.category).toBe('unspecified');
    expect((await refusalOf(generous, '224.0.0.1'))?.category).toBe('multicast');
    expect(await refusalOf(generous, '169.254.10.10')).toBeUndefined();
  });

  test('platform endpoints named by host are resolved, several hosts of one URL included', async () => {
    expect(platformEndpointsOf({ databaseUrl: 'postgres://u:p@db1:5433,[fd00::9]:5434/x', redisUrl: 'rediss://:pw@cache.internal' })).toEqual([
      { host: 'cache.internal', port: 6379, name: 'Redis' },
      { host: 'db1', port: 5433, name: 'PostgreSQL' },
      { host: 'fd00::9', port: 5434, name: 'PostgreSQL' },
    ]);
    // A Redis Cluster's seed list: every seed is the platform's.
    expect(platformEndpointsOf({ redisUrl: 'redis://:pw@node-a:7000, rediss://node-b:7001,redis://[fd00::7]' })).toEqual([
      { host: 'node-a', port: 7000, name: 'Redis' },
      { host: 'node-b', port: 7001, name: 'Redis' },
      { host: 'fd00::7', port: 6379, name: 'Redis' },
    ]);
    const resolve = async (host: string): Promise<ResolvedAddress[]> =>
      host === 'cache.internal' ? [{ address: '10.20.9.9', family: 4 }] : [{ address: '10.20.1.1', family: 4 }];
    const named = new DestinationPolicy({
      allowedNetworks: ['10.20.0.0/16'],
      platformEndpoints: [{ host: 'cache.internal', port: 6379, name: 'Redis' }],
      resolve,
      localAddresses: [],
    });
    expect((await refusalOf(named, '10.20.9.9', 6379))?.category).toBe('platform');
    expect((await refusalOf(named, 'directory.example', 6379))).toBeUndefined();
  });
});

describe('host names', () => {
  test('a name with one forbidden address among several is refused', async () => {
    const policy = new DestinationPolicy({
      resolve: async () => [
        { address: '198.51.99.10', family: 4 },
        { address: '192.0.3.7', family: 4 },
        { address: '169.254.169.254', family: 4 },
      ],
    });
    const refusal = await refusalOf(policy, 'dc.customer.example');
    expect(refusal?.category).toBe('metadata');
    expect(refusal?.message).toMatch(/^ldap:\/\/dc\.customer\.example:389 resolves to 169\.254\.169\.254, /);
  });

  test('a name is resolved once; the connection lookup answers only the checked addresses', async () => {
    let calls = 0;
    const policy = new DestinationPolicy({
      resolve: async () => {
        calls += 1;
        // A rebinding server: public the first time, loopback after.
        return calls === 1 ? [{ address: '192.0.3.7', family: 4 }, { address: '2606:4700::6', family: 6 }] : [{ address: '127.0.0.1', family: 4 }];
      },
    });
    const checked = await policy.check(target('rebind.example'));
    const all = await new Promise((resolve, reject) =>
      checked.lookup('rebind.example', { all: true }, ((error: Error | null, addresses: unknown) => (error ? reject(error) : resolve(addresses))) as never),
    );
    expect(all).toEqual([{ address: '192.0.3.7', family: 4 }, { address: '2606:4700::6', family: 6 }]);
    const v6 = await new Promise((resolve, reject) =>
      checked.lookup('rebind.example', { family: 6 }, (error, address) => (error ? reject(error) : resolve(address))),
    );
    expect(v6).toBe('2606:4700::6');
    expect(calls).toBe(1);
  });

  test('address literals are checked without resolving', async () => {
    let calls = 0;
    const policy = new DestinationPolicy({
      resolve: async () => {
        calls += 1;
        return [];
      },
    });
    expect((await refusalOf(policy, '[::ffff:169.254.169.254]'))?.category).toBe('metadata');
    expect(calls).toBe(0);
  });
});

describe('secrets sent to directories', () => {
  test.each(['pw\r\nSET k v\r\n', 'line\nbreak', 'carriage\rreturn', 'nul\u0000byte'])('%j is refused without being repeated', (secret) => {
    const problem = unsafeSecretProblem(secret, 'the bind password');
    expect(problem).toBe('the bind password contains a carriage return, line feed or NUL character, which dirsync refuses; set it again without line breaks');
    expect(() => refuseUnsafeSecret(secret)).toThrow(/carriage return, line feed or NUL/);
  });

  test('other characters are fine', () => {
    expect(unsafeSecretProblem('Pa$$ w0rd\t!é€')).toBeUndefined();
  });
});
