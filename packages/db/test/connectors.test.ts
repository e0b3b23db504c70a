import { generateKeyPairSync } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { eq } from 'drizzle-orm';
import {
  acquireRotationLease,
  activateCredential,
  addPendingCredential,
  claimRotationSlot,
  close,
  completeConsent,
  connect,
  connectorCredentials,
  createAccount,
  createConnector,
  createConsentRequest,
  createIntegration,
  createKeyRing,
  generateSecretKey,
  getConsent,
  getIntegration,
  getLegacyMigrationDeadline,
  InvalidInputError,
  InvalidStateError,
  listActionsNeeded,
  listAudit,
  listConnectorCredentials,
  listLegacyEntraIntegrations,
  markConsentRevoked,
  markIntegrationRun,
  migrateLegacyIntegration,
  openPendingCredential,
  recordRotationOutcome,
  reflectConsentStatus,
  releaseRotationLease,
  releaseRotationSlot,
  setCursor,
  setLegacyMigrationDeadline,
  withCurrentCredential,
  withIntegrationSecret,
  type Connector,
  type Db,
  type NewCertificateCredential,
} from '../src/index.ts';

let database: TestDatabase;
let db: Db;
let accountId: string;
const ring = createKeyRing({ current: generateSecretKey() });
const tenant = '0a5c6d3e-1111-4222-8333-444455556666';

let serial = 0;
/** A certificate record: the repository stores PEM text as given and never parses it. */
function certificate(): NewCertificateCredential {
  serial += 1;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const hex = serial.toString(16).padStart(40, '0').toUpperCase();
  return {
    certificatePem: `-----BEGIN CERTIFICATE-----\nTEST${serial}\n-----END CERTIFICATE-----\n`,
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    thumbprint: hex,
    thumbprintSha256: hex.padEnd(64, '0'),
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 30 * 24 * 3600_000),
  };
}

let connectorCount = 0;
async function connector(overrides: Partial<Parameters<typeof createConnector>[2]> = {}): Promise<Connector> {
  connectorCount += 1;
  return createConnector(
    db,
    ring,
    {
      name: `connector ${connectorCount}`,
      description: 'directory sync for customers',
      clientId: `11111111-2222-4333-8444-${String(connectorCount).padStart(12, '0')}`,
      applicationObjectId: `99999999-2222-4333-8444-${String(connectorCount).padStart(12, '0')}`,
      homeTenantId: 'f0f0f0f0-2222-4333-8444-555555555555',
      redirectUri: 'https://dirsync.example/entra/consent',
      authorityHost: 'https://login.example',
      ...overrides,
    },
    certificate(),
  );
}

async function grant(connectorId: string, tenantId = tenant): Promise<void> {
  const request = await createConsentRequest(db, ring, { connectorId, tenantId });
  await completeConsent(db, ring, new URLSearchParams({ admin_consent: 'True', tenant: tenantId, state: request.state }));
}

