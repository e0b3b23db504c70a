import { z } from 'zod';
import { connectionReportSchema } from './jobs.ts';
import type { previewRequestSchema } from './mapping.ts';
import type { createWebhookSchema, updateWebhookSchema, webhookEndpointWithSecretSchema } from './webhooks.ts';
import { consentStatuses, credentialStatuses, integrationKinds, runCountsSchema, runStatuses, syncModes, syncTriggers } from './vocabulary.ts';

// Wire shapes of the HTTP API (`/v1`). The API serialises its answers through these schemas, so a
// field that is not listed here (a secret column, say) can never reach an answer; clients (the
// console, @dirsync/client) are typed from them.

const isoDate = z.iso.datetime({ offset: true }).describe('RFC 3339 date-time');
const nullableDate = isoDate.nullable();

// What PostgreSQL's timestamptz accepts besides RFC 3339's shape: no year 0000, offsets up to
// ±15:59. Checked here so that a date in a query is a 400, never a database error.
const offsetPattern = /([+-])(\d{2}):\d{2}$/;

/** A date-time from a request (query or body): RFC 3339 with an offset, within PostgreSQL's range. */
export const requestDate = z.iso
  .datetime({ offset: true })
  .refine((value) => !value.startsWith('0000-') && Number(offsetPattern.exec(value)?.[2] ?? 0) <= 15, 'must be a date-time from year 0001 with an offset within ±15:59')
  .describe('RFC 3339 date-time');
const cron = z.string().trim().min(1).max(100);

// A secret goes to a customer's server as is: CR, LF or NUL would let it carry commands to a
// server that is not the directory (a URL aimed at Redis), and are never part of a real password.
const secretText = z
  .string()
  .min(1)
  .max(4096)
  .refine((value) => !/[\r\n\0]/.test(value), 'must not contain a carriage return, line feed or NUL character');

/** The RFC 9457 body every error answer has, with dirsync's extension members. */
export const problemSchema = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    errors: z.array(z.object({ in: z.string(), path: z.string(), message: z.string() })).optional(),
  })
  .describe('RFC 9457 problem details');

/** Body of an error answer. */
export type Problem = z.infer<typeof problemSchema>;

/** `{ id }` path parameter: a uuid (anything else is a 400, never a database error). */
export const idParams = z.object({ id: z.guid({ message: 'must be a uuid' }).describe('uuid') });

/** Page of a list: opaque cursor of the next page, null on the last. */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() });
}

/** `limit` and `cursor` query parameters of lists. */
export const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(500).optional(),
});

/** The latest run of an integration, as the integration list shows it. */
export const lastRunSchema = z.object({
  id: z.uuid(),
  status: z.enum(runStatuses),
  mode: z.enum(syncModes).describe('the mode it runs in (the mode asked for until it starts)'),
  dryRun: z.boolean(),
  counts: runCountsSchema,
  queuedAt: isoDate,
  startedAt: nullableDate,
  finishedAt: nullableDate,
  durationMs: z.number().int().nullable(),
});

/** When the scheduler next syncs an integration, per mode. */
export const nextSyncsSchema = z
  .object({
    delta: nullableDate.describe('next delta slot; null when the integration is disabled'),
    full: nullableDate.describe('next full slot ("Sync All"); null when the integration is disabled'),
  })
  .describe("the next slots of the integration's crons, with the scheduler's stable per-integration jitter when it applies one");

/** An integration as the API shows it: configuration and state, never its secret. */
export const integrationSchema = z.object({
  id: z.uuid(),
  accountId: z.uuid(),
  kind: z.enum(integrationKinds),
  name: z.string(),
  description: z.string(),
  enabled: z.boolean(),
  settings: z.record(z.string(), z.unknown()),
  hasSecret: z.boolean().describe('whether a service-account password (or app secret) is stored; the secret itself is never returned'),
  deltaCron: z.string(),
  fullCron: z.string(),
  deleteThresholdCount: z.number().int(),
  deleteThresholdPercent: z.number().int(),
  status: z.string(),
  lastRunId: z.uuid().nullable(),
  lastSuccessRunId: z.uuid().nullable(),
  lastSuccessAt: nullableDate,
  lastRun: lastRunSchema.nullable().describe('the latest run (null before the first)'),
  nextSyncs: nextSyncsSchema,
  createdAt: isoDate,
  updatedAt: isoDate,
});

