import { randomUUID } from 'node:crypto';
import { listConnectorCredentials } from '@dirsync/db';
import { EntraTokenCache } from '@dirsync/providers';
import { testDestinations } from '@dirsync/testkit';
import { createEntraAwareProviderFactory } from '../src/entra/index.ts';
import { rotateConnectorCredential } from '../src/rotation/index.ts';
import { type EntraWorld, startEntraWorld } from './entra-helpers.ts';

// A key added by a rotation reaches each tenant's token service at its own time (the emulator's
// keyPropagationMs: refused with AADSTS700027 for 30–60 s per key and tenant, on the emulator's
// clock, which this test moves). The connector's app holds only the two read permissions.

const timeoutMs = 60_000;
const propagationMs = 60_000;
let world: EntraWorld;
/** How far the emulator's clock is ahead of the real one. */
let offsetMs = 0;
let customer: string;

/** Reads the customer tenant through the worker's provider factory; says which key got the token. */
async function readCustomer(): Promise<'primary' | 'fallback' | undefined> {
  const factory = createEntraAwareProviderFactory({ db: world.db, keyRing: world.ring, tokenCache: new EntraTokenCache(), destinations: testDestinations });
  const provider = await factory('entra_id', { tenantId: customer, connectorId: world.connector.id }, undefined, { accountId: world.accountId, integrationId: randomUUID() });
  try {
    let pages = 0;
    for await (const _page of provider.fetchFull(new AbortController().signal)) pages += 1;
    expect(pages).toBeGreaterThan(0);
    return (provider as { credentialUsed?: 'primary' | 'fallback' }).credentialUsed;
  } finally {
    await provider.close();
  }
}

function rotate(slot: Date) {
  return rotateConnectorCredential({
    db: world.db,
    keyRing: world.ring,
    connectorId: world.connector.id,
    slot,
    actor: 'test',
    destinations: testDestinations,
    // The probe's waits move the emulator's clock instead of taking time.
    sleep: async (ms) => {
      offsetMs += ms;
    },
  });
}

beforeAll(async () => {
  world = await startEntraWorld('rotationprop', { now: () => Date.now() + offsetMs, realism: { keyPropagationMs: propagationMs } });
  customer = (await world.consentedTenant()).tenantId;
  world.emulator.tenant(customer).addUser({ userPrincipalName: 'ada@customer.example', displayName: 'Ada' });
}, timeoutMs);

afterAll(async () => {
  await world?.close();
}, timeoutMs);

test('the connector app asks for the two read permissions only', () => {
  expect([...world.app.roles].sort()).toEqual(['GroupMember.Read.All', 'User.Read.All']);
  expect(world.connector.permissions).toEqual(['User.Read.All', 'GroupMember.Read.All']);
});

test('a rotation waits for the home tenant to accept the new key; a customer tenant not there yet is read with the previous key', async () => {
  expect(await readCustomer()).toBe('primary');
  const rotated = await rotate(new Date(Date.UTC(2030, 0, 1, 3)));
  expect(rotated.status).toBe('rotated');
  // The home tenant refused the new key before accepting it: the probe waited within the job.
  const probes = world.emulator.requestsTo('login', `/${world.home.tenantId}/oauth2/v2.0/token`).map((r) => r.status);
  expect(probes).toContain(401);
  expect(probes.at(-1)).toBe(200);
  expect(offsetMs).toBeGreaterThanOrEqual(propagationMs / 2);

  // The customer tenant's token service has not learnt the new key yet (its clock is back at the
  // moment the key was added): the sync gets its token with the previous key.
  offsetMs = 0;
  expect(await readCustomer()).toBe('fallback');
  // An administrator consenting in a tenant the new key has not reached is verified with the
  // previous key: the new one is refused there, the previous one redeems the code.
  const consenting = world.emulator.createTenant();
  expect(await world.grantConsent(consenting.tenantId)).toMatchObject({ outcome: 'granted' });
  const redemptions = world.emulator.requestsTo('login', `/${consenting.tenantId}/oauth2/v2.0/token`).map((r) => r.status);
  expect(redemptions).toContain(401);
  expect(redemptions.at(-1)).toBe(200);
  // Once the key has reached it, the new key is used.
  offsetMs = propagationMs + 1_000;
  expect(await readCustomer()).toBe('primary');
}, timeoutMs);

test('the next rotation removes only the key before the previous one: the fallback stays on the app', async () => {
  // A day later, as far as the first rotation's key is concerned: it has reached every tenant.
  const later = propagationMs + 1_000;
  offsetMs = later;
  const before = await listConnectorCredentials(world.db, world.connector.id);
  const previous = before.find((c) => c.status === 'current');
  const initial = before.find((c) => c.status === 'previous');
  const rotated = await rotate(new Date(Date.UTC(2030, 0, 2, 3)));
  if (rotated.status !== 'rotated') throw new Error('expected a rotation');
  expect(rotated.removed).toEqual([initial?.thumbprint]);
  const onApp = world.app.keyCredentials.map((k) => k.customKeyIdentifier);
  expect(onApp).toContain(previous?.thumbprint);
  expect(onApp).not.toContain(initial?.thumbprint);
  // The new key has not reached the customer tenant yet: the key kept on the app serves there.
  offsetMs = later;
  expect(await readCustomer()).toBe('fallback');
  // Rolling its own keys needed no permission and no read of the app registration.
  expect(world.emulator.requestsTo('graph', `/applications/${world.app.objectId}`).filter((r) => r.method === 'GET')).toEqual([]);
}, timeoutMs);

