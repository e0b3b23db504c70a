import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { close, connect, createAccount, createIntegration, listAudit, recordAudit, redacted, type Db } from '../src/index.ts';

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase('audit');
  db = connect(database.url, { max: 2 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

test('events are recorded and listed newest first, per integration', async () => {
  const account = await createAccount(db, { name: 'acme' });
  const integration = await createIntegration(db, { accountId: account.id, kind: 'ldap', name: 'corp', settings: {} });
  await recordAudit(db, { accountId: account.id, actor: 'alice', action: 'account.created', details: { name: 'acme' } });
  const created = await recordAudit(db, {
    accountId: account.id,
    integrationId: integration.id,
    actor: 'alice',
    action: 'integration.created',
    details: { kind: 'ldap' },
  });
  const approved = await recordAudit(db, {
    integrationId: integration.id,
    actor: 'bob',
    action: 'run.approved',
    details: { runId: 'r-1', wouldDelete: 800 },
  });
  expect(created.createdAt).toBeInstanceOf(Date);

  const forIntegration = await listAudit(db, { integrationId: integration.id });
  expect(forIntegration.map((e) => e.action)).toEqual(['run.approved', 'integration.created']);
  expect(forIntegration[0]).toMatchObject({ id: approved.id, actor: 'bob', accountId: null, details: { runId: 'r-1', wouldDelete: 800 } });
  expect((await listAudit(db, { accountId: account.id })).map((e) => e.action)).toEqual(['integration.created', 'account.created']);
  expect(await listAudit(db, { limit: 1 })).toHaveLength(1);
  expect(await listAudit(db, { integrationId: 'not-a-uuid' })).toEqual([]);
});

test('values under secret-looking keys are redacted at any depth', async () => {
  const event = await recordAudit(db, {
    actor: 'cli',
    action: 'integration.updated',
    details: {
      changed: ['settings', 'secret'],
      settings: { url: 'ldaps://x', bindDn: 'cn=reader', bindPassword: 'hunter2', tls: { privateKey: 'PEM' } },
      connectors: [{ clientSecret: 's3cret', name: 'main' }],
      accessToken: 'eyJ...',
      secret: null,
    },
  });
  const stored = JSON.stringify((await listAudit(db, { limit: 10 })).find((e) => e.id === event.id)?.details);
  for (const leaked of ['hunter2', 'PEM', 's3cret', 'eyJ']) expect(stored).not.toContain(leaked);
  expect(event.details).toEqual({
    changed: ['settings', 'secret'],
    settings: { url: 'ldaps://x', bindDn: 'cn=reader', bindPassword: redacted, tls: { privateKey: redacted } },
    connectors: [{ clientSecret: redacted, name: 'main' }],
    accessToken: redacted,
    secret: null,
  });
});