/** Body of `POST /v1/integrations`. */
export const createIntegrationBody = z.strictObject({
  kind: z.enum(integrationKinds),
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2000).optional(),
  enabled: z.boolean().optional(),
  settings: z.record(z.string(), z.unknown()).describe('per-kind settings, validated by the kind'),
  secret: secretText
    .optional()
    .describe('service-account password, stored encrypted without a test; use PUT …/secret to test, store and resync'),
  deltaCron: cron.optional(),
  fullCron: cron.optional(),
  deleteThresholdCount: z.number().int().min(0).optional(),
  deleteThresholdPercent: z.number().int().min(0).max(100).optional(),
});

/** Body of `PATCH /v1/integrations/{id}`: every field optional; settings replace the stored ones whole. */
export const updateIntegrationBody = createIntegrationBody.omit({ kind: true, secret: true }).partial();

/** Body of `PUT /v1/integrations/{id}/secret`. */
export const setSecretBody = z.strictObject({
  secret: secretText.describe('the new service-account password'),
});

/** Longest `wait` a sync request may ask for (a request held longer outlives most proxies' timeouts). */
export const maxSyncWaitSeconds = 300;

/** Body of `POST /v1/integrations/{id}/syncs`. */
export const syncRequestBody = z.strictObject({
  mode: z.enum(syncModes).default('delta'),
  dryRun: z.boolean().default(false).describe('compute the report and write nothing'),
  wait: z
    .number()
    .int()
    .min(0)
    .max(maxSyncWaitSeconds)
    .optional()
    .describe(
      `seconds (at most ${maxSyncWaitSeconds}) to wait for the run to end: 200 with the run when it ends in time (succeeded, failed, blocked or dry_run), else 202 with the run as it stands (queued, running or retrying)`,
    ),
});

/** What `POST /v1/integrations/{id}/syncs` answers (202). */
export const syncAcceptedSchema = z.object({
  jobId: z.string(),
  runId: z.uuid(),
  mode: z.enum(syncModes),
  dryRun: z.boolean(),
  deduplicated: z.boolean().describe('a sync of this integration was already waiting: this is that job and run'),
  upgraded: z.boolean().describe('the waiting job was a delta and now runs full'),
});

/** What `PUT /v1/integrations/{id}/secret` answers (202). */
export const secretAcceptedSchema = z.object({
  connection: connectionReportSchema,
  sync: syncAcceptedSchema.nullable().describe('the full sync ("Sync All") queued after the change; null for a disabled integration'),
});

/** A run report (without its issues, which are paged). */
export const runSchema = z.object({
  id: z.uuid(),
  integrationId: z.uuid(),
  jobId: z.string().nullable(),
  modeRequested: z.enum(syncModes),
  mode: z.enum(syncModes).nullable(),
  trigger: z.enum(syncTriggers),
  reason: z.string().nullable(),
  dryRun: z.boolean(),
  status: z.enum(runStatuses),
  requestedBy: z.string().nullable(),
  counts: runCountsSchema,
  issueCount: z.number().int(),
  workerId: z.string().nullable(),
  error: z.string().nullable(),
  approvedAt: nullableDate,
  approvedBy: z.string().nullable(),
  queuedAt: isoDate,
  startedAt: nullableDate,
  finishedAt: nullableDate,
  durationMs: z.number().int().nullable(),
  attempt: z.number().int().describe('attempts started so far (0 while queued); a `retrying` run is between attempt `attempt` and the next'),
  maxAttempts: z.number().int().nullable().describe('attempts the queue allows; null until the first starts'),
  lastError: z.string().nullable().describe('error of the latest failed attempt (why a `retrying` run retries); `error` is set only on a failed run'),
});

/** What `POST /v1/integrations/{id}/syncs` answers: 202 (queued, or `wait` ran out) or 200 (ended within `wait`). */
export const syncAnswerSchema = syncAcceptedSchema.extend({
  run: runSchema.optional().describe('with `wait`: the run as it stood when the answer was sent'),
});

/** Query of `GET /v1/runs`. */
export const runsQuery = pageQuery.extend({
  integrationId: z.uuid().optional(),
  status: z.enum(runStatuses).optional(),
  trigger: z.enum(syncTriggers).optional(),
  since: requestDate.optional().describe('only runs queued at or after this time'),
});

/** One per-object issue of a run. */
export const runIssueSchema = z.object({ externalId: z.string().optional(), dn: z.string().optional(), reason: z.string() });

