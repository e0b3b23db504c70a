/**
 * A worker process for the recovery test: it syncs from a directory that stops answering midway,
 * so the test can kill it with SIGKILL in the middle of a sync. Configuration arrives as JSON in
 * the first argument.
 */
import { pino } from 'pino';
import { connect, createKeyRing } from '@dirsync/db';
import { createWorker } from '../../src/worker.ts';
import { fixtureDirectory } from './scripted-provider.ts';

interface ChildConfig {
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
  secretKey: string;
  hangAtPage: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
const db = connect(config.databaseUrl, { max: 4 });
createWorker({
  db,
  redisUrl: config.redisUrl,
  prefix: config.prefix,
  concurrency: 1,
  keyRing: createKeyRing({ current: config.secretKey }),
  // Warnings go to stdout so that a test can see a stale attempt stop.
  logger: pino({ level: 'warn' }),
  workerId: 'doomed-worker',
  createProvider: () => {
    const provider = fixtureDirectory(300, 10, 30);
    provider.pageSize = 50;
    provider.hangAtPage = config.hangAtPage;
    return provider;
  },
  batchSize: 50,
  jobLockDurationMs: 1000,
  // BullMQ's stalled check is shared by the queue's workers (a key with this lifetime), so the
  // test's workers must agree on it like a deployment's do.
  stalledInterval: 300,
  integrationLock: { ttlMs: 1000, renewEveryMs: 250 },
  // The account's sync slot is leased like the lock: a killed child's slot comes back after 1 s,
  // not the default 30 s, before the next worker may start the integration's run.
  syncLimits: { leaseMs: 1000, renewEveryMs: 250 },
});
process.stdout.write('ready\n');
