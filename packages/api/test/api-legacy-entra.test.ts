import { DirsyncApiError, type DirsyncClient } from '@dirsync/client';
import { createIntegration, getIntegration, listIntegrations } from '@dirsync/db';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

// A legacy Entra ID integration's settings decide which hosts a worker sends requests to (its own
// authority, Graph host and CA): an account must not be able to create one, or repoint one.

let api: ApiHarness;
let accountId: string;
let admin: DirsyncClient;

const legacyClientId = '11111111-2222-4333-8444-555555555555';

beforeAll(async () => {
  api = await startApiHarness('api_legacy_entra');
  accountId = await api.account('mallory');
  admin = api.client(await api.key(accountId, ['admin']));
});

afterAll(async () => {
  await api.close();
});

async function problemOf(promise: Promise<unknown>): Promise<{ status: number; type: string; detail: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DirsyncApiError);
  const { status, type, detail } = (error as DirsyncApiError).problem;
  return { status, type, detail: detail ?? '' };
}

test('no legacy integration is created through the API, whatever hosts it names', async () => {
  const refused = await problemOf(
    admin.createIntegration({
      kind: 'entra_id',
      name: 'own app',
      settings: { tenantId: 'victim.onmicrosoft.com', legacyApp: { clientId: legacyClientId }, authorityHost: 'https://attacker.example', graphBaseUrl: 'https://attacker.example' },
      secret: 'client-secret',
    }),
  );
  expect(refused).toMatchObject({ status: 422, type: expect.stringMatching(/legacy-integration-refused$/) });
  expect(refused.detail).toMatch(/can no longer be created: create the integration with a connector/);
  expect(await listIntegrations(api.db, { accountId })).toEqual([]);
});

test('an existing legacy integration keeps its app, authority, Graph host and CA; other settings may change', async () => {
  const settings = { tenantId: 'fabrikam.onmicrosoft.com', legacyApp: { clientId: legacyClientId }, pageSize: 500 };
  const legacy = await createIntegration(api.db, { accountId, kind: 'entra_id', name: 'legacy', settings });
  const stored = (await getIntegration(api.db, legacy.id))?.settings as Record<string, unknown>;

  for (const change of [{ authorityHost: 'https://attacker.example' }, { graphBaseUrl: 'https://attacker.example/' }, { legacyApp: { clientId: '99999999-2222-4333-8444-555555555555' } }]) {
    const refused = await problemOf(admin.updateIntegration(legacy.id, { settings: { ...stored, ...change } }));
    expect(refused.status).toBe(422);
    expect(refused.detail).toMatch(new RegExp(`keeps its ${Object.keys(change)[0]}: migrate it to a connector`));
  }
  expect((await getIntegration(api.db, legacy.id))?.settings).toEqual(stored);

  const updated = await admin.updateIntegration(legacy.id, { settings: { ...stored, pageSize: 200 } });
  expect(updated.settings).toMatchObject({ pageSize: 200, legacyApp: { clientId: legacyClientId }, authorityHost: 'https://login.microsoftonline.com' });
});
