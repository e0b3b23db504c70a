import { type ConnectionReport as ConnectionReportResult, connectionReportSchema, type ConsentVerificationResult, consentVerificationResultSchema, type TestConnectionJobData, testConnectionJobSchema } from '@dirsync/contracts';
import { type AttributeMapping, type PreviewResult, previewResultSchema } from '@dirsync/contracts';
import { randomUUID } from 'node:crypto';
import { type Job, QueueEvents } from 'bullmq';
import type { z } from 'zod';
import {
  CONTROL_JOB_NAMES,
  controlJobId,
  parseCheckSecretJob,
  parsePreviewJob,
  parseVerifyConsentJob,
} from './control-jobs.ts';
import type { JobKindName } from './job-table.ts';
import { createQueueClient } from './queue-client.ts';
import { closeRedis, openRedis, type RedisConnection } from './redis.ts';
import { requireReady } from './unavailable.ts';

export * from './control-jobs.ts';

/**
 * No answer before the deadline. `taken` tells whether a worker had started the job (it was then
 * left to finish; an untaken job is removed so that a worker arriving late does not run it).
 */
export class ControlTimeoutError extends Error {
  readonly code = 'control_timeout';
  readonly retryable = true;
  readonly taken: boolean;
  constructor(what: string, timeoutMs: number, taken: boolean) {
    const seconds = Math.round(timeoutMs / 100) / 10;
    super(
      taken
        ? `${what}: the worker did not finish within ${seconds} s`
        : `${what}: no worker took the request within ${seconds} s (are workers running on this queue prefix?)`,
    );
    this.name = 'ControlTimeoutError';
    this.taken = taken;
  }
}

/** The worker could not carry out the request (integration gone, secret unusable); one line, no secret. */
export class ControlJobFailedError extends Error {
  readonly code = 'control_failed';
  readonly retryable = false;
  constructor(message: string) {
    super(message);
    this.name = 'ControlJobFailedError';
  }
}

/** Options of {@link createControlClient}. */
export interface ControlClientOptions {
  readonly connection: RedisConnection;
  /** BullMQ key prefix; must match the workers'. */
  readonly prefix?: string;
  readonly onError?: (error: Error) => void;
  /**
   * Fail at once with `QueueUnavailableError` while Redis is not connected, instead of waiting
   * for a reconnect. Default false.
   */
  readonly failFast?: boolean;
}

/** Per-request options. */
export interface ControlRequestOptions {
  /** How long to wait for the answer. */
  readonly timeoutMs: number;
  readonly requestedBy?: string;
}

/** Asks workers to run short jobs (Test Connection, a new password's check) and waits for the answer. */
export interface ControlClient {
  /** Test Connection of an integration with its stored secret. */
  testConnection(integrationId: string, options: ControlRequestOptions): Promise<ConnectionReportResult>;
  /** Test Connection with the candidate secret `candidateId` (see `storeSecretCandidate`). */
  checkSecret(integrationId: string, candidateId: string, options: ControlRequestOptions): Promise<ConnectionReportResult>;
  /** Token check of an answered admin-consent request (see `acceptConsentRedirect`). */
  verifyConsent(nonce: string, options: ControlRequestOptions): Promise<ConsentVerificationResult>;
  /**
   * A few entries of the integration's directory mapped with its attribute mapping, or with
   * `preview.attributeMapping` (validated by the caller) without storing it.
   */
  previewMapping(integrationId: string, preview: { limit: number; attributeMapping?: AttributeMapping | undefined }, options: ControlRequestOptions): Promise<PreviewResult>;
  /** Closes the client's connections. */
  close(): Promise<void>;
}

const waitingStates = new Set(['waiting', 'prioritized', 'delayed', 'waiting-children']);

/**
 * Creates a {@link ControlClient}. Each request is a job on {@link CONTROL_QUEUE} with a fresh
 * id; the answer arrives through BullMQ's queue events, and the job's own state is read too, so
 * an answer that came before the listener is not missed. On the deadline an untaken job is
 * removed and {@link ControlTimeoutError} thrown; a failed job throws {@link ControlJobFailedError}.
 */