/** A synced user or group. */
export const directoryObjectSchema = z.object({
  externalId: z.string(),
  type: z.string(),
  dn: z.string().nullable(),
  attributes: z.record(z.string(), z.unknown()),
  deleted: z.boolean(),
  deletedAt: nullableDate,
  createdAt: isoDate,
  updatedAt: isoDate,
});

/** A membership edge. */
export const membershipSchema = z.object({
  groupExternalId: z.string(),
  memberExternalId: z.string(),
  deleted: z.boolean(),
  deletedAt: nullableDate,
  updatedAt: isoDate,
});

/** Query of the synced-data lists. */
export const directoryQuery = pageQuery.extend({
  updatedSince: requestDate
    .optional()
    .describe('only what changed at or after this time, deletions included (read a little overlap: changes commit in batches)'),
  includeDeleted: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional()
    .describe('include soft-deleted entries; default true with updatedSince, false without'),
});

/** An object a run changed. */
export const runChangeSchema = directoryObjectSchema.pick({ externalId: true, type: true, dn: true, deleted: true, updatedAt: true }).extend({
  change: z.enum(['created', 'updated', 'deleted']),
});

/** Something an administrator of the account should do. */
export const actionSchema = z.object({
  type: z.enum([
    'blocked_run',
    'failing',
    'credential_failed',
    'missing_secret',
    'legacy_integration',
    'never_synced',
    'grant_consent',
    'connector_rotation_failed',
    'certificate_expiring',
    'delete_old_app_registration',
    'webhook_disabled',
  ]),
  integrationId: z.uuid().nullable().describe('null for actions about no integration (a disabled webhook endpoint)'),
  integrationName: z.string().describe('the integration, or for a webhook endpoint its description or URL'),
  detail: z.string(),
  runId: z.uuid().nullable(),
  since: nullableDate,
  connectorId: z.uuid().optional().describe('the Entra ID connector concerned (connector and consent actions)'),
  webhookId: z.uuid().optional().describe('the webhook endpoint concerned (webhook_disabled)'),
  deadline: nullableDate.optional().describe('legacy integrations: the date after which they stop syncing; null when none is set'),
  overdue: z.boolean().optional().describe('legacy integrations: the migration deadline has passed'),
});

/** A connector certificate: public facts only (the private key never leaves the database). */
export const connectorCertificateSchema = z.object({
  id: z.uuid(),
  status: z.enum(credentialStatuses),
  thumbprint: z.string().describe('SHA-1 thumbprint, as the Entra admin center shows it'),
  thumbprintSha256: z.string(),
  notBefore: isoDate,
  notAfter: isoDate,
  activatedAt: nullableDate,
  retiredAt: nullableDate,
  removedAt: nullableDate,
});

/** Consent of the tenant of one of the account's integrations on a connector. */
export const connectorTenantSchema = z.object({
  integrationId: z.uuid(),
  integrationName: z.string(),
  tenantId: z.string(),
  consentStatus: z.enum(['none', ...consentStatuses]),
  grantedAt: nullableDate,
  error: z.string().nullable(),
  errorDescription: z.string().nullable(),
});

/** An Entra ID connector (a platform app registration) as an account sees it: never a key or secret. */
export const connectorSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  description: z.string(),
  clientId: z.string().describe('application (client) id the customer administrator consents to'),
  redirectUri: z.string(),
  cloud: z.enum(['global', 'usgov', 'china', 'custom']).describe('the Microsoft cloud of the app registration; custom for hand-written hosts (private endpoints)'),
  authorityHost: z.string().describe('token authority; consent URLs point there'),
  graphBaseUrl: z.string().describe('Microsoft Graph of the cloud'),
  permissions: z.array(z.string()).describe('Graph application permissions the consent grants'),
  rotationCron: z.string(),
  certificateValidityDays: z.number().int(),
  lastRotation: z.object({
    at: nullableDate,
    status: z.string().nullable().describe('succeeded or failed; null before the first rotation'),
    error: z.string().nullable(),
  }),
  nextRotationAt: nullableDate.describe('next slot of the rotation cron (UTC)'),
  rotationFailures: z.number().int().describe('failed rotations since the last one that succeeded'),
  currentThumbprint: z.string().nullable().describe('SHA-1 thumbprint of the certificate in use; null when none is current'),
  certificates: z.array(connectorCertificateSchema).describe('credential history, newest first'),
  tenants: z.array(connectorTenantSchema).describe("consent of the tenants of this account's integrations on the connector"),
});

