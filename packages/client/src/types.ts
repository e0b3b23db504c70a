// Wire types of the dirsync API (`/v1`), as its OpenAPI document (`/v1/openapi.json`) describes
// them. Dates are RFC 3339 strings.

/** Directory kinds. */
export type IntegrationKind = 'ldap' | 'active_directory' | 'domino' | 'entra_id';
/** Sync modes. */
export type SyncMode = 'full' | 'delta';
/** Run lifecycle states. */
export type RunStatus = 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'blocked' | 'dry_run';
/** What asked for a run. */
export type SyncTrigger = 'schedule' | 'manual' | 'api' | 'password_update' | 'recovery';

/** An integration (never its secret: only whether one is stored). */
export interface Integration {
  id: string;
  accountId: string;
  kind: IntegrationKind;
  name: string;
  description: string;
  enabled: boolean;
  settings: Record<string, unknown>;
  hasSecret: boolean;
  deltaCron: string;
  fullCron: string;
  deleteThresholdCount: number;
  deleteThresholdPercent: number;
  status: string;
  lastRunId: string | null;
  lastSuccessRunId: string | null;
  lastSuccessAt: string | null;
  /** The latest run, whatever its status (null before the first). */
  lastRun: LastRun | null;
  /** Next cron slot of each mode; null when the integration is disabled. */
  nextSyncs: { delta: string | null; full: string | null };
  createdAt: string;
  updatedAt: string;
}

/** The latest run of an integration, as its listing shows it. */
export interface LastRun {
  id: string;
  status: RunStatus;
  /** The mode it runs in (the mode asked for until it starts). */
  mode: SyncMode;
  dryRun: boolean;
  counts: RunCounts;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
}

/** Input of `migrateIntegration`. */
export interface IntegrationMigration {
  connectorId: string;
  /** Required, not blank: the name is carried over. */
  description: string;
}

/** Answer to `migrateIntegration`: the migrated integration and the old app registration to delete. */
export interface MigratedIntegration extends Integration {
  legacyClientId: string;
  tenantId: string;
  /** The full sync queued after the migration; null for a disabled integration. */
  sync: SyncAccepted | null;
}

/** Input of `createIntegration`. */
export interface NewIntegration {
  kind: IntegrationKind;
  name: string;
  description?: string;
  enabled?: boolean;
  settings: Record<string, unknown>;
  /** Stored encrypted without a test; prefer `setSecret`, which tests and resyncs. */
  secret?: string;
  deltaCron?: string;
  fullCron?: string;
  deleteThresholdCount?: number;
  deleteThresholdPercent?: number;
}

/** Input of `updateIntegration` (settings replace the stored ones whole). */
export type IntegrationUpdate = Partial<Omit<NewIntegration, 'kind' | 'secret'>>;

/** One line of a Test Connection checklist. */
export interface ConnectionCheck {
  name: string;
  ok: boolean;
  detail: string;
  warning?: boolean;
}

/** A Test Connection checklist. */
export interface ConnectionReport {
  ok: boolean;
  checks: ConnectionCheck[];
}

/** Answer to a sync request. */
export interface SyncAccepted {
  jobId: string;
  runId: string;
  mode: SyncMode;
  dryRun: boolean;
  /** A sync was already waiting: this is that job and run. */
  deduplicated: boolean;
  /** The waiting delta now runs full. */
  upgraded: boolean;
  /**
   * With `wait`: the run as it stood when the answer came, final (succeeded, failed, blocked,
   * dry_run) or, when the wait ran out, still queued, running or retrying.
   */
  run?: Run;
}

/** Options of `requestSync`. */
export interface SyncRequestOptions {
  /** Default `delta`; the worker may still run it full (no cursor yet, cursor rejected). */
  mode?: SyncMode;
  /** Compute the report and write nothing. */
  dryRun?: boolean;
  /** Seconds (at most 300) to wait for the run to end before answering. */
  wait?: number;
}

/** Answer to `setSecret`. */
export interface SecretAccepted {
  connection: ConnectionReport;
  /** The full sync queued after the change; null for a disabled integration. */
  sync: SyncAccepted | null;
}

/** Counts of a run report. */
export interface RunCounts {
  fetched: number;
  created: number;
  updated: number;
  unchanged: number;
  deleted: number;
  restored: number;
  failed: number;
  membershipsAdded: number;
  membershipsRemoved: number;
  wouldDelete: number;
}

/** A run report. */
export interface Run {
  id: string;
  integrationId: string;
  jobId: string | null;
  modeRequested: SyncMode;
  mode: SyncMode | null;
  trigger: SyncTrigger;
  reason: string | null;
  dryRun: boolean;
  status: RunStatus;
  requestedBy: string | null;
  counts: RunCounts;
  issueCount: number;
  workerId: string | null;
  error: string | null;
  approvedAt: string | null;
  approvedBy: string | null;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  /** Attempts started so far (0 while queued). */
  attempt: number;
  /** Attempts the queue allows; null until the first starts. */
  maxAttempts: number | null;
  /** Error of the latest failed attempt (why a `retrying` run retries). */
  lastError: string | null;
}

