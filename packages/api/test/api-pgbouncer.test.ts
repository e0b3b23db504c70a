import pino from 'pino';
import {
  accounts,
  close,
  connect,
  createApiKey,
  createKeyRing,
  createRun,
  finishRun,
  generateSecretKey,
  insertMemberships,
  integrations,
  startRun,
  writeObjects,
  type Db,
} from '@dirsync/db';
import { createDirsyncClient } from '@dirsync/client';
import { validateSettings } from '@dirsync/providers';
import { requestSync } from '@dirsync/scheduler';
import { createTestDatabase, createTestQueuePrefix, startPgBouncer, testRedisUrl, type PgBouncer, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import { createApiServer } from '../src/index.ts';

// The API's reads through PgBouncer 1.18 in transaction mode with a pool smaller than the number
// of requests at once.

const logger = pino({ level: 'silent' });
let database: TestDatabase;
let bouncer: PgBouncer;
/** Direct connection: setting up rows and checking them, never what is under test. */
let direct: Db;
const pooled: Db[] = [];
let prefix: TestQueuePrefix;
let accountId: string;

function throughBouncer(max: number): Db {
  const db = connect(bouncer.through(database.url), { pgbouncer: true, max, statementTimeoutSeconds: 30 });
  pooled.push(db);
  return db;
}

beforeAll(async () => {
  database = await createTestDatabase('api_pgbouncer');
  bouncer = await startPgBouncer({ poolSize: 3 });
  direct = connect(database.url, { max: 2 });
  prefix = createTestQueuePrefix('api-pgbouncer');
  const [account] = await direct.insert(accounts).values({ name: 'acme' }).returning();
  accountId = account!.id;
});

afterAll(async () => {
  await Promise.all(pooled.map((db) => close(db)));
  await prefix?.cleanup();
  await bouncer?.stop();
  await close(direct);
  await database.drop();
});

async function addIntegration() {
  const [row] = await direct.insert(integrations).values({ accountId, kind: 'ldap', name: 'directory-1', settings: {} }).returning();
  return row!;
}

test('the API reads integrations, runs and directory contents through PgBouncer', async () => {
  const db = throughBouncer(6);
  const ring = createKeyRing({ current: generateSecretKey() });
  const server = await createApiServer({ db, connection: testRedisUrl, prefix: prefix.prefix, logger, keyRing: ring, validateSettings, requestSync });
  const port = await server.listen(0, '127.0.0.1');
  try {
    const integration = await addIntegration();
    const run = await createRun(direct, { integrationId: integration.id, modeRequested: 'full', trigger: 'manual' });
    await startRun(direct, run.id, { mode: 'full', workerId: 'w' });
    // Written with the pipeline's own statements.
    const users = Array.from({ length: 30 }, (_, i) => ({
      externalId: `u${String(i).padStart(2, '0')}`,
      type: 'user',
      dn: `uid=u${i},ou=people,dc=example,dc=org`,
      attributesJson: JSON.stringify({ uid: `u${i}`, cn: `User ${i}` }),
      contentHash: `h${i}`,
    }));
    await writeObjects(direct, integration.id, run.id, [
      ...users,
      { externalId: 'g1', type: 'group', dn: 'cn=g1,ou=groups,dc=example,dc=org', attributesJson: '{"cn":"g1"}', contentHash: 'hg' },
    ]);
    await insertMemberships(direct, integration.id, run.id, [{ groupExternalId: 'g1', memberExternalIds: users.map((u) => u.externalId), membersHash: 'm' }]);
    await finishRun(direct, run.id, { status: 'succeeded', fetched: 31, created: 31 });
    const { token } = await createApiKey(direct, { accountId, name: 'reader', scopes: ['read'], createdBy: 'test' });
    const client = createDirsyncClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: token, timeoutMs: 20_000 });

    // Many reads at once: more requests than PgBouncer has server connections.
    const [list, one, runs, single, firstPage, groups, members] = await Promise.all([
      client.listIntegrations(),
      client.getIntegration(integration.id),
      client.listRuns({ integrationId: integration.id }),
      client.getRun(run.id),
      client.listUsers(integration.id, { limit: 20 }),
      client.listGroups(integration.id),
      client.listMemberships(integration.id, { limit: 100 }),
    ]);
    expect(list.map((i) => i.id)).toContain(integration.id);
    expect(one).toMatchObject({ id: integration.id, name: integration.name });
    expect((runs as { items: { id: string }[] }).items.map((r) => r.id)).toEqual([run.id]);
    expect(single).toMatchObject({ id: run.id, status: 'succeeded', integrationId: integration.id });
    const page = firstPage as { items: { externalId: string }[]; nextCursor: string | null };
    expect(page.items).toHaveLength(20);
    const rest = (await client.listUsers(integration.id, { limit: 20, cursor: page.nextCursor! })) as { items: { externalId: string }[] };
    expect([...page.items, ...rest.items].map((u) => u.externalId).sort()).toEqual(users.map((u) => u.externalId));
    expect((groups as { items: unknown[] }).items).toHaveLength(1);
    expect((members as { items: unknown[] }).items).toHaveLength(30);
  } finally {
    await server.close();
  }
});
