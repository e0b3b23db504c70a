/**
 * A worker process for the limits test: its syncs hold their slots and hang (a directory that
 * stops answering), so the test can kill it with SIGKILL while it holds them. Configuration
 * arrives as JSON in the first argument.
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
  leaseMs: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
const db = connect(config.databaseUrl, { max: 4 });
createWorker({
  db,
  redisUrl: config.redisUrl,
  prefix: config.prefix,
  concurrency: 1,
  keyRing: createKeyRing({ current: config.secretKey }),
  logger: pino({ level: 'silent' }),
  workerId: 'doomed-worker',
  createProvider: () => {
    const provider = fixtureDirectory(50, 1, 5);
    provider.hangAtPage = 0;
    return provider;
  },
  controlConcurrency: 0,
  runRotations: false,
  jobLockDurationMs: 1000,
  stalledInterval: 300,
  integrationLock: { ttlMs: 1000, renewEveryMs: 250 },
  syncLimits: { hostConcurrency: 1, leaseMs: config.leaseMs, renewEveryMs: config.leaseMs / 4, retryDelayMs: 100 },
});
process.stdout.write('ready\n');
