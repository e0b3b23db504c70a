import type { Command } from 'commander';
import { createProvider } from '@dirsync/providers';
import { createScheduler } from '@dirsync/scheduler';
import { createWorker } from '@dirsync/worker';
import type { Context } from '../context.ts';

type WithContext = (run: (ctx: Context) => Promise<void>) => Promise<void>;

/** Resolves on the first SIGTERM or SIGINT: the signal to finish in-flight work and exit. */
function shutdownSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

/** `dirsync worker` and `dirsync scheduler`: the long-running processes. */
export function registerProcessCommands(program: Command, withContext: WithContext): void {
  program
    .command('worker')
    .description('run a sync worker until SIGTERM (finishes its running jobs first)')
    .action(() =>
      withContext(async (ctx) => {
        const logger = ctx.logger('worker');
        const worker = createWorker({
          db: ctx.db(),
          redisUrl: ctx.config.REDIS_URL,
          prefix: ctx.config.DIRSYNC_QUEUE_PREFIX,
          concurrency: ctx.config.DIRSYNC_WORKER_CONCURRENCY,
          keyRing: ctx.keyRing(),
          logger,
          workerId: ctx.config.DIRSYNC_WORKER_ID,
          createProvider,
        });
        logger.info({ concurrency: ctx.config.DIRSYNC_WORKER_CONCURRENCY }, 'worker started');
        const signal = await shutdownSignal();
        logger.info({ signal }, 'worker stopping: finishing running jobs');
        await worker.close();
        logger.info('worker stopped');
      }),
    );

  program
    .command('scheduler')
    .description('run the scheduler until SIGTERM (replicas are safe: each due sync is enqueued once)')
    .action(() =>
      withContext(async (ctx) => {
        const logger = ctx.logger('scheduler');
        const scheduler = createScheduler({
          db: ctx.db(),
          connection: ctx.config.REDIS_URL,
          prefix: ctx.config.DIRSYNC_QUEUE_PREFIX,
          tickCron: ctx.config.DIRSYNC_SCHEDULER_TICK,
          logger,
        });
        scheduler.start();
        logger.info({ tick: ctx.config.DIRSYNC_SCHEDULER_TICK }, 'scheduler started');
        const signal = await shutdownSignal();
        logger.info({ signal }, 'scheduler stopping');
        await scheduler.stop();
        logger.info('scheduler stopped');
      }),
    );
}
