import { type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Db, KeyRing } from '@dirsync/db';
import { createRepeatedErrorLog, guardWorker, parseRotateConnectorJob, ROTATION_QUEUE, syncBackoffStrategy } from '@dirsync/jobs';
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
  readonly connection: Redis;
  readonly prefix: string;
  readonly name?: string | undefined;
}

/** A BullMQ worker on the rotation queue, one rotation at a time per process. */
export function createRotationWorker(options: RotationWorkerOptions): Worker<unknown, RotationJobResult> {
  const worker = new Worker<unknown, RotationJobResult>(ROTATION_QUEUE, createRotationProcessor(options), {
    connection: options.connection,
    prefix: options.prefix,
    concurrency: 1,
    settings: { backoffStrategy: syncBackoffStrategy },
    ...(options.name === undefined ? {} : { name: options.name }),
  });
  // Errors back off and are logged at a bounded rate; the guard ends with the worker.
  const guard = guardWorker(worker, { log: createRepeatedErrorLog({ logger: options.logger }), message: 'rotation worker error' });
  worker.once('closing', () => guard.close());
  return worker;
}