beforeAll(async () => {
  database = await createTestDatabase('connectors');
  db = connect(database.url, { max: 3 });
  accountId = (await createAccount(db, { name: 'contoso' })).id;
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

describe('connectors', () => {
  it('requires a name and a description', async () => {
    await expect(connector({ name: '  ' })).rejects.toThrow(InvalidInputError);
    await expect(connector({ description: '' })).rejects.toThrow(/description must not be empty/);
  });

  it('stores the private key encrypted and gives it only to withCurrentCredential', async () => {
    const c = await connector();
    const [raw] = await db.select().from(connectorCredentials).where(eq(connectorCredentials.connectorId, c.id));
    expect(raw?.privateKeyCiphertext).toBeDefined();
    expect(raw?.privateKeyCiphertext).not.toContain('PRIVATE KEY');
    const history = await listConnectorCredentials(db, c.id);
    expect(history).toHaveLength(1);
    expect(history[0]).not.toHaveProperty('privateKeyCiphertext');
    expect(history[0]?.status).toBe('current');
    const pem = await withCurrentCredential(db, ring, c.id, async (credential) => credential.privateKeyPem);
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const otherRing = createKeyRing({ current: generateSecretKey() });
    await expect(withCurrentCredential(db, otherRing, c.id, async () => 'x')).rejects.toThrow(/not configured/);
  });

  it('refuses a second connector with the same name', async () => {
    const c = await connector();
    await expect(connector({ name: c.name })).rejects.toThrow(/already exists/);
  });

  it('keeps the current and the previous certificate and retires older ones on rotation', async () => {
    const c = await connector();
    const first = (await listConnectorCredentials(db, c.id))[0];
    const second = await addPendingCredential(db, ring, c.id, certificate(), null);
    expect((await openPendingCredential(db, ring, c.id))?.id).toBe(second.id);
    expect(await activateCredential(db, c.id, second.id)).toEqual([]);
    const third = await addPendingCredential(db, ring, c.id, certificate(), new Date('2030-01-01T03:00:00Z'));
    const retired = await activateCredential(db, c.id, third.id);
    expect(retired.map((r) => r.id)).toEqual([first?.id]);
    const byId = new Map((await listConnectorCredentials(db, c.id)).map((r) => [r.id, r.status]));
    expect(byId.get(third.id)).toBe('current');
    expect(byId.get(second.id)).toBe('previous');
    expect(byId.get(first?.id ?? '')).toBe('retired');
    await expect(activateCredential(db, c.id, third.id)).rejects.toThrow(InvalidStateError);
  });

  it('lets one rotation hold the lease and one scheduler claim a slot', async () => {
    const c = await connector();
    const leases = await Promise.all([1, 2, 3].map(() => acquireRotationLease(db, c.id, 60_000)));
    expect(leases.filter(Boolean)).toHaveLength(1);
    await releaseRotationLease(db, c.id);
    expect(await acquireRotationLease(db, c.id, 60_000)).toBe(true);
    await releaseRotationLease(db, c.id);

    const slot = new Date('2030-01-01T03:00:00Z');
    const claims = await Promise.all([1, 2, 3].map(() => claimRotationSlot(db, c.id, slot)));
    expect(claims.filter((x) => x !== undefined)).toEqual([{ previous: null }]);
    expect(await claimRotationSlot(db, c.id, new Date('2029-12-31T03:00:00Z'))).toBeUndefined();
    await releaseRotationSlot(db, c.id, slot, null);
    expect(await claimRotationSlot(db, c.id, slot)).toEqual({ previous: null });
  });
});

describe('consent', () => {
  it('builds the admin-consent URL with a signed single-use state and records the grant', async () => {
    const c = await connector();
    const request = await createConsentRequest(db, ring, { connectorId: c.id, tenantId: tenant });
    const url = new URL(request.url);
    expect(`${url.origin}${url.pathname}`).toBe(`https://login.example/${tenant}/adminconsent`);
    expect(url.searchParams.get('client_id')).toBe(c.clientId);
    expect(url.searchParams.get('redirect_uri')).toBe(c.redirectUri);
    expect(url.searchParams.get('state')).toBe(request.state);
    expect((await getConsent(db, c.id, tenant))?.status).toBe('pending');

    const redirect = new URLSearchParams({ admin_consent: 'True', tenant, state: request.state });
    const outcome = await completeConsent(db, ring, redirect);
    expect(outcome).toMatchObject({ connectorId: c.id, tenantId: tenant, status: 'granted' });
    expect((await getConsent(db, c.id, tenant))?.status).toBe('granted');
    await expect(completeConsent(db, ring, redirect)).rejects.toThrow(/already used/);
    const audit = await listAudit(db, { limit: 5 });
    expect(audit.some((e) => e.action === 'connector.consent.granted')).toBe(true);
  });

  it('refuses forged, altered and expired states', async () => {
    const c = await connector();
    const request = await createConsentRequest(db, ring, { connectorId: c.id, tenantId: tenant });
    const altered = `${request.state.slice(0, -4)}AAAA`;
    await expect(completeConsent(db, ring, new URLSearchParams({ admin_consent: 'True', state: altered }))).rejects.toThrow(/not one this installation issued/);
    await expect(completeConsent(db, ring, new URLSearchParams({ admin_consent: 'True', state: 'abc.def' }))).rejects.toThrow(InvalidInputError);
    const expired = await createConsentRequest(db, ring, { connectorId: c.id, tenantId: tenant, ttlMs: -1 });
    await expect(completeConsent(db, ring, new URLSearchParams({ admin_consent: 'True', state: expired.state }))).rejects.toThrow(/expired/);
  });

  it('records a refusal with the error and its description', async () => {
    const c = await connector();
    const request = await createConsentRequest(db, ring, { connectorId: c.id, tenantId: 'contoso.onmicrosoft.com' });
    const outcome = await completeConsent(
      db,
      ring,
      new URLSearchParams({ error: 'access_denied', error_description: 'AADSTS65004: User declined to consent', state: request.state }),
    );
    expect(outcome.status).toBe('denied');
    expect(await getConsent(db, c.id, 'Contoso.onmicrosoft.com')).toMatchObject({ status: 'denied', error: 'access_denied', errorDescription: 'AADSTS65004: User declined to consent' });
  });

  it('marks the tenant\'s integrations as needing consent when it is revoked', async () => {
    const c = await connector();
    await grant(c.id);
    const integration = await createIntegration(db, { accountId, kind: 'entra_id', name: `entra ${c.id}`, settings: { tenantId: tenant, connectorId: c.id } });
    expect(await reflectConsentStatus(db, integration.id)).toBe(false);
    expect(await markConsentRevoked(db, c.id, tenant, 'AADSTS700016: not found in the directory')).toBe(1);
    expect((await getIntegration(db, integration.id))?.status).toBe('needs_consent');
    expect((await getConsent(db, c.id, tenant))?.status).toBe('revoked');
    // A failed run writes its own status; reflecting the consent puts the cause back.
    await markIntegrationRun(db, integration.id, { status: 'failed', lastRunId: integration.id });
    expect(await reflectConsentStatus(db, integration.id)).toBe(true);
    expect((await getIntegration(db, integration.id))?.status).toBe('needs_consent');
    // Consent granted again: the integration may sync.
    await grant(c.id);
    expect((await getIntegration(db, integration.id))?.status).toBe('new');
  });
});

describe('legacy integrations', () => {
  async function legacy(name: string) {
    const integration = await createIntegration(
      db,
      { accountId, kind: 'entra_id', name, settings: { tenantId: tenant, legacyApp: { clientId: '77777777-2222-4333-8444-555555555555' }, pageSize: 500 } },
      { ring, plaintext: 'legacy-client-secret-value' },
    );
    await setCursor(db, integration.id, { kind: 'entra_id', users: 'x', groups: 'y' });
    return integration;
  }

  it('lists them, migrates after consent with the name carried over, and asks for a description', async () => {
    const c = await connector();
    const integration = await legacy('Head office Azure');
    expect((await listLegacyEntraIntegrations(db)).map((i) => i.id)).toContain(integration.id);

    await expect(migrateLegacyIntegration(db, { integrationId: integration.id, connectorId: c.id, description: '   ', actor: 'test' })).rejects.toThrow(
      /description is required/,
    );
    await expect(migrateLegacyIntegration(db, { integrationId: integration.id, connectorId: c.id, description: 'Staff', actor: 'test' })).rejects.toThrow(
      /has not granted consent/,
    );
    await grant(c.id);
    const result = await migrateLegacyIntegration(db, { integrationId: integration.id, connectorId: c.name, description: 'Staff directory', actor: 'test' });
    expect(result).toMatchObject({ name: 'Head office Azure', connectorId: c.id, legacyClientId: '77777777-2222-4333-8444-555555555555' });
    const after = await getIntegration(db, integration.id);
    expect(after?.name).toBe('Head office Azure');
    expect(after?.description).toBe('Staff directory');
    expect(after?.cursor).toBeNull();
    expect(after?.hasSecret).toBe(false);
    expect(after?.settings).toMatchObject({ tenantId: tenant, connectorId: c.id, pageSize: 500 });
    expect(after?.settings).not.toHaveProperty('legacyApp');
    expect(await withIntegrationSecret(db, ring, integration.id, async (secret) => secret)).toBeUndefined();
    expect((await listLegacyEntraIntegrations(db)).map((i) => i.id)).not.toContain(integration.id);
    await expect(migrateLegacyIntegration(db, { integrationId: integration.id, connectorId: c.id, description: 'x', actor: 'test' })).rejects.toThrow(
      /not a legacy/,
    );
  });

  it('keeps the deadline and lists what administrators must do', async () => {
    expect(await getLegacyMigrationDeadline(db)).toBeNull();
    const deadline = new Date('2024-08-18T00:00:00Z');
    await setLegacyMigrationDeadline(db, deadline);
    expect(await getLegacyMigrationDeadline(db)).toEqual(deadline);

    const overdue = await legacy('Branch Azure');
    const c = await connector();
    const waiting = await createIntegration(db, { accountId, kind: 'entra_id', name: 'Waiting for consent', settings: { tenantId: 'fabrikam.onmicrosoft.com', connectorId: c.id } });
    await recordRotationOutcome(db, c.id, { status: 'failed', error: 'addKey answered 500' });

    const actions = await listActionsNeeded(db, new Date('2024-09-01T00:00:00Z'));
    expect(actions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'migrate_legacy_integration', integrationId: overdue.id, deadline, overdue: true }),
        expect.objectContaining({ kind: 'grant_consent', integrationId: waiting.id, consentStatus: 'none' }),
        expect.objectContaining({ kind: 'rotation_failed', connectorId: c.id, error: 'addKey answered 500' }),
      ]),
    );
    expect((await listActionsNeeded(db, new Date('2024-01-01T00:00:00Z'))).find((a) => a.kind === 'migrate_legacy_integration' && a.integrationId === overdue.id)).toMatchObject({ overdue: false });

    await recordRotationOutcome(db, c.id, { status: 'succeeded', slot: new Date() });
    expect((await listActionsNeeded(db)).some((a) => a.kind === 'rotation_failed' && a.connectorId === c.id)).toBe(false);
    await setLegacyMigrationDeadline(db, null);
    expect(await getLegacyMigrationDeadline(db)).toBeNull();
  });

  it('reminds to delete the old app registration after a migration', async () => {
    const c = await connector();
    await grant(c.id);
    const integration = await legacy('Reminder Azure');
    await migrateLegacyIntegration(db, { integrationId: integration.id, connectorId: c.id, description: 'Staff', actor: 'test' });
    const reminder = (await listActionsNeeded(db)).find((a) => a.kind === 'delete_old_app_registration' && a.integrationId === integration.id);
    expect(reminder).toMatchObject({ legacyClientId: '77777777-2222-4333-8444-555555555555', tenantId: tenant });
    const later = await listActionsNeeded(db, new Date(Date.now() + 31 * 24 * 3600_000));
    expect(later.some((a) => a.kind === 'delete_old_app_registration' && a.integrationId === integration.id)).toBe(false);
  });
});