/** Body of `POST /v1/connectors/{id}/consent-url`. */
export const consentUrlBody = z.strictObject({
  tenantId: z.string().trim().min(1).max(255).describe("the customer's tenant (GUID or domain); the consent, once its token shows the permissions, is this account's alone"),
  returnTo: z
    .string()
    .max(2000)
    .optional()
    .describe('a console page (`/console/...`): after the consent the callback answers 303 there with `consent=granted&tenant=<id>` or `consent=failed&reason=...` instead of its own page'),
});

/** What `POST /v1/connectors/{id}/consent-url` answers. */
export const consentUrlSchema = z.object({
  url: z.url().describe("admin-consent URL to send to the tenant's administrator; its state works once"),
  expiresAt: isoDate,
});

/** Body of `POST /v1/integrations/{id}/migrate`. */
export const migrateIntegrationBody = z.strictObject({
  connectorId: z.guid({ message: 'must be a uuid' }).describe('the connector the integration uses from now on'),
  description: z.string().max(2000).describe('description of the migrated integration (required, not blank; the name is carried over)'),
});

/** What `POST /v1/integrations/{id}/migrate` answers: the migrated integration and what to clean up. */
/** Body of `POST /v1/integrations/{id}/enable`. */
export const enableIntegrationBody = z.strictObject({
  sync: z
    .literal('full')
    .optional()
    .describe(
      "queue a full sync as the integration is enabled (a new integration's first sync): the schedule slots already begun count as done before the integration is enabled, so the scheduler queues no sync of its own for them. Only a full: a new integration has no cursor, so any first sync reads the whole directory, and a delta asked for here would leave the full slot to the scheduler",
    ),
});

/** What `POST /v1/integrations/{id}/enable` answers. */
export const enabledIntegrationSchema = integrationSchema.extend({
  sync: syncAcceptedSchema.nullable().describe('the sync queued with `sync`; null without it'),
});

export const migratedIntegrationSchema = integrationSchema.extend({
  legacyClientId: z.string().describe('client id of the old app registration, which the tenant administrator should now delete'),
  tenantId: z.string().describe('the tenant of the old app registration'),
  sync: syncAcceptedSchema.nullable().describe('the full sync queued after the migration; null for a disabled integration'),
});

const guidText = (what: string) =>
  z
    .string()
    .trim()
    .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)')
    .describe(what);

/** Body of `POST /v1/connectors`. */
export const createConnectorBody = z.strictObject({
  name: z.string().max(200).describe('name shown to administrators (required, not blank)'),
  description: z.string().max(2000).describe('what the connector is for (required, not blank)'),
  clientId: guidText('application (client) id of the app registration'),
  objectId: guidText('object id of the app registration (it rolls its own keys)'),
  homeTenant: guidText('tenant the app registration lives in'),
  redirectUri: z
    .url()
    .max(2000)
    .optional()
    .describe('where the admin-consent page sends administrators back (https://, http:// only for localhost); default this API\'s /v1/consent/callback as the request reached it'),
  cloud: z.enum(['global', 'usgov', 'china']).optional().describe('the Microsoft cloud of the app registration (default global)'),
  rotationCron: cron.optional().describe('when the certificate rotates (default daily at 03:00 UTC)'),
  certificateValidityDays: z.number().int().min(2).max(730).optional().describe('validity of each certificate (default 30)'),
});

/** What `POST /v1/connectors` answers (201): the connector and its first certificate to upload. */
export const createdConnectorSchema = connectorSchema.extend({
  certificatePem: z.string().describe('the public certificate (PEM) to upload to the app registration; its private key never leaves the database'),
});

// The wire types, inferred from the schemas above that the API validates requests and serialises
// answers with: a client typed with these cannot drift from what the server sends.
// Answers are the schemas' output; request bodies their input (defaults may be left out).

