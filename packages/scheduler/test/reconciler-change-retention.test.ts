import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { accounts, changeHead, close, connect, insertObjects, integrations, readChanges, type Db } from '@dirsync/db';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import { createReconciler } from '../src/reconciler.ts';

let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;

beforeAll(async () => {
  database = await createTestDatabase('reconciler_changes');
  db = connect(database.url, { max: 3 });
  prefix = createTestQueuePrefix('reconciler-changes');
});

afterAll(async () => {
  await prefix.cleanup();
  await close(db);
  await database.drop();
});

const user = (externalId: string) => ({ externalId, type: 'user', dn: `uid=${externalId},dc=x`, attributesJson: '{}', contentHash: externalId });

test('a pass prunes change feed entries past retention, and a consumer behind them is told to resync', async () => {
  const [account] = await db.insert(accounts).values({ name: 'feed' }).returning();
  const [integration] = await db.insert(integrations).values({ accountId: account!.id, kind: 'ldap', name: 'd', settings: {} }).returning();
  await insertObjects(db, integration!.id, randomUUID(), [user('a'), user('b')]);
  await insertObjects(db, integration!.id, randomUUID(), [user('c')]);
  await db.$client`update change_batches set published_at = now() - interval '8 days' where account_id = ${account!.id} and last_seq <= 2`;
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const reconciler = createReconciler({
    db,
    connection: testRedisUrl,
    prefix: prefix.prefix,
    logger: pino({ level: 'info' }, stream),
    retention: { runs: { days: 30, keep: 2 }, audit: { days: 365 }, changes: { hours: 168 } },
  });
  try {
    expect((await reconciler.reconcile()).pruned).toEqual({ runs: 0, auditEvents: 0, changes: 2, more: false });
    expect(lines.find((line) => line['msg'] === 'reconciler: pruned old runs and audit events')).toMatchObject({ changes: 2 });
    expect(await changeHead(db, account!.id)).toEqual({ head: '3', prunedThrough: '2' });
    expect(await readChanges(db, account!.id, '0', 10)).toEqual({ refused: 'expired', head: '3' });
    const page = await readChanges(db, account!.id, '2', 10);
    expect('items' in page && page.items.map((item) => item.externalId)).toEqual(['c']);
    expect((await reconciler.reconcile()).pruned).toEqual({ runs: 0, auditEvents: 0, changes: 0, more: false });
  } finally {
    await reconciler.stop();
  }
});
