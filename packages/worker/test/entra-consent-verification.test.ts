import { get } from 'node:https';
import {
  acceptConsentRedirect,
  type Connector,
  createAccount,
  createConnector,
  createConsentRequest,
  getConsent,
  getConsentRequest,
  hasGrantedConsent,
  InvalidInputError,
} from '@dirsync/db';
import { type EmulatedTenantDirectory, followEmulatorPage, globalAdministratorRoleId, registerEmulatedConnectorApp, testDestinations, waitFor } from '@dirsync/testkit';
import { verifyTenantConsent } from '../src/entra/index.ts';
import { type EntraWorld, redirectUri, startEntraWorld } from './entra-helpers.ts';

// The worker's check of an administrator's sign-in against the emulated authority: what a
// tenant's user who is not an administrator, a replayed code or state, a tampered id_token and
// an app registration without directory-role claims each end as, and two runs of one request.

const timeoutMs = 60_000;
let world: EntraWorld;

beforeAll(async () => {
  world = await startEntraWorld('consent_verification');
}, timeoutMs);

afterAll(async () => {
  await world?.close();
}, timeoutMs);

afterEach(() => {
  world.emulator.signInAs(undefined);
  world.emulator.tamperIdTokens(undefined);
  world.emulator.faults.clear();
});

/** A consent request answered on the consent page: its sign-in URL (second state, nonce). */
async function answeredConsentPage(tenantId: string, options: { accountId?: string; connector?: Connector } = {}): Promise<URL> {
  const connector = options.connector ?? world.connector;
  const request = await createConsentRequest(world.db, world.ring, { accountId: options.accountId ?? world.accountId, connectorId: connector.id, tenantId });
  const location = await followEmulatorPage(world.emulator, request.url);
  const consented = await acceptConsentRedirect(world.db, world.ring, location.searchParams);
  if (consented.kind !== 'sign_in') throw new Error(`the consent page answered ${consented.kind}`);
  return new URL(consented.url);
}

/** Signs in at `signIn` as the emulator's current user; the redirect's parameters (code, state). */
async function signedIn(signIn: URL): Promise<URLSearchParams> {
  return (await followEmulatorPage(world.emulator, signIn)).searchParams;
}

/** The whole flow up to the code kept for a worker: the request's nonce. */
async function signedInRequest(tenantId: string, options: { accountId?: string; connector?: Connector } = {}): Promise<string> {
  const redirect = await acceptConsentRedirect(world.db, world.ring, await signedIn(await answeredConsentPage(tenantId, options)));
  if (redirect.kind !== 'verify') throw new Error(`the sign-in answered ${redirect.kind}`);
  return redirect.request.nonce;
}

function verify(nonce: string) {
  return verifyTenantConsent({ db: world.db, keyRing: world.ring, destinations: testDestinations }, nonce);
}

function tokenAnswers(tenant: EmulatedTenantDirectory): number {
  return world.emulator.requestsTo('login', '/token').filter((r) => r.tenantId === tenant.tenantId && r.status === 200).length;
}

test("a user of the tenant without a consent-granting role is not the administrator: not granted, and why", async () => {
  const customer = world.emulator.createTenant();
  // Application Administrator and Cloud Application Administrator may not grant Graph application permissions.
  world.emulator.signInAs({ tenant: customer.tenantId, roles: ['9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3', '158c047a-c907-4556-b7ef-446551a6b5f7'] });
  const outcome = await verify(await signedInRequest(customer.tenantId));
  expect(outcome).toMatchObject({ outcome: 'not_granted', tenantGuid: null });
  expect(outcome.detail).toMatch(/holds no directory role that can grant admin consent to application permissions \(Global Administrator or Privileged Role Administrator\)/);
  expect(await hasGrantedConsent(world.db, world.accountId, world.connector.id, customer.tenantId)).toBe(false);
  expect(await getConsent(world.db, world.accountId, world.connector.id, customer.tenantId)).toMatchObject({ status: 'denied', errorDescription: expect.stringMatching(/no directory role/) });

  // A user with no directory role at all fares no better.
  world.emulator.signInAs({ tenant: customer.tenantId, roles: [] });
  expect(await verify(await signedInRequest(customer.tenantId))).toMatchObject({ outcome: 'not_granted', detail: expect.stringMatching(/no directory roles \(wids\)|no directory role that can grant/) });
  expect(await hasGrantedConsent(world.db, world.accountId, world.connector.id, customer.tenantId)).toBe(false);
}, timeoutMs);

