import {
  type EntraEmulator,
  type SlapdServer,
  generatedUser,
  populateEntraTenant,
  slapdSettings,
  startEntraEmulator,
  startSlapd,
  testDestinations,
} from '@dirsync/testkit';
import {
  createEntraIdProvider,
  createProvider,
  encodeCertificateSecret,
  entraIdSettingsSchema,
  EntraTokenCache,
  generateCertificate,
  previewProvider,
  selectionFingerprint,
} from '../src/index.ts';
import { selectionFingerprintOf } from '../src/entra-id/fetch.ts';

// The attributes a mapping names are fetched from real directories (LDAP attribute lists, Graph
// `$select`) and come out mapped: a preview of each kind with a mapping that reads an attribute
// the default mapping does not. Samba AD: ad-mapping.test.ts (the run's shared DC serves ad-* files).

describe('OpenLDAP', () => {
  let slapd: SlapdServer;
  beforeAll(async () => {
    slapd = await startSlapd({ data: { users: 6, groups: 1, membersPerGroup: 2 } });
  });
  afterAll(async () => {
    await slapd.stop();
  });

  it('reads an attribute only the mapping names, and maps every value', async () => {
    const settings = slapdSettings(slapd, {
      attributeMapping: {
        user: { cn: { from: 'uid', transform: [{ op: 'regex', pattern: '(\\d+)$' }, { op: 'first' }] } },
        extra: { user: { classes: { from: 'objectClass', transform: [{ op: 'lower' }] } }, group: { classes: { from: 'objectClass', transform: [{ op: 'join', separator: ',' }] } } },
      },
    });
    const provider = createProvider('ldap', settings, slapd.readerPassword, { destinations: testDestinations });
    try {
      const preview = await previewProvider(provider, 20, AbortSignal.timeout(30_000));
      expect(preview.problems).toEqual([]);
      // Users first, then the group: every entry of this small directory.
      expect(preview.samples.map((s) => s.type)).toEqual([...Array(6).fill('user'), 'group']);
      for (const sample of preview.samples.filter((s) => s.type === 'user')) {
        const uid = sample.attributes['uid'] as string;
        expect(sample.attributes['cn']).toBe(String(Number(/(\d+)$/.exec(uid)?.[1])).padStart(7, '0'));
        const classes = (generatedUser(Number(/(\d+)$/.exec(uid)?.[1]))['objectClass'] as string[]).map((c) => c.toLowerCase());
        expect(sample.extra).toEqual({ classes });
      }
      expect(preview.samples[6]?.extra['classes']).toMatch(/groupOfNames/);
    } finally {
      await provider.close();
    }
  });
});

describe('Entra ID (emulated Graph)', () => {
  let emulator: EntraEmulator;
  beforeAll(async () => {
    emulator = await startEntraEmulator({ membersPerRecord: 4 });
  });
  afterAll(async () => {
    await emulator.close();
  });

  async function provider(attributeMapping: unknown) {
    const home = emulator.createTenant({ domain: `home${Math.floor(Math.random() * 1e9)}.onmicrosoft.com` });
    const certificate = await generateCertificate({ subject: 'dirsync mapping test', validityDays: 2 });
    const appId = emulator.registerApplication({ homeTenantId: home.tenantId, displayName: 'dirsync', certificates: [certificate.certificatePem] }).appId;
    const tenant = emulator.createTenant();
    emulator.grantConsent(tenant.tenantId, appId);
    populateEntraTenant(tenant, { users: 4, groups: 1, membersPerGroup: 2 });
    const settings = entraIdSettingsSchema.parse({
      tenantId: tenant.tenantId,
      connectorId: '3f1e2d3c-4b5a-4697-8877-665544332211',
      authorityHost: emulator.authorityHost,
      graphBaseUrl: emulator.graphBaseUrl,
      caPem: emulator.caPem,
      pageSize: 5,
      retry: { baseDelayMs: 10, maxDelayMs: 100, maxWaitMs: 10_000, maxAttempts: 2 },
      attributeMapping,
    });
    return {
      settings,
      provider: createEntraIdProvider(settings, encodeCertificateSecret({ clientId: appId, certificatePem: certificate.certificatePem, privateKeyPem: certificate.privateKeyPem }), {
        tokenCache: new EntraTokenCache(),
        destinations: testDestinations,
      }),
    };
  }

  it('maps Graph properties with overrides and extras', async () => {
    const { provider: p } = await provider({
      user: { mail: { from: 'userPrincipalName', transform: [{ op: 'lower' }, { op: 'first' }] } },
      extra: { user: { unit: { from: 'department', transform: [{ op: 'lower' }, { op: 'first' }] }, enabled: { from: 'accountEnabled' } } },
    });
    try {
      const preview = await previewProvider(p, 4, AbortSignal.timeout(30_000));
      expect(preview.problems).toEqual([]);
      expect(preview.samples).toHaveLength(4);
      for (const sample of preview.samples) {
        expect(sample.attributes['mail']).toBe(String(sample.attributes['userPrincipalName']).toLowerCase());
        expect(sample.extra).toEqual({ unit: String(sample.attributes['department']).toLowerCase(), enabled: String(sample.attributes['accountEnabled']) });
      }
    } finally {
      await p.close();
    }
  });

  it('asks Graph for a property only the mapping names ($select), which Graph refuses when it does not exist', async () => {
    const { provider: p, settings } = await provider({ extra: { user: { city: { from: 'city' } } } });
    expect(selectionFingerprintOf(settings)).not.toBe(selectionFingerprint);
    try {
      await expect(previewProvider(p, 2, AbortSignal.timeout(30_000))).rejects.toThrow(/city/);
    } finally {
      await p.close();
    }
  });
});