/** A page of a list; pass `nextCursor` back as `cursor` for the next one. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Paging of lists. */
export interface PageQuery {
  limit?: number;
  cursor?: string;
}

/** Filter of `listRuns`. */
export interface RunQuery extends PageQuery {
  integrationId?: string;
  status?: RunStatus;
  trigger?: SyncTrigger;
  /** Only runs queued at or after this time. */
  since?: string;
}

/** Filter of the synced-data lists. */
export interface DirectoryQuery extends PageQuery {
  /** Only what changed at or after this time, deletions included. */
  updatedSince?: string;
  /** Default: true with `updatedSince`, false without. */
  includeDeleted?: boolean;
}

/** A per-object issue of a run. */
export interface RunIssue {
  externalId?: string;
  dn?: string;
  reason: string;
}

/** An object a run changed. */
export interface RunChange {
  externalId: string;
  type: string;
  dn: string | null;
  deleted: boolean;
  updatedAt: string;
  change: 'created' | 'updated' | 'deleted';
}

/** A synced user or group. */
export interface DirectoryObject {
  externalId: string;
  type: string;
  dn: string | null;
  attributes: Record<string, unknown>;
  deleted: boolean;
  deletedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

/** A membership edge by external ids. */
export interface Membership {
  groupExternalId: string;
  memberExternalId: string;
  deleted: boolean;
  deletedAt: string | null;
  updatedAt: string;
}

/** Something an administrator should do. */
export interface Action {
  type:
    | 'blocked_run'
    | 'failing'
    | 'credential_failed'
    | 'missing_secret'
    | 'legacy_integration'
    | 'never_synced'
    | 'grant_consent'
    | 'connector_rotation_failed'
    | 'certificate_expiring'
    | 'delete_old_app_registration';
  integrationId: string;
  integrationName: string;
  detail: string;
  runId: string | null;
  since: string | null;
  /** The Entra ID connector concerned (connector and consent actions). */
  connectorId?: string;
  /** Legacy integrations: when they stop syncing; null when no deadline is set. */
  deadline?: string | null;
  /** Legacy integrations: the deadline has passed. */
  overdue?: boolean;
}

/** A connector certificate: public facts only. */
export interface ConnectorCertificate {
  id: string;
  status: 'pending' | 'current' | 'previous' | 'retired' | 'removed' | 'abandoned';
  thumbprint: string;
  thumbprintSha256: string;
  notBefore: string;
  notAfter: string;
  activatedAt: string | null;
  retiredAt: string | null;
  removedAt: string | null;
}

/** Consent of the tenant of one of the account's integrations on a connector. */
export interface ConnectorTenant {
  integrationId: string;
  integrationName: string;
  tenantId: string;
  consentStatus: 'none' | 'pending' | 'granted' | 'denied' | 'revoked';
  grantedAt: string | null;
  error: string | null;
  errorDescription: string | null;
}

/** An Entra ID connector (a platform app registration); never a key or secret. */
export interface Connector {
  id: string;
  name: string;
  description: string;
  clientId: string;
  redirectUri: string;
  permissions: string[];
  rotationCron: string;
  certificateValidityDays: number;
  lastRotation: { at: string | null; status: string | null; error: string | null };
  /** Next slot of the rotation cron. */
  nextRotationAt: string | null;
  /** Failed rotations since the last one that succeeded. */
  rotationFailures: number;
  /** SHA-1 thumbprint of the certificate in use. */
  currentThumbprint: string | null;
  /** Credential history, newest first. */
  certificates: ConnectorCertificate[];
  /** Consent of the tenants of the account's integrations on this connector. */
  tenants: ConnectorTenant[];
}

/** Input of `createConnector` (platform administrators only). */
export interface NewConnector {
  name: string;
  /** Required, not blank. */
  description: string;
  /** Application (client) id of the app registration (GUID). */
  clientId: string;
  /** Object id of the app registration (GUID). */
  objectId: string;
  /** Tenant the app registration lives in (GUID). */
  homeTenant: string;
  /** Default: the API's own /v1/consent/callback as the request reached it. */
  redirectUri?: string;
  cloud?: 'global' | 'usgov' | 'china';
  rotationCron?: string;
  certificateValidityDays?: number;
}

/** Answer to `createConnector`: the connector and its first certificate to upload. */
export interface CreatedConnector extends Connector {
  /** Public certificate (PEM) to upload to the app registration. */
  certificatePem: string;
}

/** An admin-consent URL; its state works once. */
export interface ConsentUrl {
  url: string;
  expiresAt: string;
}

/** RFC 9457 problem details of an error answer. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  errors?: Array<{ in: string; path: string; message: string }>;
  [extension: string]: unknown;
}
