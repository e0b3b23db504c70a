import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import {
  acceptConsentRedirect,
  close,
  connect,
  createAccount,
  createConnector,
  createConsentRequest,
  createIntegration,
  createKeyRing,
  createRun,
  finishRun,
  generateSecretKey,
  getConnector,
  listLatestRuns,
  recordRotationOutcome,
  startRun,
  type Db,
} from '../src/index.ts';

// What the console's API reads beyond the CLI's: each integration's latest run in one statement,
// the count of failed rotations since the last success, and the console page a consent request
// returns to.

let database: TestDatabase;
let db: Db;
let accountA: string;
let accountB: string;
const ring = createKeyRing({ current: generateSecretKey() });

const ldap = { url: 'ldaps://ldap.example.com', users: { baseDns: ['dc=example'] } };

beforeAll(async () => {
  database = await createTestDatabase('console_reads');
  db = connect(database.url, { max: 3 });
  accountA = (await createAccount(db, { name: 'alpha' })).id;
  accountB = (await createAccount(db, { name: 'beta' })).id;
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

async function connector(name: string) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  return createConnector(
    db,
    ring,
    {
      name,
      description: 'connector of the console tests',
      clientId: randomUUID(),
      applicationObjectId: '99999999-2222-4333-8444-555555555555',
      homeTenantId: 'f0f0f0f0-2222-4333-8444-555555555555',
      redirectUri: 'https://dirsync.example/v1/consent/callback',
      authorityHost: 'https://login.example',
    },
    {
      certificatePem: '-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n',
      privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      thumbprint: 'AB'.repeat(20),
      thumbprintSha256: 'CD'.repeat(32),
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 30 * 24 * 3600_000),
    },
  );
}

test("the latest run of each of an account's integrations, whatever its status; none for an integration without runs", async () => {
  const first = await createIntegration(db, { accountId: accountA, kind: 'ldap', name: 'first', settings: ldap });
  const second = await createIntegration(db, { accountId: accountA, kind: 'ldap', name: 'second', settings: ldap });
  const idle = await createIntegration(db, { accountId: accountA, kind: 'ldap', name: 'idle', settings: ldap });
  const other = await createIntegration(db, { accountId: accountB, kind: 'ldap', name: 'other', settings: ldap });

  const finished = await createRun(db, { integrationId: first.id, modeRequested: 'full', trigger: 'api' });
  await startRun(db, finished.id, { mode: 'full', workerId: 'w1' });
  await finishRun(db, finished.id, { status: 'succeeded', created: 4, updated: 1, durationMs: 1234 });
  const queued = await createRun(db, { integrationId: first.id, modeRequested: 'delta', trigger: 'schedule' });
  const only = await createRun(db, { integrationId: second.id, modeRequested: 'full', trigger: 'api', dryRun: true });
  await createRun(db, { integrationId: other.id, modeRequested: 'full', trigger: 'api' });

  const latest = await listLatestRuns(db, accountA);
  expect([...latest.keys()].sort()).toEqual([first.id, second.id].sort());
  expect(latest.get(first.id)).toMatchObject({ id: queued.id, status: 'queued', modeRequested: 'delta', mode: null });
  expect(latest.get(second.id)).toMatchObject({ id: only.id, dryRun: true });
  expect(latest.has(idle.id)).toBe(false);

  // Restricted to some integrations; another account's ids give nothing.
  expect([...(await listLatestRuns(db, accountA, [second.id, other.id])).keys()]).toEqual([second.id]);
  expect((await listLatestRuns(db, accountA, [])).size).toBe(0);
  expect((await listLatestRuns(db, accountA, ['not-a-uuid'])).size).toBe(0);

  // The finished run is the latest once the queued one is gone.
  await db.$client`delete from sync_runs where id = ${queued.id}`;
  expect((await listLatestRuns(db, accountA, [first.id])).get(first.id)).toMatchObject({
    id: finished.id,
    status: 'succeeded',
    mode: 'full',
    created: 4,
    updated: 1,
    durationMs: 1234,
    finishedAt: expect.stringMatching(/Z$/),
  });
});

test('failed rotations are counted until one succeeds', async () => {
  const made = await connector('rotating');
  expect(made.rotationFailures).toBe(0);
  await recordRotationOutcome(db, made.id, { status: 'failed', error: 'graph answered 500' });
  await recordRotationOutcome(db, made.id, { status: 'failed', error: 'graph answered 503' });
  expect(await getConnector(db, made.id)).toMatchObject({ rotationFailures: 2, lastRotationStatus: 'failed', lastRotationError: 'graph answered 503' });
  await recordRotationOutcome(db, made.id, { status: 'succeeded' });
  expect(await getConnector(db, made.id)).toMatchObject({ rotationFailures: 0, lastRotationStatus: 'succeeded' });
  await recordRotationOutcome(db, made.id, { status: 'failed' });
  expect((await getConnector(db, made.id))?.rotationFailures).toBe(1);
});

test('a consent request keeps the console page to return to, and each redirect of it names that page', async () => {
  const made = await connector('returning');
  const tenant = '0a5c6d3e-1111-4222-8333-444455556666';
  const returnTo = '/console/connectors?migrate=0a5c6d3e-1111-4222-8333-444455556666';

  const request = await createConsentRequest(db, ring, { accountId: accountA, connectorId: made.id, tenantId: tenant, returnTo });
  const consented = await acceptConsentRedirect(db, ring, new URLSearchParams({ admin_consent: 'True', state: request.state }));
  expect(consented).toMatchObject({ kind: 'sign_in', request: { returnTo } });
  if (consented.kind !== 'sign_in') throw new Error('expected a sign-in');
  const signInState = new URL(consented.url).searchParams.get('state') ?? '';
  expect(await acceptConsentRedirect(db, ring, new URLSearchParams({ code: 'code-1', state: signInState }))).toMatchObject({ kind: 'verify', request: { returnTo } });

  const refusedRequest = await createConsentRequest(db, ring, { accountId: accountA, connectorId: made.id, tenantId: tenant, returnTo: '/console/connectors' });
  expect(await acceptConsentRedirect(db, ring, new URLSearchParams({ error: 'access_denied', state: refusedRequest.state }))).toMatchObject({
    kind: 'refused',
    request: { returnTo: '/console/connectors' },
  });

  // Without one, as before: the callback shows its own page.
  const plain = await createConsentRequest(db, ring, { accountId: accountA, connectorId: made.id, tenantId: tenant });
  expect(await acceptConsentRedirect(db, ring, new URLSearchParams({ error: 'access_denied', state: plain.state }))).toMatchObject({ kind: 'refused', request: { returnTo: null } });
});
