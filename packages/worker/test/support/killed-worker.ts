import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { close, connect, type Db } from '@dirsync/db';
import { SYNC_QUEUE } from '@dirsync/jobs';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import { createWorker, type CreateWorkerOptions, type DirsyncWorker } from '../../src/worker.ts';

/** The worker process that hangs mid-sync, see `worker-child.ts`. */
export const workerChildScript = fileURLToPath(new URL('./worker-child.ts', import.meta.url));

/**
 * A database, a queue prefix and a sync queue for tests that kill a worker process mid-run and let
 * a worker of the test finish: what the tests share is the process handling, so that a failing
 * test never leaves a child running or a database behind.
 */
export interface KilledWorkerBed {
  readonly database: TestDatabase;
  readonly db: Db;
  readonly prefix: TestQueuePrefix;
  readonly queue: Queue;
  /**
   * Starts a worker process running `script` with `config` as its JSON argument (the database,
   * Redis and queue prefix of the bed added); its stdout is piped, so the caller can wait for it.
   */
  spawnChild(config: Record<string, unknown>, script?: string): ChildProcess;
  /** Starts the in-process worker that takes over; options default to the recovery settings. */
  startRescuer(options: Pick<CreateWorkerOptions, 'keyRing' | 'createProvider'> & Partial<CreateWorkerOptions>): DirsyncWorker;
  /** Closes the in-process worker, if one runs. */
  stopRescuer(): Promise<void>;
  /** Kills the last child if it still runs, then closes everything and drops the database. */
  close(): Promise<void>;
}

/** Creates the bed under a label that names its database and queue prefix. */
export async function startKilledWorkerBed(label: string): Promise<KilledWorkerBed> {
  const database = await createTestDatabase(label);
  const db = connect(database.url, { max: 6 });
  const prefix = createTestQueuePrefix(label);
  const queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
  let child: ChildProcess | undefined;
  let rescuer: DirsyncWorker | undefined;
  const stopRescuer = async () => {
    const running = rescuer;
    rescuer = undefined;
    await running?.close();
  };
  return {
    database,
    db,
    prefix,
    queue,
    spawnChild(config, script = workerChildScript) {
      child = spawn(
        process.execPath,
        [script, JSON.stringify({ databaseUrl: database.url, redisUrl: testRedisUrl, prefix: prefix.prefix, ...config })],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      return child;
    },
    startRescuer(options) {
      rescuer = createWorker({
        db,
        redisUrl: testRedisUrl,
        prefix: prefix.prefix,
        concurrency: 1,
        logger: pino({ level: 'silent' }),
        workerId: 'rescuer',
        stalledInterval: 300,
        lockRetryDelayMs: 100,
        ...options,
      });
      return rescuer;
    },
    stopRescuer,
    async close() {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await stopRescuer();
      await queue.close();
      await prefix.cleanup();
      await close(db);
      await database.drop();
    },
  };
}