export function createControlClient(options: ControlClientOptions): ControlClient {
  const onError = options.onError ?? (() => {});
  const client = createQueueClient({
    connection: options.connection,
    prefix: options.prefix,
    purpose: options.failFast === true ? 'request' : 'client',
    onError,
  });
  const { redis, prefix } = client;
  const queue = client.queueOf('control');
  // Queue events block on a stream read: they need a connection of their own.
  const eventsRedis = openRedis(options.connection, 'blocking', { onError });
  const events = new QueueEvents(queue.name, { connection: eventsRedis, prefix });
  events.on('error', onError);
  let closed = false;

  async function request<T>(kind: JobKindName & ('testConnection' | 'checkSecret' | 'verifyConsent' | 'previewMapping'), data: Record<string, unknown>, what: string, timeoutMs: number, schema: z.ZodType<T>): Promise<T> {
    if (closed) throw new Error('the control client is closed');
    if (options.failFast === true) {
      requireReady(redis);
      requireReady(eventsRedis);
    }
    await events.waitUntilReady();
    const job: Job = await client.add(kind, data as never, { jobId: controlJobId(String(data['requestId'])) });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      const outcome = await Promise.race([job.waitUntilFinished(events, timeoutMs + 1000).then((value: unknown) => ({ value })), deadline]);
      if (outcome === 'timeout') {
        const state = await job.getState();
        if (waitingStates.has(state)) {
          await job.remove().catch(() => undefined);
          throw new ControlTimeoutError(what, timeoutMs, false);
        }
        throw new ControlTimeoutError(what, timeoutMs, true);
      }
      const parsed = schema.safeParse(outcome.value);
      if (!parsed.success) throw new ControlJobFailedError(`${what}: the worker returned an answer of the wrong shape`);
      return parsed.data;
    } catch (error) {
      if (error instanceof ControlTimeoutError || error instanceof ControlJobFailedError) throw error;
      // waitUntilFinished rejects with the job's failed reason, which the worker keeps to one line.
      throw new ControlJobFailedError(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    async previewMapping(integrationId, preview, requestOptions) {
      const data = parsePreviewJob({
        integrationId,
        requestId: randomUUID(),
        limit: preview.limit,
        ...(preview.attributeMapping === undefined ? {} : { attributeMapping: preview.attributeMapping }),
        ...(requestOptions.requestedBy === undefined ? {} : { requestedBy: requestOptions.requestedBy }),
      });
      return request('previewMapping', data, 'Mapping preview', requestOptions.timeoutMs, previewResultSchema);
    },
    async testConnection(integrationId, requestOptions) {
      const data: TestConnectionJobData = testConnectionJobSchema.parse({
        integrationId,
        requestId: randomUUID(),
        ...(requestOptions.requestedBy === undefined ? {} : { requestedBy: requestOptions.requestedBy }),
      });
      return request('testConnection', data, 'Test Connection', requestOptions.timeoutMs, connectionReportSchema);
    },
    async checkSecret(integrationId, candidateId, requestOptions) {
      const data = parseCheckSecretJob({
        integrationId,
        candidateId,
        requestId: randomUUID(),
        ...(requestOptions.requestedBy === undefined ? {} : { requestedBy: requestOptions.requestedBy }),
      });
      return request('checkSecret', data, 'Test Connection with the new secret', requestOptions.timeoutMs, connectionReportSchema);
    },
    async verifyConsent(nonce, requestOptions) {
      const data = parseVerifyConsentJob({ requestId: randomUUID(), nonce });
      return request('verifyConsent', data, 'Consent verification', requestOptions.timeoutMs, consentVerificationResultSchema);
    },
    async close() {
      if (closed) return;
      closed = true;
      // After an outage BullMQ's close can wait for a stream read that never returns: each close
      // gets a bound, and the connections are ended below either way.
      const bounded = (closing: Promise<void>) =>
        Promise.race([closing.catch(() => undefined), new Promise<void>((resolve) => setTimeout(resolve, 3_000).unref())]);
      await bounded(events.close());
      await bounded(client.close());
      await closeRedis(eventsRedis);
      if (redis.status !== 'end') redis.disconnect();
    },
  };
}
