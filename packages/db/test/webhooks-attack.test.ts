import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { close, connect, createAccount, createKeyRing, createWebhookEndpoint, type Db, generateSecretKey, InvalidStateError, listWebhookEndpoints, maxWebhookEndpointsPerAccount, recordWebhookEvent } from '../src/index.ts';

// An account's admin key adding endpoints without end: every event of the account then fans out
// to each of them (a delivery row and a drain job apiece) on the workers every account shares,
// and the endpoint list answers all of them at once.

let database: TestDatabase;
let db: Db;
const ring = createKeyRing({ current: generateSecretKey() });

beforeAll(async () => {
  database = await createTestDatabase('webhooks_attack_db');
  db = connect(database.url, { max: 12 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

const add = (accountId: string, i: number) => createWebhookEndpoint(db, ring, { accountId, url: `https://hooks.example.com/${i}`, events: ['*'] });

test('an account holds a bounded number of endpoints, also when they are added concurrently; another account is not affected', async () => {
  const mallory = (await createAccount(db, { name: 'mallory' })).id;
  const other = (await createAccount(db, { name: 'other' })).id;
  for (let i = 0; i < maxWebhookEndpointsPerAccount - 5; i++) await add(mallory, i);
  const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => add(mallory, 1000 + i)));
  expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
  for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(InvalidStateError);
  await expect(add(mallory, 2000)).rejects.toThrow(InvalidStateError);
  expect(await listWebhookEndpoints(db, mallory)).toHaveLength(maxWebhookEndpointsPerAccount);
  const recorded = await recordWebhookEvent(db, { accountId: mallory, type: 'webhook.test', data: {} });
  expect(recorded.endpointIds).toHaveLength(maxWebhookEndpointsPerAccount);
  await add(other, 0);
  expect(await listWebhookEndpoints(db, other)).toHaveLength(1);
}, 60_000);