/** An integration: configuration and state, never its secret (`GET /v1/integrations/{id}`). */
export type Integration = z.output<typeof integrationSchema>;
/** The latest run of an integration, as its listing shows it. */
export type LastRun = z.output<typeof lastRunSchema>;
/** When the scheduler next syncs an integration, per mode. */
export type NextSyncs = z.output<typeof nextSyncsSchema>;
/** A run report (`GET /v1/runs/{id}`). */
export type Run = z.output<typeof runSchema>;
/** An object a run created, updated or deleted (`GET /v1/runs/{id}/changes`). */
export type RunChange = z.output<typeof runChangeSchema>;
/** A per-object issue of a run (`GET /v1/runs/{id}/issues`). */
export type RunIssue = z.output<typeof runIssueSchema>;
/** Something an administrator of the account should do (`GET /v1/actions`). */
export type Action = z.output<typeof actionSchema>;
/** An Entra ID connector as an account sees it (`GET /v1/connectors`). */
export type Connector = z.output<typeof connectorSchema>;
/** A certificate of a connector: public facts only. */
export type ConnectorCertificate = z.output<typeof connectorCertificateSchema>;
/** Consent of one of the account's tenants on a connector. */
export type ConnectorTenant = z.output<typeof connectorTenantSchema>;
/** What `POST /v1/connectors` answers: the connector and the certificate to upload. */
export type CreatedConnector = z.output<typeof createdConnectorSchema>;
/** What `POST /v1/integrations/{id}/syncs` answers when the sync is queued. */
export type SyncAccepted = z.output<typeof syncAcceptedSchema>;
/** What `POST /v1/integrations/{id}/syncs` answers, with the run when `wait` was asked for. */
export type SyncAnswer = z.output<typeof syncAnswerSchema>;
/** What `PUT /v1/integrations/{id}/secret` answers (202). */
export type SecretAccepted = z.output<typeof secretAcceptedSchema>;
/** What `POST /v1/integrations/{id}/enable` answers. */
export type EnabledIntegration = z.output<typeof enabledIntegrationSchema>;
/** What `POST /v1/integrations/{id}/migrate` answers. */
export type MigratedIntegration = z.output<typeof migratedIntegrationSchema>;
/** What `POST /v1/connectors/{id}/consent-url` answers. */
export type ConsentUrl = z.output<typeof consentUrlSchema>;
/** A synced user or group. */
export type DirectoryObject = z.output<typeof directoryObjectSchema>;
/** A synced membership edge. */
export type Membership = z.output<typeof membershipSchema>;
/** One field problem of a validation error (`errors` of a problem). */
export type FieldError = NonNullable<Problem['errors']>[number];
/** A page of a paged list. */
export interface Page<T> {
  readonly items: T[];
  readonly nextCursor: string | null;
}

/** Body of `POST /v1/integrations`. */
export type CreateIntegrationBody = z.input<typeof createIntegrationBody>;
/** Body of `PATCH /v1/integrations/{id}`. */
export type UpdateIntegrationBody = z.input<typeof updateIntegrationBody>;
/** Body of `PUT /v1/integrations/{id}/secret`. */
export type SetSecretBody = z.input<typeof setSecretBody>;
/** Body of `POST /v1/integrations/{id}/syncs`. */
export type SyncRequestBody = z.input<typeof syncRequestBody>;
/** Body of `POST /v1/integrations/{id}/enable`. */
export type EnableIntegrationBody = z.input<typeof enableIntegrationBody>;
/** Body of `POST /v1/integrations/{id}/migrate`. */
export type MigrateIntegrationBody = z.input<typeof migrateIntegrationBody>;
/** Body of `POST /v1/connectors/{id}/consent-url`. */
export type ConsentUrlBody = z.input<typeof consentUrlBody>;
/** Body of `POST /v1/connectors`. */
export type CreateConnectorBody = z.input<typeof createConnectorBody>;
/** Paging of a list, as a client sends it. */
export type PageQuery = Partial<z.output<typeof pageQuery>>;
/** Filter of `GET /v1/runs`, as a client sends it. */
export type RunsQuery = Partial<z.output<typeof runsQuery>>;
/** Filter of the synced-data lists, as a client sends it. */
export type DirectoryQuery = Partial<z.output<typeof directoryQuery>>;
/** Body of `POST /v1/webhooks`. */
export type CreateWebhookBody = z.input<typeof createWebhookSchema>;
/** Body of `PATCH /v1/webhooks/{id}`. */
export type UpdateWebhookBody = z.input<typeof updateWebhookSchema>;
/** A webhook endpoint with its signing secret (answer of create and rotate-secret, shown once). */
export type WebhookEndpointWithSecret = z.output<typeof webhookEndpointWithSecretSchema>;
/** Body of `POST /v1/integrations/{id}/preview`. */
export type PreviewRequestBody = z.input<typeof previewRequestSchema>;
