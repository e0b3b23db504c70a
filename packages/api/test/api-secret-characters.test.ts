import { DirsyncApiError, type DirsyncClient } from '@dirsync/client';
import { listIntegrations } from '@dirsync/db';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

// A password holding CR/LF would reach a server that is not LDAP as protocol commands (issue 8):
// refused at the door, before anything is stored or sent to a worker.

let api: ApiHarness;
let accountId: string;
let admin: DirsyncClient;

beforeAll(async () => {
  api = await startApiHarness('api_secret_chars');
  accountId = await api.account('mallory');
  admin = api.client(await api.key(accountId, ['admin']));
});

afterAll(async () => {
  await api.close();
});

async function problemOf(promise: Promise<unknown>): Promise<{ status: number; text: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DirsyncApiError);
  const problem = (error as DirsyncApiError).problem;
  return { status: problem.status, text: JSON.stringify(problem) };
}

test.each(['hunter2\r\nSET k v\r\n', 'line\nfeed', 'nul\u0000byte'])('a secret %j is refused on create and on PUT …/secret', async (secret) => {
  const created = await problemOf(admin.createIntegration({ kind: 'ldap', name: 'redis', settings: ldapSettings(), secret }));
  expect([400, 422]).toContain(created.status);
  expect(created.text).toMatch(/must not contain a carriage return, line feed or NUL character|contains a NUL character/);
  expect(created.text).not.toContain('SET k v');
  expect(await listIntegrations(api.db, { accountId })).toEqual([]);

  const integration = await admin.createIntegration({ kind: 'ldap', name: `clean-${secret.length}`, settings: ldapSettings(), secret: 'clean-secret-1' });
  const replaced = await problemOf(admin.setSecret(integration.id, secret));
  expect([400, 422]).toContain(replaced.status);
  expect(replaced.text).toMatch(/must not contain a carriage return, line feed or NUL character|contains a NUL character/);
  await admin.removeIntegration(integration.id);
});
