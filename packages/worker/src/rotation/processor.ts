import { type Job, UnrecoverableError, type Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { Db, KeyRing } from '@dirsync/db';
import { createQueueWorker, parseRotateConnectorJob, type RedisClient, type RedisConnection } from '@dirsync/jobs';
import type { DestinationPolicy, EntraTokenCache } from '@dirsync/providers';
import { classifyFailure } from '../failure.ts';
import { rotateConnectorCredential, type RotationResult } from './rotate.ts';

/** Dependencies of {@link createRotationProcessor}. */
export interface RotationProcessorOptions {
  readonly db: Db;
  readonly keyRing: KeyRing;
  readonly logger: Logger;
  readonly tokenCache?: EntraTokenCache | undefined;
  readonly sleep?: ((ms: number, signal: AbortSignal) => Promise<void>) | undefined;
  /** Where Graph requests may connect (default: the strict policy). */
  readonly destinations?: DestinationPolicy | undefined;
}

/** What a rotation job returns (stored by BullMQ); never a key. */
export type RotationJobResult =
  | { readonly status: 'rotated'; readonly connectorId: string; readonly thumbprint: string; readonly removed: readonly string[]; readonly removalErrors: readonly string[] }
  | { readonly status: 'skipped'; readonly connectorId: string; readonly reason: string };

function summary(result: RotationResult): RotationJobResult {
  return result.status === 'skipped'
    ? result
    : { status: 'rotated', connectorId: result.connectorId, thumbprint: result.thumbprint, removed: result.removed, removalErrors: result.removalErrors };
}

/**
 * The BullMQ processor of `rotate-connector-credential` jobs: runs the rotation of the job's
 * connector for its slot. Bad credentials, missing consent of the home tenant or bad settings fail
 * at once; anything else (Graph busy, the new key not accepted yet) is retried with backoff while
 * the current key keeps working.
 */
export function createRotationProcessor(options: RotationProcessorOptions) {
  return async function processRotationJob(job: Job): Promise<RotationJobResult> {
    let data;
    try {
      data = parseRotateConnectorJob(job.data);
    } catch (error) {
      throw new UnrecoverableError(classifyFailure(error).message);
    }
    const log = options.logger.child({ jobId: job.id, connectorId: data.connectorId });
    try {
      const result = await rotateConnectorCredential({
        db: options.db,
        keyRing: options.keyRing,
        connectorId: data.connectorId,
        slot: data.scheduledFor === undefined ? null : new Date(data.scheduledFor),
        actor: data.requestedBy ?? (data.trigger === 'schedule' ? 'scheduler' : 'worker'),
        tokenCache: options.tokenCache,
        sleep: options.sleep,
        destinations: options.destinations,
      });
      log.info(summary(result), result.status === 'rotated' ? 'connector certificate rotated' : 'rotation skipped');
      return summary(result);
    } catch (error) {
      const verdict = classifyFailure(error);
      log.warn({ error: verdict.message, retry: verdict.retry }, 'connector certificate rotation failed');
      if (!verdict.retry) throw new UnrecoverableError(verdict.message);
      throw error;
    }
  };
}

/** Options of {@link createRotationWorker}. */
export interface RotationWorkerOptions extends RotationProcessorOptions {
  /** Redis connection (shared with the process's other workers; BullMQ duplicates it for blocking reads). */
  readonly connection: RedisClient;
  /** The installation's Redis settings the connection was opened from (they name the queue). */
  readonly settings?: RedisConnection | undefined;
  readonly prefix: string;
  readonly name?: string | undefined;
}

/** A BullMQ worker on the rotation queue, one rotation at a time per process. */
export function createRotationWorker(options: RotationWorkerOptions): Worker<unknown, RotationJobResult> {
  const rotation = createQueueWorker<RotationJobResult>({
    // Without settings the connection is a standalone one of earlier callers.
    connection: options.settings ?? 'redis://standalone',
    redis: options.connection,
    prefix: options.prefix,
    queue: 'rotation',
    processor: createRotationProcessor(options),
    concurrency: 1,
    name: options.name,
    logger: options.logger,
    errorMessage: 'rotation worker error',
    classify: classifyFailure,
  });
  const worker = rotation.workers[0] as Worker<unknown, RotationJobResult>;
  // The guard ends with the worker (the connection is the caller's).
  worker.once('closing', () => void rotation.close());
  return worker;
}
