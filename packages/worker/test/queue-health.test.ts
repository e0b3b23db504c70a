import { pino } from 'pino';
import { close, connect, createKeyRing, generateSecretKey, type Db } from '@dirsync/db';
import { createRepeatedErrorLog } from '@dirsync/jobs';
import { createTestDatabase, testRedisUrl, waitFor, type TestDatabase } from '@dirsync/testkit';
import { createReadinessProbe } from '../src/ops/index.ts';
import { createWorker, type DirsyncWorker } from '../src/worker.ts';

// The worker's queue readiness and the bounded error log. A worker against a Redis that fails
// every queue command is measured as a process (cli: process-health), where it can be killed:
// BullMQ's close does not finish while every command fails.

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase('queue-health');
  db = connect(database.url, { max: 2 });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

function startWorker(redisUrl: string, lines: string[]): DirsyncWorker {
  return createWorker({
    db,
    redisUrl,
    prefix: 'dirsync-test-queue-health',
    concurrency: 2,
    keyRing: createKeyRing({ current: generateSecretKey() }),
    logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }),
    workerId: 'queue-health',
  });
}

test('against a working Redis the worker reports its queue ready', async () => {
  const lines: string[] = [];
  const worker = startWorker(testRedisUrl, lines);
  try {
    const report = await waitFor(async () => {
      const r = await createReadinessProbe({ db, queue: () => worker.queueState() })();
      return r.ready ? r : undefined;
    }, { what: 'the worker to be ready' });
    expect(report.checks).toEqual({ database: { ok: true }, redis: { ok: true } });
  } finally {
    await worker.close();
  }
});

test('identical errors are logged once, then summarised once per interval with how many were held back', () => {
  const logged: Array<Record<string, unknown>> = [];
  let now = 0;
  const log = createRepeatedErrorLog({
    logger: { error: (fields, message) => logged.push({ ...fields, message }), warn: () => {} },
    intervalMs: 10_000,
    now: () => now,
  });
  for (let i = 0; i < 1000; i++) {
    now = i * 15;
    log.report('worker error', new Error('MOVED 1234 127.0.0.1:1'));
  }
  log.report('worker error', new Error('Connection is closed.'));
  expect(logged).toEqual([
    { error: 'MOVED 1234 127.0.0.1:1', message: 'worker error' },
    { error: 'MOVED 1234 127.0.0.1:1', message: 'worker error', repeated: 667, periodSeconds: 10 },
    { error: 'Connection is closed.', message: 'worker error' },
  ]);
});
