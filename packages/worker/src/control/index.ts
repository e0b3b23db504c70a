import type { ConnectionReport as ConnectionReportResult, ConsentVerificationResult, PreviewResult } from '@dirsync/contracts';
import type { Worker } from 'bullmq';
import type { RedisConnection } from '@dirsync/jobs';
import { createQueueWorker, type QueueCheck } from '@dirsync/jobs';
import { createControlProcessor, type ControlProcessorOptions } from './processor.ts';

export { createControlProcessor, type ControlProcessorOptions, withMappedSamples } from './processor.ts';

/** Options of {@link createControlWorker}. */
export interface ControlWorkerOptions extends ControlProcessorOptions {
  /** Redis URL (standalone); `connection` wins when given. */
  readonly redisUrl?: string | undefined;
  /** The installation's Redis settings (cluster mode). */
  readonly connection?: RedisConnection | undefined;
  readonly prefix: string;
  /** Control jobs run at once (they are short and mostly wait on the network). Default 4. */
  readonly concurrency?: number | undefined;
  /** Worker name shown in BullMQ. */
  readonly name?: string | undefined;
}

/** A running control-queue worker. */
export interface ControlWorker {
  readonly worker: Worker<unknown, ConnectionReportResult | ConsentVerificationResult | PreviewResult>;
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
  const connection = options.connection ?? options.redisUrl;
  if (connection === undefined) throw new Error('createControlWorker needs connection or redisUrl');
  // A connection of its own: control jobs must not queue behind the sync workers' commands.
  const control = createQueueWorker<ConnectionReportResult | ConsentVerificationResult | PreviewResult>({
    connection,
    prefix: options.prefix,
    queue: 'control',
    processor: createControlProcessor(options),
    concurrency: Math.max(1, options.concurrency ?? 4),
    name: options.name,
    logger: options.logger,
    errorMessage: 'control worker error',
  });
  return {
    worker: control.workers[0] as Worker<unknown, ConnectionReportResult | ConsentVerificationResult | PreviewResult>,
    state: () => control.state(),
    close: () => control.close(),
  };
}