test("a code already redeemed, brought back on another account's request, is refused by the authority", async () => {
  const customer = world.emulator.createTenant();
  const other = (await createAccount(world.db, { name: 'code-thief' })).id;
  const signInA = await answeredConsentPage(customer.tenantId);
  const paramsA = await signedIn(signInA);
  const redirectA = await acceptConsentRedirect(world.db, world.ring, paramsA);
  if (redirectA.kind !== 'verify') throw new Error('expected a verification');
  expect(await verify(redirectA.request.nonce)).toMatchObject({ outcome: 'granted' });

  // The other account's own sign-in state, carrying the code A's administrator was given.
  const signInB = await answeredConsentPage(customer.tenantId, { accountId: other });
  const replay = new URLSearchParams({ code: paramsA.get('code') ?? '', state: signInB.searchParams.get('state') ?? '' });
  const redirectB = await acceptConsentRedirect(world.db, world.ring, replay);
  if (redirectB.kind !== 'verify') throw new Error('expected a verification');
  const outcome = await verify(redirectB.request.nonce);
  expect(outcome).toMatchObject({ outcome: 'not_granted' });
  expect(outcome.detail).toMatch(/code was not redeemed: invalid_grant \(AADSTS54005/);
  expect(await hasGrantedConsent(world.db, other, world.connector.id, customer.tenantId)).toBe(false);
  expect(await hasGrantedConsent(world.db, world.accountId, world.connector.id, customer.tenantId)).toBe(true);
}, timeoutMs);

test('the sign-in state works once: a second code on the same state is refused before any worker', async () => {
  const customer = world.emulator.createTenant();
  const signIn = await answeredConsentPage(customer.tenantId);
  const first = await signedIn(signIn);
  const second = await signedIn(signIn);
  expect(second.get('state')).toBe(first.get('state'));
  expect(second.get('code')).not.toBe(first.get('code'));
  const redirect = await acceptConsentRedirect(world.db, world.ring, first);
  expect(redirect.kind).toBe('verify');
  await expect(acceptConsentRedirect(world.db, world.ring, second)).rejects.toThrow(InvalidInputError);
  await expect(acceptConsentRedirect(world.db, world.ring, first)).rejects.toThrow(/already used/);
  // The code kept is the first one, and it still grants.
  if (redirect.kind !== 'verify') throw new Error('expected a verification');
  expect(await verify(redirect.request.nonce)).toMatchObject({ outcome: 'granted' });
}, timeoutMs);

describe('tampered id_tokens', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const cases: readonly (readonly [string, (other: EmulatedTenantDirectory) => Parameters<EntraWorld['emulator']['tamperIdTokens']>[0], RegExp])[] = [
    ['signed by a key the authority does not publish', () => ({ foreignKey: true }), /id_token is not signed by one of the authority's published keys/],
    ['carrying another nonce', () => ({ claims: { nonce: 'a-nonce-of-another-request' } }), /id_token does not carry the nonce of this consent request/],
    ['issued to another client', () => ({ claims: { aud: '00000000-1111-4222-8333-444444444444' } }), /id_token fails its aud check/],
    ['expired', () => ({ claims: { iat: now() - 7200, nbf: now() - 7200, exp: now() - 3600 } }), /id_token has expired/],
    ['signed in long ago', () => ({ claims: { iat: now() - 3600 } }), /id_token has expired|id_token fails its iat check/],
    ['naming another tenant under the real issuer', (other) => ({ claims: { tid: other.tenantId } }), /id_token was not issued by the tenant it names/],
    ['naming another tenant, issuer included', (other) => ({ claims: { tid: other.tenantId, iss: `${world.emulator.authorityHost}/${other.tenantId}/v2.0` } }), /administrator signed in to tenant [0-9a-f-]+, not to the tenant of the request/],
    ['without a nonce', () => ({ claims: { nonce: undefined } }), /id_token fails its nonce check/],
  ];

  it.each(cases)('%s: not granted, the detail naming the check', async (_name, tampering, detail) => {
    const customer = world.emulator.createTenant();
    const other = world.emulator.createTenant();
    const tokensBefore = tokenAnswers(customer);
    world.emulator.tamperIdTokens(tampering(other));
    const nonce = await signedInRequest(customer.tenantId);
    const outcome = await verify(nonce);
    expect(outcome).toMatchObject({ outcome: 'not_granted', tenantGuid: null });
    expect(outcome.detail).toMatch(/^the administrator's sign-in was refused: /);
    expect(outcome.detail).toMatch(detail);
    expect(await hasGrantedConsent(world.db, world.accountId, world.connector.id, customer.tenantId)).toBe(false);
    expect(await getConsent(world.db, world.accountId, world.connector.id, customer.tenantId)).toMatchObject({ status: 'denied', error: 'consent_not_verified' });
    // The code's redemption is the only token answer: a refused sign-in asks for no app-only token.
    expect(tokenAnswers(customer)).toBe(tokensBefore + 1);
    // Untampered, the same tenant's administrator is granted.
    world.emulator.tamperIdTokens(undefined);
    expect(await verify(await signedInRequest(customer.tenantId))).toMatchObject({ outcome: 'granted', tenantGuid: customer.tenantId });
  }, timeoutMs);
});

test("an app registration whose id_tokens carry no directory roles is not granted, and the operator is told what to set", async () => {
  const registered = await registerEmulatedConnectorApp(world.emulator, {
    redirectUri,
    subject: 'dirsync connector without wids',
    homeTenantId: world.home.tenantId,
    displayName: 'dirsync without directory roles',
    groupMembershipClaims: 'None',
  });
  const connector = await createConnector(world.db, world.ring, { name: 'no-wids', description: 'connector whose manifest emits no wids', ...registered.connector }, registered.certificate);
  const customer = world.emulator.createTenant();
  world.emulator.signInAs({ tenant: customer.tenantId, roles: [globalAdministratorRoleId] });
  const outcome = await verifyTenantConsent({ db: world.db, keyRing: world.ring, destinations: testDestinations }, await signedInRequest(customer.tenantId, { connector }));
  expect(outcome).toMatchObject({ outcome: 'not_granted' });
  expect(outcome.detail).toMatch(/carries no directory roles \(wids\).*groupMembershipClaims/);
  expect(await hasGrantedConsent(world.db, world.accountId, connector.id, customer.tenantId)).toBe(false);
}, timeoutMs);

test('two runs of one request: the one that finds the code taken waits for the other and records nothing of its own', async () => {
  const customer = world.emulator.createTenant();
  const nonce = await signedInRequest(customer.tenantId);
  // The first run's code redemption is slow, so the second starts while the first holds the code.
  world.emulator.faults.add({ service: 'login', path: '/token', method: 'POST', delayMs: 1_500, times: 1 });
  const first = verify(nonce);
  await waitFor(async () => (await getConsentRequest(world.db, nonce))?.codeCiphertext === null, { timeoutMs: 10_000, what: 'the first run to take the code' });
  const second = verify(nonce);
  const [a, b] = await Promise.all([first, second]);
  expect(a).toMatchObject({ outcome: 'granted', tenantGuid: customer.tenantId });
  expect(b).toEqual(a);
  expect(await getConsentRequest(world.db, nonce)).toMatchObject({ outcome: 'granted', detail: null });
  expect(await hasGrantedConsent(world.db, world.accountId, world.connector.id, customer.tenantId)).toBe(true);
  // One redemption only: the second run never had a code to send.
  const redemptions = world.emulator.requestsTo('login', '/token').filter((r) => r.tenantId === customer.tenantId);
  expect(redemptions.filter((r) => r.status === 200)).toHaveLength(2);
  expect(redemptions.filter((r) => r.status !== 200)).toEqual([]);

  // A run of a request whose sign-in never brought a code still ends it as not granted.
  const pending = await createConsentRequest(world.db, world.ring, { accountId: world.accountId, connectorId: world.connector.id, tenantId: customer.tenantId });
  const consented = await acceptConsentRedirect(world.db, world.ring, (await followEmulatorPage(world.emulator, pending.url)).searchParams);
  expect(await verify(consented.request.nonce)).toMatchObject({ outcome: 'not_granted', detail: expect.stringMatching(/has not signed in/) });
}, timeoutMs);

test('in the China cloud, whose id_tokens name another issuer host than the authority, the sign-in is verified against the published issuer', async () => {
  const china = await startEntraWorld('consent_china', { cloud: 'china' });
  try {
    const tenant = china.emulator.createTenant();
    expect(await china.grantConsent(tenant.tenantId)).toMatchObject({ outcome: 'granted' });
    expect(await hasGrantedConsent(china.db, china.accountId, china.connector.id, tenant.tenantId)).toBe(true);
    // The authority publishes an issuer on another host than its own, which the check followed.
    const url = `${china.emulator.authorityHost}/${tenant.tenantId}/v2.0/.well-known/openid-configuration`;
    const metadata = await new Promise<{ issuer: string }>((resolve, reject) => {
      get(url, { ca: china.emulator.caPem }, (response) => {
        let text = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(JSON.parse(text) as { issuer: string }));
      }).on('error', reject);
    });
    expect(metadata.issuer).toBe(`https://login.partner.microsoftonline.cn/${tenant.tenantId}/v2.0`);
    expect(new URL(china.emulator.authorityHost).host).not.toBe('login.partner.microsoftonline.cn');
  } finally {
    await china.close();
  }
}, timeoutMs);
