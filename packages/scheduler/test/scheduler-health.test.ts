import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pino from 'pino';
import { accounts, close, connect, integrations, type Db } from '@dirsync/db';
import { createTestDatabase, startThrowawayRedis, type TestDatabase, type ThrowawayRedis } from '@dirsync/testkit';
import { createScheduler } from '../src/index.ts';

// A scheduler's health follows its enqueues: not ok while they fail, ok again after one works;
// failures repeated across integrations and ticks are logged once, then summarised.

let database: TestDatabase;
let db: Db;
let accountId: string;
let redis: ThrowawayRedis;
let admin: Redis;

beforeAll(async () => {
  database = await createTestDatabase('scheduler-health');
  db = connect(database.url, { max: 4 });
  const [account] = await db.insert(accounts).values({ name: 'acme' }).returning();
  accountId = account!.id;
  redis = await startThrowawayRedis();
  admin = new Redis(redis.url);
});

afterAll(async () => {
  admin.disconnect();
  await redis.stop();
  await close(db);
  await database.drop();
});

let count = 0;
async function addIntegration() {
  count += 1;
  const [row] = await db.insert(integrations).values({ accountId, kind: 'ldap', name: `directory-${count}`, settings: {} }).returning();
  return row!;
}

test('health turns false while enqueues fail and true after the next one succeeds; repeated failures are logged once', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const scheduler = createScheduler({ db, connection: redis.url, prefix: 'scheduler-health', logger: pino({ level: 'info' }, stream), rotations: false });
  try {
    await addIntegration();
    const first = await scheduler.tick();
    expect(first.enqueued).toHaveLength(1);
    expect(scheduler.health()).toEqual({ ok: true });

    // Redis refuses every write (out of memory): each enqueue fails with an error reply.
    await admin.config('SET', 'maxmemory', '1');
    const failing = [await addIntegration(), await addIntegration(), await addIntegration()];
    for (let i = 0; i < 3; i++) {
      const result = await scheduler.tick();
      expect(result.failed.map((f) => f.integrationId).sort()).toEqual(failing.map((row) => row.id).sort());
    }
    expect(scheduler.health()).toEqual({ ok: false, detail: expect.stringMatching(/OOM/) });
    // Nine failed enqueues, one line: the rest are summarised after the interval.
    expect(lines.filter((line) => line['msg'] === 'could not schedule integration')).toHaveLength(1);

    await admin.config('SET', 'maxmemory', '0');
    const recovered = await scheduler.tick();
    expect(recovered.enqueued).toHaveLength(3);
    expect(scheduler.health()).toEqual({ ok: true });
  } finally {
    await admin.config('SET', 'maxmemory', '0');
    await scheduler.stop();
  }
}, 60_000);
