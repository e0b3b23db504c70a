import { close, connect, createKeyRing, type Db, type KeyRing } from '@dirsync/db';
import type { EnqueueClient } from '@dirsync/jobs';
import { DestinationPolicy, platformEndpointsOf } from '@dirsync/providers';
import pino, { type Logger } from 'pino';
import { databasePoolOptions, loadConfig, redisSettingsOf, type Config } from './config.ts';
import { UserError } from './errors.ts';
import { jobsPackage } from './packages.ts';

/**
 * Resources a command may need, opened on first use and closed together, so that a command that
 * only prints help never connects anywhere.
 */
export interface Context {
  readonly config: Config;
  db(): Db;
  keyRing(): KeyRing;
  /** The queue's producer, opened on first use (BullMQ and the Redis client load then). */
  enqueue(): Promise<EnqueueClient>;
  /**
   * Where this process may connect to customers' systems: public addresses, the networks of
   * DIRSYNC_ALLOWED_NETWORKS, never this installation's own Redis and PostgreSQL.
   */
  destinations(): DestinationPolicy;
  logger(name: string): Logger;
  /**
   * Names the process in PostgreSQL's `pg_stat_activity` (`application_name`): a long-running
   * process calls it before its first use of {@link Context.db}; commands stay `dirsync-cli`.
   */
  setRole(role: ProcessRole): void;
  close(): Promise<void>;
}

/** What a dirsync process is, as `application_name` shows it. */
export type ProcessRole = 'dirsync-worker' | 'dirsync-scheduler' | 'dirsync-api' | 'dirsync-cli';

/** How long a command waits for Redis to answer before it reports the queue unreachable. */
export const COMMAND_QUEUE_WAIT_MS = 10_000;

/** Creates the command context from the environment (parsed once here). */
export function createContext(env: Record<string, string | undefined> = process.env): Context {
  const config = loadConfig(env);
  let db: Db | undefined;
  let ring: KeyRing | undefined;
  let enqueue: Promise<EnqueueClient> | undefined;
  let destinations: DestinationPolicy | undefined;
  let role: ProcessRole = 'dirsync-cli';
  const root = pino({
    level: config.LOG_LEVEL,
    // Secrets never reach the logs, even when an object carrying one is logged by mistake.
    redact: { paths: ['*.password', '*.secret', '*.bindPassword', 'password', 'secret'], censor: '[redacted]' },
  });
  return {
    config,
    db() {
      db ??= connect(config.DATABASE_URL, { applicationName: role, ...databasePoolOptions(config) });
      return db;
    },
    keyRing() {
      if (!config.DIRSYNC_SECRET_KEY) {
        throw new UserError('DIRSYNC_SECRET_KEY is not set: create one with `dirsync secrets generate-key` and export it');
      }
      ring ??= createKeyRing({ current: config.DIRSYNC_SECRET_KEY, previous: config.DIRSYNC_SECRET_KEYS_PREVIOUS });
      return ring;
    },
    enqueue() {
      // A command says the queue cannot be reached rather than wait for Redis for ever.
      enqueue ??= jobsPackage().then(({ createEnqueueClient }) =>
        createEnqueueClient({ connection: redisSettingsOf(config), prefix: config.DIRSYNC_QUEUE_PREFIX, readyTimeoutMs: COMMAND_QUEUE_WAIT_MS }),
      );
      return enqueue;
    },
    destinations() {
      destinations ??= new DestinationPolicy({
        allowedNetworks: config.DIRSYNC_ALLOWED_NETWORKS,
        platformEndpoints: platformEndpointsOf({ redisUrl: config.REDIS_URL, databaseUrl: config.DATABASE_URL }),
      });
      return destinations;
    },
    logger(name) {
      return root.child({ component: name });
    },
    setRole(next) {
      // The pool is opened once; a name given afterwards would silently not apply.
      if (db) throw new Error('setRole must be called before the database is first used');
      role = next;
    },
    async close() {
      // A client that failed to open has nothing to close; its error reached the command already.
      await (await enqueue?.catch(() => undefined))?.close();
      if (db) await close(db);
    },
  };
}
