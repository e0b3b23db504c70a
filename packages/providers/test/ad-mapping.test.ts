import { type SharedSamba, sharedSamba, testDestinations } from '@dirsync/testkit';
import { createProvider, previewProvider } from '../src/index.ts';

// The attributes an Active Directory mapping names are read from the run's Samba DC and mapped.

describe('Samba Active Directory', () => {
  let dc: SharedSamba;
  beforeAll(async () => {
    dc = await sharedSamba();
  });
  afterAll(async () => {
    await dc?.release();
  });

  it('reads an attribute only the mapping names (objectCategory), its DN value plain for users (read with extended DNs) and groups alike', async () => {
    const settings = {
      url: dc.ldapsUrl,
      bindDn: dc.reader.dn,
      tls: { caPem: dc.caPem, serverName: dc.dnsHostName },
      baseDns: [dc.seed.ouDn],
      objectTypes: ['user', 'group'],
      attributeMapping: {
        user: { displayName: { from: 'sAMAccountName', transform: [{ op: 'lower' }, { op: 'first' }] } },
        extra: {
          user: {
            category: { from: 'objectCategory', transform: [{ op: 'regex', pattern: '^CN=([^,]+)', ignoreCase: true }, { op: 'first' }] },
            boss: { from: 'manager', transform: [{ op: 'regex', pattern: '^CN=([^,]+)' }, { op: 'first' }] },
          },
          group: { category: { from: 'objectCategory', transform: [{ op: 'regex', pattern: '^CN=([^,]+)', ignoreCase: true }, { op: 'first' }] } },
        },
      },
    };
    const provider = createProvider('active_directory', settings, dc.reader.password, { destinations: testDestinations });
    try {
      const preview = await previewProvider(provider, 20, AbortSignal.timeout(60_000));
      expect(preview.problems).toEqual([]);
      expect(preview.samples.some((sample) => sample.attributes['manager'] !== undefined)).toBe(true);
      for (const sample of preview.samples) {
        const boss = sample.attributes['manager'] === undefined ? {} : { boss: expect.stringMatching(/^Seed User \d+$/) };
        expect(sample.extra).toEqual(sample.type === 'user' ? { category: 'Person', ...boss } : { category: 'Group' });
        if (sample.type === 'user') expect(sample.attributes['displayName']).toBe(String(sample.attributes['sAMAccountName']).toLowerCase());
      }
    } finally {
      await provider.close();
    }
  });
});
