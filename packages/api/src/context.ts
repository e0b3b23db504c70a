import type { SyncMode, SyncTrigger } from '@dirsync/contracts';
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Db, KeyRing, NewCertificateCredential } from '@dirsync/db';
import type { WebhookEnqueueClient } from '@dirsync/jobs';
import type { ControlClient, EnqueueClient, EnqueueSyncResult } from '@dirsync/jobs';

/** The Fastify instance routes are registered on (zod schemas for validation and answers). */
export type ApiApp = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, ZodTypeProvider>;

/** Outcome of a settings check: the settings to store (defaults filled in), or every problem. */
export type SettingsValidation =
  | { readonly ok: true; readonly settings: unknown }
  | { readonly ok: false; readonly problems: readonly string[] };

/**
 * Checks an integration's settings for its kind. The scheduler package may not import the
 * providers (they are the workers' concern), so the process that starts the API passes the
 * providers' own `validateSettings` in: the same check as the CLI, in-process, with no worker.
 */
export type SettingsValidator = (kind: string, settings: unknown) => SettingsValidation;

/** A sync the API asks for (a request of a caller, or the full sync after a new password). */
export interface ApiSyncRequest {
  readonly integrationId: string;
  readonly mode: SyncMode;
  readonly trigger: SyncTrigger;
  readonly dryRun?: boolean;
  readonly requestedBy: string;
}

/**
 * Queues a sync and records its queued run: the scheduler package's `requestSync`, the one way
 * every producer asks for a sync. The API package may not import the scheduler package, so the
 * process that starts the API passes it in, as it does the settings check.
 */
export type SyncRequester = (
  deps: { readonly db: Db; readonly enqueue: Pick<EnqueueClient, 'enqueueSync'> },
  input: ApiSyncRequest,
  options?: {
    /** Runs once the slots already begun are covered, before the job is queued (enabling an integration for its first sync). */
    readonly beforeEnqueue?: () => Promise<void>;
  },
) => Promise<EnqueueSyncResult>;

/**
 * What creating a connector needs from the providers package, which the API package may not
 * import: a fresh certificate (key pair and self-signed certificate) and the hosts of a named
 * Microsoft cloud. The process that starts the API passes the providers' own functions in.
 */
export interface ConnectorTooling {
  generateCertificate(options: { readonly subject: string; readonly validityDays: number }): Promise<NewCertificateCredential>;
  cloudHosts(cloud: 'global' | 'usgov' | 'china'): { readonly authorityHost: string; readonly graphBaseUrl: string };
}

/** What the route handlers use. */
export interface ApiDeps {
  readonly db: Db;
  readonly logger: Logger;
  readonly enqueue: EnqueueClient;
  readonly control: ControlClient;
  /** Needed to store secrets; without it secret routes answer 503. */
  readonly keyRing: KeyRing | undefined;
  readonly validateSettings: SettingsValidator;
  readonly requestSync: SyncRequester;
  /** Needed to create connectors (`POST /v1/connectors`); without it that route answers 503. */
  readonly connectorTooling?: ConnectorTooling | undefined;
  /**
   * The scheduler's jitter cap (`DIRSYNC_SCHEDULER_JITTER_MAX_SECONDS`), so that `nextSyncs` shows
   * the due times the scheduler uses; default the scheduler's default, 0 for none.
   */
  readonly scheduleJitterMaxMs?: number | undefined;
  /** How long Test Connection waits for a worker's answer. */
  readonly controlTimeoutMs: number;
  /** Longest a sync request's `wait` is honoured. */
  readonly syncWaitLimitMs: number;
  /**
   * Webhook drain requests (prompt delivery after a test, a redelivery, an endpoint enabled) and
   * whether endpoints may be `http:` (`DIRSYNC_WEBHOOK_ALLOW_HTTP`).
   */
  readonly webhooks?: { readonly enqueue: WebhookEnqueueClient; readonly allowHttp: boolean } | undefined;
}
