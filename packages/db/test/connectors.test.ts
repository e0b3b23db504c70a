import { generateKeyPairSync } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { eq } from 'drizzle-orm';
import {
  acquireRotationLease,
  activateCredential,
  clearConsentRefusals,
  consentErrorAnswer,
  expireConsentRequests,
  markCredentialAbandoned,
  recordConsentRefusal,
  withCurrentAndPreviousCredentials,
  addPendingCredential,
  claimRotationSlot,
  displayText,
  acceptConsentRedirect,
  close,
  confirmConsent,
  connect,
  consentSignInInFlight,
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
  hasGrantedConsent,
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
  recordConsentVerification,
  takeConsentSignIn,
  reflectConsentStatus,
  releaseRotationLease,
  releaseRotationSlot,
  revokeConsent,
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

const roles = ['GroupMember.Read.All', 'User.Read.All'];

const admin = { objectId: '0b6f4b33-5b7e-4f36-9d0b-7c1a0c4c2f11', tenantGuid: tenant };

/** Answers a request's consent page and its sign-in (with a code); returns the sign-in's redirect. */
async function answer(state: string, code = 'code-1') {
  const consented = await acceptConsentRedirect(db, ring, new URLSearchParams({ admin_consent: 'True', state }));
  if (consented.kind !== 'sign_in') throw new Error('expected a sign-in');
  const signIn = new URL(consented.url);
  const redirect = await acceptConsentRedirect(db, ring, new URLSearchParams({ code, state: signIn.searchParams.get('state') ?? '' }));
  if (redirect.kind !== 'verify') throw new Error('expected a verification');
  return redirect;
}

/** The whole consent flow for `account`: URL, consent page, sign-in, and what a worker would have found. */
async function grant(connectorId: string, tenantId = tenant, account = accountId) {
  const request = await createConsentRequest(db, ring, { accountId: account, connectorId, tenantId });
  const redirect = await answer(request.state);
  return recordConsentVerification(db, redirect.request.nonce, { ok: true, tenantGuid: tenant, roles, admin });
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
    // The previous certificate comes with the current one (the fallback while a new key propagates).
    const pair = await withCurrentAndPreviousCredentials(db, ring, c.id, async (current, previous) => [current.id, previous?.id, previous?.privateKeyPem.startsWith('-----BEGIN PRIVATE KEY-----')]);
    expect(pair).toEqual([third.id, second.id, true]);
    // A retired one whose key id is unknown can be given up, never a current one.
    await markCredentialAbandoned(db, first?.id ?? '');
    await markCredentialAbandoned(db, third.id);
    const after = new Map((await listConnectorCredentials(db, c.id)).map((r) => [r.id, r.status]));
    expect([after.get(first?.id ?? ''), after.get(third.id)]).toEqual(['abandoned', 'current']);
  });

  it('keeps the key id of a hand-registered first certificate, and asks tenants for the read permissions only', async () => {
    const c = await connector({ graphKeyId: 'A1B2C3D4-0000-4000-8000-000000000001' });
    expect((await listConnectorCredentials(db, c.id))[0]?.graphKeyId).toBe('a1b2c3d4-0000-4000-8000-000000000001');
    expect(c.permissions).toEqual(['User.Read.All', 'GroupMember.Read.All']);
    // Hand-written hosts are no named cloud; the default hosts are the global cloud's.
    expect(c.cloud).toBe('custom');
    const global = await createConnector(
      db,
      ring,
      { name: `global ${c.id}`, description: 'global', clientId: '11111111-2222-4333-8444-999999999999', applicationObjectId: c.applicationObjectId, homeTenantId: c.homeTenantId, redirectUri: c.redirectUri },
      certificate(),
    );
    expect(global).toMatchObject({ cloud: 'global', authorityHost: 'https://login.microsoftonline.com', graphBaseUrl: 'https://graph.microsoft.com' });
    expect((await connector({ cloud: 'usgov', authorityHost: 'https://login.microsoftonline.us', graphBaseUrl: 'https://graph.microsoft.us' })).cloud).toBe('usgov');
    expect(await withCurrentAndPreviousCredentials(db, ring, c.id, async (_current, previous) => previous)).toBeUndefined();
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
  it('builds the admin-consent URL with a signed single-use state and grants only after the token check', async () => {
    const c = await connector();
    const request = await createConsentRequest(db, ring, { accountId, connectorId: c.id, tenantId: tenant });
    const url = new URL(request.url);
    expect(`${url.origin}${url.pathname}`).toBe(`https://login.example/${tenant}/v2.0/adminconsent`);
    expect(url.searchParams.get('client_id')).toBe(c.clientId);
    // Required on the v2.0 endpoint (v2-admin-consent.md): the static permissions of the connector's Graph.
    expect(url.searchParams.get('scope')).toBe('https://graph.microsoft.com/.default');
    expect(url.searchParams.get('redirect_uri')).toBe(c.redirectUri);
    expect(url.searchParams.get('state')).toBe(request.state);
    expect((await getConsent(db, accountId, c.id, tenant))?.status).toBe('pending');

    const query = new URLSearchParams({ admin_consent: 'True', tenant, state: request.state });
    const consented = await acceptConsentRedirect(db, ring, query);
    if (consented.kind !== 'sign_in') throw new Error('expected a sign-in');
    expect(consented.request).toMatchObject({ accountId, connectorId: c.id, tenantId: tenant });
    // admin_consent=True only sends the administrator on to sign in, with a second state.
    const signIn = new URL(consented.url);
    expect(`${signIn.origin}${signIn.pathname}`).toBe(`https://login.example/${tenant}/oauth2/v2.0/authorize`);
    expect(Object.fromEntries(signIn.searchParams)).toMatchObject({ client_id: c.clientId, response_type: 'code', redirect_uri: c.redirectUri, scope: 'openid profile' });
    const secondState = signIn.searchParams.get('state') ?? '';
    const signInNonce = signIn.searchParams.get('nonce') ?? '';
    expect(secondState).not.toBe(request.state);
    expect(signInNonce.length).toBeGreaterThanOrEqual(32);
    expect((await getConsent(db, accountId, c.id, tenant))?.status).toBe('pending');
    await expect(acceptConsentRedirect(db, ring, query)).rejects.toThrow(/already used/);
    // The consent page's state cannot stand in for the sign-in's, nor the reverse.
    const signedIn = new URLSearchParams({ code: 'the-code', state: secondState });
    const redirect = await acceptConsentRedirect(db, ring, signedIn);
    expect(redirect).toMatchObject({ kind: 'verify', request: { accountId, connectorId: c.id, tenantId: tenant } });
    await expect(acceptConsentRedirect(db, ring, signedIn)).rejects.toThrow(/already used/);
    await expect(acceptConsentRedirect(db, ring, new URLSearchParams({ admin_consent: 'True', state: secondState }))).rejects.toThrow(/already used/);
    // The code is sealed in the request and taken out once.
    const [stored] = await db.$client`select code_ciphertext from entra_consent_states where nonce = ${redirect.request.nonce}`;
    expect(String(stored?.['code_ciphertext'])).not.toContain('the-code');
    expect(await consentSignInInFlight(db, redirect.request.nonce)).toBe(false);
    expect(await takeConsentSignIn(db, ring, redirect.request.nonce)).toEqual({ code: 'the-code', nonce: signInNonce });
    expect(await takeConsentSignIn(db, ring, redirect.request.nonce)).toBeUndefined();
    // Taken and not yet recorded: a second verification must leave the outcome to the first.
    expect(await consentSignInInFlight(db, redirect.request.nonce)).toBe(true);

    const outcome = await recordConsentVerification(db, redirect.request.nonce, { ok: true, tenantGuid: tenant.toUpperCase(), roles: [...roles, 'Application.ReadWrite.OwnedBy'], admin });
    expect(outcome).toMatchObject({ accountId, connectorId: c.id, tenantId: tenant, outcome: 'granted', tenantGuid: tenant });
    expect(await consentSignInInFlight(db, redirect.request.nonce)).toBe(false);
    expect(await getConsent(db, accountId, c.id, tenant)).toMatchObject({ status: 'granted', tenantGuid: tenant, roles: ['Application.ReadWrite.OwnedBy', ...roles] });
    // A worker answering late changes nothing: the first result stays.
    expect((await recordConsentVerification(db, redirect.request.nonce, { ok: false, outcome: 'failed', detail: 'late' })).outcome).toBe('granted');
    expect((await getConsent(db, accountId, c.id, tenant))?.status).toBe('granted');
    const audit = await listAudit(db, { limit: 5 });
    expect(audit.some((e) => e.action === 'connector.consent.granted' && e.accountId === accountId)).toBe(true);
  });

  it('refuses forged, altered and expired states', async () => {
    const c = await connector();
    const request = await createConsentRequest(db, ring, { accountId, connectorId: c.id, tenantId: tenant });
    const altered = `${request.state.slice(0, -4)}AAAA`;
    await expect(acceptConsentRedirect(db, ring, new URLSearchParams({ admin_consent: 'True', state: altered }))).rejects.toThrow(/not one this installation issued/);
    await expect(acceptConsentRedirect(db, ring, new URLSearchParams({ admin_consent: 'True', state: 'abc.def' }))).rejects.toThrow(InvalidInputError);
    const expired = await createConsentRequest(db, ring, { accountId, connectorId: c.id, tenantId: tenant, ttlMs: -1 });
    await expect(acceptConsentRedirect(db, ring, new URLSearchParams({ admin_consent: 'True', state: expired.state }))).rejects.toThrow(/expired/);
    await expect(createConsentRequest(db, ring, { accountId, connectorId: c.id, tenantId: 'bad tenant/../x' })).rejects.toThrow(InvalidInputError);
  });

  it('records a refusal sanitised and capped, and a refusal never takes a grant away', async () => {
    const c = await connector();
    const request = await createConsentRequest(db, ring, { accountId, connectorId: c.id, tenantId: 'contoso.onmicrosoft.com' });
    const hostile = `AADSTS65004: User declined\u001b[31m <script>alert(1)</script>\u202e ${'x'.repeat(5000)}`;
    const outcome = await acceptConsentRedirect(db, ring, new URLSearchParams({ admin_consent: 'True', error: 'access_denied', error_description: hostile, state: request.state }));
    expect(outcome).toMatchObject({ kind: 'refused', error: 'access_denied', grantKept: false });
    const denied = await getConsent(db, accountId, c.id, 'Contoso.onmicrosoft.com');
    expect(denied).toMatchObject({ status: 'denied', error: 'access_denied' });
    expect(denied?.errorDescription).toBe(displayText(hostile));
    expect(Array.from(denied?.errorDescription ?? '').length).toBeLessThanOrEqual(300);
    expect(denied?.errorDescription).not.toMatch(/[\u0000-\u001f\u202e]/);

    await grant(c.id);
    const again = await createConsentRequest(db, ring, { accountId, connectorId: c.id, tenantId: tenant });
    const refusal = await acceptConsentRedirect(db, ring, new URLSearchParams({ error: 'access_denied', error_description: 'no', state: again.state }));
    expect(refusal).toMatchObject({ kind: 'refused', grantKept: true });
    expect(await getConsent(db, accountId, c.id, tenant)).toMatchObject({ status: 'granted', error: null, errorDescription: null });
  });

  it('does not grant on a token without the required roles, nor without a token', async () => {
    const c = await connector();
    const verify = async (result: Parameters<typeof recordConsentVerification>[2]) => {
      const request = await createConsentRequest(db, ring, { accountId, connectorId: c.id, tenantId: tenant });
      const redirect = await answer(request.state);
      return recordConsentVerification(db, redirect.request.nonce, result);
    };
    expect(await verify({ ok: true, tenantGuid: tenant, roles: [], admin })).toMatchObject({ outcome: 'not_granted', detail: expect.stringMatching(/no application permissions; missing User\.Read\.All, GroupMember\.Read\.All/) });
    expect(await getConsent(db, accountId, c.id, tenant)).toMatchObject({ status: 'denied', error: 'permissions_missing' });
    expect((await verify({ ok: true, tenantGuid: tenant, roles: ['User.Read.All'], admin })).outcome).toBe('not_granted');
    // An administrator of another tenant proves nothing about this one.
    const elsewhere = { objectId: admin.objectId, tenantGuid: '11111111-2222-4333-8444-555555555555' };
    expect(await verify({ ok: true, tenantGuid: tenant, roles, admin: elsewhere })).toMatchObject({ outcome: 'not_granted', detail: expect.stringMatching(/another tenant/) });
    // Without the sign-in's redirect, even a complete result grants nothing.
    const unsigned = await createConsentRequest(db, ring, { accountId, connectorId: c.id, tenantId: tenant });
    const consented = await acceptConsentRedirect(db, ring, new URLSearchParams({ admin_consent: 'True', state: unsigned.state }));
    expect(consented.kind).toBe('sign_in');
    expect(await consentSignInInFlight(db, consented.request.nonce)).toBe(false);
    expect(await recordConsentVerification(db, consented.request.nonce, { ok: true, tenantGuid: tenant, roles, admin })).toMatchObject({ outcome: 'not_granted', detail: expect.stringMatching(/has not signed in/) });
    expect(await hasGrantedConsent(db, accountId, c.id, tenant)).toBe(false);
    expect((await verify({ ok: false, outcome: 'not_granted', detail: 'AADSTS700016: Application not found in the directory' })).outcome).toBe('not_granted');
    expect(await getConsent(db, accountId, c.id, tenant)).toMatchObject({ status: 'denied', error: 'consent_not_verified' });
  });

  it('keeps each account\'s consent of a shared tenant apart', async () => {
    const c = await connector();
    const other = (await createAccount(db, { name: `fabrikam ${c.id}` })).id;
    await grant(c.id);
    expect(await getConsent(db, other, c.id, tenant)).toBeUndefined();
    // Another account syncs the tenant already: even with its administrator signed in, a second
    // account's consent waits for a platform administrator.
    expect((await grant(c.id, tenant, other)).outcome).toBe('confirmation_required');
    expect(await getConsent(db, other, c.id, tenant)).toMatchObject({ status: 'pending', error: 'confirmation_required' });
    await expect(confirmConsent(db, { accountId, connectorId: c.id, tenantId: tenant, actor: 'test' })).rejects.toThrow(InvalidStateError);
    await confirmConsent(db, { accountId: other, connectorId: c.id, tenantId: tenant, actor: 'test' });
    expect((await getConsent(db, other, c.id, tenant))?.status).toBe('granted');

    const mine = await createIntegration(db, { accountId, kind: 'entra_id', name: `shared ${c.id}`, settings: { tenantId: tenant, connectorId: c.id } });
    const theirs = await createIntegration(db, { accountId: other, kind: 'entra_id', name: `shared ${c.id}`, settings: { tenantId: tenant, connectorId: c.id } });
    expect(await revokeConsent(db, { accountId, connectorId: c.id, tenantId: tenant, actor: 'test' })).toBe(true);
    expect((await getConsent(db, accountId, c.id, tenant))?.status).toBe('revoked');
    expect((await getConsent(db, other, c.id, tenant))?.status).toBe('granted');
    expect((await getIntegration(db, mine.id))?.status).toBe('needs_consent');
    expect((await getIntegration(db, theirs.id))?.status).toBe('new');
    expect(await reflectConsentStatus(db, theirs.id)).toBe(false);
  });

  it('grants a signed-in administrator\'s consent without a platform administrator once no other account holds the tenant', async () => {
    const c = await connector();
    const successor = (await createAccount(db, { name: `successor ${c.id}` })).id;
    await grant(c.id);
    expect(await revokeConsent(db, { accountId, connectorId: c.id, tenantId: tenant, actor: 'test' })).toBe(true);
    // The tenant's administrator signing in is the proof: a consent revoked elsewhere is no reason to wait.
    expect((await grant(c.id, tenant, successor)).outcome).toBe('granted');
    expect(await hasGrantedConsent(db, successor, c.id, tenant)).toBe(true);
    // The account's own re-consent after its revocation needs nobody either (the successor's
    // grant now makes it a second account of the tenant, which does wait).
    expect((await grant(c.id)).outcome).toBe('confirmation_required');
    expect(await revokeConsent(db, { accountId: successor, connectorId: c.id, tenantId: tenant, actor: 'test' })).toBe(true);
    expect((await grant(c.id)).outcome).toBe('granted');
    const audit = await listAudit(db, { limit: 20 });
    expect(audit.some((e) => e.action === 'connector.consent.admin_signed_in' && e.accountId === successor && e.details['adminObjectId'] === admin.objectId)).toBe(true);
  });

  it('counts refusals only past the grace after the grant, revokes after enough in a row, and a read resets them', async () => {
    const c = await connector();
    await grant(c.id);
    const integration = await createIntegration(db, { accountId, kind: 'entra_id', name: `grace ${c.id}`, settings: { tenantId: tenant, connectorId: c.id } });
    const within = await recordConsentRefusal(db, accountId, c.id, tenant, 'Graph refused (403)', { graceMs: 3_600_000, failuresToRevoke: 2 });
    expect(within).toMatchObject({ revoked: false, failures: 0, graceEndsAt: expect.any(Date) });
    expect(await getConsent(db, accountId, c.id, tenant)).toMatchObject({ status: 'granted', authFailures: 0, lastAuthFailureAt: null });
    // Refusals within the spacing of the last counted one are the same spell (a run's retries).
    const spaced = { graceMs: 0, failuresToRevoke: 2, spacingMs: 3_600_000 };
    expect(await recordConsentRefusal(db, accountId, c.id, tenant, 'Graph refused (403)', spaced)).toMatchObject({ revoked: false, failures: 1 });
    expect(await recordConsentRefusal(db, accountId, c.id, tenant, 'Graph refused (403)', spaced)).toMatchObject({ revoked: false, failures: 1 });
    expect(await recordConsentRefusal(db, accountId, c.id, tenant, 'Graph refused (403)', spaced)).toMatchObject({ revoked: false, failures: 1 });
    expect((await getConsent(db, accountId, c.id, tenant))?.status).toBe('granted');
    await clearConsentRefusals(db, accountId, c.id, tenant);
    const past = { graceMs: 0, failuresToRevoke: 2, spacingMs: 0 };
    expect(await recordConsentRefusal(db, accountId, c.id, tenant, 'Graph refused (403)', past)).toMatchObject({ revoked: false, failures: 1 });
    await clearConsentRefusals(db, accountId, c.id, tenant);
    expect(await getConsent(db, accountId, c.id, tenant)).toMatchObject({ status: 'granted', authFailures: 0, lastAuthFailureAt: null });
    expect(await recordConsentRefusal(db, accountId, c.id, tenant, 'Graph refused (403)', past)).toMatchObject({ revoked: false, failures: 1 });
    expect((await getIntegration(db, integration.id))?.status).not.toBe('needs_consent');
    expect(await recordConsentRefusal(db, accountId, c.id, tenant, 'Graph refused (403) \u001b[2J', past)).toMatchObject({ revoked: true, failures: 2 });
    expect(await getConsent(db, accountId, c.id, tenant)).toMatchObject({ status: 'revoked', authFailures: 0, errorDescription: 'Graph refused (403) [2J' });
    expect((await getIntegration(db, integration.id))?.status).toBe('needs_consent');
    // A consent no longer granted is revoked at once.
    expect(await recordConsentRefusal(db, accountId, c.id, tenant, 'again', past)).toMatchObject({ revoked: true });
    const audit = await listAudit(db, { limit: 20 });
    expect(audit.some((e) => e.action === 'connector.consent.refused_in_grace' && e.details['connectorId'] === c.id)).toBe(true);
  });

  it('ends consent requests nobody finished once their link expired, and tells a stateless error apart', async () => {
    const c = await connector();
    const other = await createConsentRequest(db, ring, { accountId, connectorId: c.id, tenantId: 'other.example' });
    await createConsentRequest(db, ring, { accountId, connectorId: c.id, tenantId: tenant, ttlMs: -1 });
    expect(await expireConsentRequests(db)).toBeGreaterThanOrEqual(1);
    expect(await getConsent(db, accountId, c.id, tenant)).toMatchObject({ status: 'denied', error: 'consent_request_expired' });
    // A request still open keeps its consent pending, and its link works.
    expect((await getConsent(db, accountId, c.id, 'other.example'))?.status).toBe('pending');
    expect((await acceptConsentRedirect(db, ring, new URLSearchParams({ admin_consent: 'True', state: other.state }))).kind).toBe('sign_in');
    expect(consentErrorAnswer(new URLSearchParams({ error: 'access_denied', error_description: 'AADSTS65004: declined\u0007' }))).toEqual({ error: 'access_denied', errorDescription: 'AADSTS65004: declined' });
    expect(consentErrorAnswer(new URLSearchParams({ error: '<x>' }))).toEqual({ error: 'invalid_response', errorDescription: null });
    expect(consentErrorAnswer(new URLSearchParams({ admin_consent: 'True' }))).toBeUndefined();
  });

  it('marks the account\'s integrations as needing consent when it is revoked', async () => {
    const c = await connector();
    await grant(c.id);
    const integration = await createIntegration(db, { accountId, kind: 'entra_id', name: `entra ${c.id}`, settings: { tenantId: tenant, connectorId: c.id } });
    expect(await reflectConsentStatus(db, integration.id)).toBe(false);
    expect(await markConsentRevoked(db, accountId, c.id, tenant, 'AADSTS700016: not found in the directory')).toBe(1);
    expect((await getIntegration(db, integration.id))?.status).toBe('needs_consent');
    expect((await getConsent(db, accountId, c.id, tenant))?.status).toBe('revoked');
    // A failed run writes its own status; reflecting the consent puts the cause back.
    await markIntegrationRun(db, integration.id, { status: 'failed', lastRunId: integration.id });
    expect(await reflectConsentStatus(db, integration.id)).toBe(true);
    expect((await getIntegration(db, integration.id))?.status).toBe('needs_consent');
    // Consent granted again (no other account holds one): the integration may sync.
    expect((await grant(c.id)).outcome).toBe('granted');
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
      /account holds no granted consent of tenant/,
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
