import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { ConnectionReportResult, ConsentVerificationResult } from '@dirsync/jobs';
import { CONTROL_QUEUE, createRepeatedErrorLog, guardWorker, type QueueCheck } from '@dirsync/jobs';
import { createControlProcessor, type ControlProcessorOptions } from './processor.ts';

export { createControlProcessor, type ControlProcessorOptions } from './processor.ts';

/** Options of {@link createControlWorker}. */
export interface ControlWorkerOptions extends ControlProcessorOptions {
  readonly redisUrl: string;
  readonly prefix: string;
  /** Control jobs run at once (they are short and mostly wait on the network). Default 4. */
  readonly concurrency?: number | undefined;
  /** Worker name shown in BullMQ. */
  readonly name?: string | undefined;
}

/** A running control-queue worker. */
export interface ControlWorker {
  readonly worker: Worker<unknown, ConnectionReportResult | ConsentVerificationResult>;
  /** Whether its queue commands work (not backing off after errors). */
  state(): QueueCheck;
  /** Stops taking jobs, lets running ones finish, closes the connection. */
  close(): Promise<void>;
}

/**
 * Starts a BullMQ worker on the control queue, beside the sync worker of the same process: Test
 * Connection requests never wait behind long syncs.
 */
export function createControlWorker(options: ControlWorkerOptions): ControlWorker {
  const connection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  const worker = new Worker<unknown, ConnectionReportResult | ConsentVerificationResult>(CONTROL_QUEUE, createControlProcessor(options), {
    connection,
    prefix: options.prefix,
    concurrency: Math.max(1, options.concurrency ?? 4),
    ...(options.name === undefined ? {} : { name: options.name }),
  });
  // Errors back off and are logged at a bounded rate (see guardWorker).
  const guard = guardWorker(worker, { log: createRepeatedErrorLog({ logger: options.logger }), message: 'control worker error' });
  let closing: Promise<void> | undefined;
  return {
    worker,
    state: () => guard.state(),
    close() {
      closing ??= (async () => {
        guard.close();
        await worker.close();
        await connection.quit().catch(() => connection.disconnect());
      })();
      return closing;
    },
  };
}
