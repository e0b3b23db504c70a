import { ConfigError } from '../errors.ts';
import { validateSettings } from '../index.ts';
import { entraCloud, entraClouds, entraIdSettingsSchema, isKnownAuthorityHost } from './config.ts';

const tenant = '0a5c6d3e-1111-4222-8333-444455556666';
const connectorId = '3f1e2d3c-4b5a-4697-8877-665544332211';

function problems(settings: unknown): readonly string[] {
  const result = validateSettings('entra_id', settings);
  return result.ok ? [] : result.problems;
}

describe('Entra ID settings', () => {
  it('fills defaults: the public cloud, large pages, patient throttling', () => {
    expect(entraIdSettingsSchema.parse({ tenantId: tenant, connectorId })).toEqual({
      tenantId: tenant,
      connectorId,
      authorityHost: 'https://login.microsoftonline.com',
      graphBaseUrl: 'https://graph.microsoft.com',
      pageSize: 999,
      retry: { baseDelayMs: 1000, maxDelayMs: 60_000, maxWaitMs: 1_800_000, maxAttempts: 6 },
      requestTimeoutMs: 120_000,
    });
  });

  it('accepts a tenant domain and a legacy app, and trims trailing slashes of hosts', () => {
    const settings = entraIdSettingsSchema.parse({
      tenantId: 'contoso.onmicrosoft.com',
      legacyApp: { clientId: '77777777-2222-4333-8444-555555555555' },
      graphBaseUrl: 'https://graph.microsoft.us/',
    });
    expect(settings.graphBaseUrl).toBe('https://graph.microsoft.us');
  });

  it.each([
    ['neither connector nor legacy app', { tenantId: tenant }, /^connectorId: name exactly one of connectorId/],
    ['both', { tenantId: tenant, connectorId, legacyApp: { clientId: '77777777-2222-4333-8444-555555555555' } }, /^connectorId: name exactly one/],
    ['a tenant that is neither GUID nor domain', { tenantId: 'not a tenant', connectorId }, /^tenantId: tenantId must be the tenant GUID or its domain/],
    ['a plain-HTTP authority', { tenantId: tenant, connectorId, authorityHost: 'http://login.example' }, /^authorityHost: authorityHost must be an https:\/\/ URL/],
    ['a Graph URL with a query', { tenantId: tenant, connectorId, graphBaseUrl: 'https://graph.example/?x=1' }, /^graphBaseUrl: .*query/],
    ['a legacy client id that is not a GUID', { tenantId: tenant, legacyApp: { clientId: 'app' } }, /^legacyApp\.clientId: .*GUID/],
    ['a CA that is not PEM', { tenantId: tenant, connectorId, caPem: 'hello' }, /^caPem: .*PEM/],
    ['a page size above Graph\'s limit', { tenantId: tenant, connectorId, pageSize: 1000 }, /^pageSize: pageSize must be at most 999/],
    ['an unknown key (a secret, say)', { tenantId: tenant, connectorId, clientSecret: 'x' }, /unknown setting "clientSecret"/],
  ])('reports %s', (_name, settings, message) => {
    expect(problems(settings)).toEqual(expect.arrayContaining([expect.stringMatching(message)]));
  });
});

describe('Entra clouds', () => {
  it('names the global, US Government and China clouds with their token and Graph hosts', () => {
    expect(entraClouds).toEqual({
      global: { authorityHost: 'https://login.microsoftonline.com', graphBaseUrl: 'https://graph.microsoft.com' },
      usgov: { authorityHost: 'https://login.microsoftonline.us', graphBaseUrl: 'https://graph.microsoft.us' },
      china: { authorityHost: 'https://login.chinacloudapi.cn', graphBaseUrl: 'https://microsoftgraph.chinacloudapi.cn' },
    });
    expect(entraCloud('usgov')).toBe(entraClouds.usgov);
    // Every cloud's hosts pass the settings' own URL checks unchanged.
    for (const cloud of Object.values(entraClouds)) {
      const settings = entraIdSettingsSchema.parse({ tenantId: tenant, connectorId, ...cloud });
      expect([settings.authorityHost, settings.graphBaseUrl]).toEqual([cloud.authorityHost, cloud.graphBaseUrl]);
    }
  });

  it('refuses an unknown cloud name, including inherited property names', () => {
    expect(() => entraCloud('germany')).toThrow(ConfigError);
    expect(() => entraCloud('toString')).toThrow('unknown Entra cloud "toString": use one of global, usgov, china');
  });

  it('knows only the three authority hosts (instance discovery is asked of them alone)', () => {
    expect(Object.values(entraClouds).every((c) => isKnownAuthorityHost(c.authorityHost))).toBe(true);
    expect(isKnownAuthorityHost('https://login.partner.microsoftonline.cn')).toBe(false);
    expect(isKnownAuthorityHost('https://127.0.0.1:8443')).toBe(false);
    expect(isKnownAuthorityHost('https://login.microsoftonline.com/')).toBe(false);
  });
});
