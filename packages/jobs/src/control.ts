import { randomUUID } from 'node:crypto';
import { type Job, Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { z } from 'zod';
import type { RedisConnection } from './enqueue.ts';
import { InvalidJobPayloadError, testConnectionJobSchema, type TestConnectionJobData } from './payloads.ts';
import { CONTROL_QUEUE, DEFAULT_QUEUE_PREFIX, JOB_NAMES } from './queues.ts';
import { failFastRedisOptions, requireReady } from './unavailable.ts';

/** Job names on {@link CONTROL_QUEUE}. */
export const CONTROL_JOB_NAMES = {
  /** Test Connection with the stored secret. */
  testConnection: JOB_NAMES.testConnection,
  /** Test Connection with a new secret waiting in `integration_secret_candidates`. */
  checkSecret: 'check-secret',
  /** Obtain a token for the tenant of an answered admin-consent request and record what it carries. */
  verifyConsent: 'verify-consent',
} as const;

/**
 * Data of a `check-secret` job: the candidate is named by id only, the secret itself stays
 * encrypted in Postgres (job data is readable by anyone with Redis access).
 */
export const checkSecretJobSchema = z.strictObject({
  integrationId: z.uuid(),
  requestId: z.uuid(),
  candidateId: z.uuid(),
  requestedBy: z.string().trim().min(1).max(200).optional(),
});

/** Data of a `check-secret` job. */
export type CheckSecretJobData = z.infer<typeof checkSecretJobSchema>;

/** Validates the data of a `check-secret` job. Throws {@link InvalidJobPayloadError}. */
export function parseCheckSecretJob(data: unknown): CheckSecretJobData {
  const result = checkSecretJobSchema.safeParse(data);
  if (!result.success) throw new InvalidJobPayloadError('check-secret job', result.error);
  return result.data;
}

/**
 * Data of a `verify-consent` job: the consent request is named by its nonce, which the redirect
 * has already used up (it can no longer answer a consent page).
 */
export const verifyConsentJobSchema = z.strictObject({
  requestId: z.uuid(),
  nonce: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
});

/** Data of a `verify-consent` job. */
export type VerifyConsentJobData = z.infer<typeof verifyConsentJobSchema>;

/** Validates the data of a `verify-consent` job. Throws {@link InvalidJobPayloadError}. */
export function parseVerifyConsentJob(data: unknown): VerifyConsentJobData {
  const result = verifyConsentJobSchema.safeParse(data);
  if (!result.success) throw new InvalidJobPayloadError('verify-consent job', result.error);
  return result.data;
}

/** What a `verify-consent` job returns: the outcome it recorded (the worker writes it itself). */
export const consentVerificationResultSchema = z.object({
  outcome: z.enum(['granted', 'denied', 'not_granted', 'confirmation_required', 'failed']),
  detail: z.string().nullable(),
});

/** Result of a `verify-consent` job. */
export type ConsentVerificationResult = z.infer<typeof consentVerificationResultSchema>;

/** One line of a Test Connection checklist, as a control job returns it. */
export const connectionCheckSchema = z.object({
  name: z.string(),
  ok: z.boolean(),
  detail: z.string(),
  warning: z.boolean().optional(),
});

/** What a Test Connection control job returns. */
export const connectionReportSchema = z.object({
  ok: z.boolean(),
  checks: z.array(connectionCheckSchema),
});

/** Result of a Test Connection control job. */
export type ConnectionReportResult = z.infer<typeof connectionReportSchema>;

/** Options every control job is added with: one attempt (the caller waits), short retention. */
export const controlJobOptions = {
  attempts: 1,
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 24 * 3600, count: 1000 },
} as const;

/** Id of the control job answering request `requestId`. */
export function controlJobId(requestId: string): string {
  return `control.${requestId}`;
}

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
  const prefix = options.prefix ?? DEFAULT_QUEUE_PREFIX;
  const onError = options.onError ?? (() => {});
  const extra = options.failFast === true ? failFastRedisOptions : {};
  const redis = typeof options.connection === 'string' ? new Redis(options.connection, extra) : new Redis({ ...options.connection, ...extra });
  // Queue events block on a stream read: they need a connection of their own.
  const eventsRedis =
    typeof options.connection === 'string'
      ? new Redis(options.connection, { maxRetriesPerRequest: null })
      : new Redis({ ...options.connection, maxRetriesPerRequest: null });
  redis.on('error', onError);
  eventsRedis.on('error', onError);
  const queue = new Queue(CONTROL_QUEUE, { connection: redis, prefix });
  const events = new QueueEvents(CONTROL_QUEUE, { connection: eventsRedis, prefix });
  queue.on('error', onError);
  events.on('error', onError);
  let closed = false;

  async function request<T>(name: string, data: Record<string, unknown>, what: string, timeoutMs: number, schema: z.ZodType<T>): Promise<T> {
    if (closed) throw new Error('the control client is closed');
    if (options.failFast === true) {
      requireReady(redis);
      requireReady(eventsRedis);
    }
    await events.waitUntilReady();
    const job: Job = await queue.add(name, data, { ...controlJobOptions, jobId: controlJobId(String(data['requestId'])) });
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
    async testConnection(integrationId, requestOptions) {
      const data: TestConnectionJobData = testConnectionJobSchema.parse({
        integrationId,
        requestId: randomUUID(),
        ...(requestOptions.requestedBy === undefined ? {} : { requestedBy: requestOptions.requestedBy }),
      });
      return request(CONTROL_JOB_NAMES.testConnection, data, 'Test Connection', requestOptions.timeoutMs, connectionReportSchema);
    },
    async checkSecret(integrationId, candidateId, requestOptions) {
      const data = parseCheckSecretJob({
        integrationId,
        candidateId,
        requestId: randomUUID(),
        ...(requestOptions.requestedBy === undefined ? {} : { requestedBy: requestOptions.requestedBy }),
      });
      return request(CONTROL_JOB_NAMES.checkSecret, data, 'Test Connection with the new secret', requestOptions.timeoutMs, connectionReportSchema);
    },
    async verifyConsent(nonce, requestOptions) {
      const data = parseVerifyConsentJob({ requestId: randomUUID(), nonce });
      return request(CONTROL_JOB_NAMES.verifyConsent, data, 'Consent verification', requestOptions.timeoutMs, consentVerificationResultSchema);
    },
    async close() {
      if (closed) return;
      closed = true;
      // After an outage BullMQ's close can wait for a stream read that never returns: each close
      // gets a bound, and the connections are ended below either way.
      const bounded = (closing: Promise<void>) =>
        Promise.race([closing.catch(() => undefined), new Promise<void>((resolve) => setTimeout(resolve, 3_000).unref())]);
      await bounded(events.close());
      await bounded(queue.close());
      for (const connection of [redis, eventsRedis]) {
        if (connection.status !== 'end') await connection.quit().catch(() => connection.disconnect());
      }
    },
  };
}
