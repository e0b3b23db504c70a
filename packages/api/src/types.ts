import type { z } from 'zod';
import type { Problem } from './problems.ts';
import type {
  actionSchema,
  connectionReport,
  connectorCertificateSchema,
  connectorSchema,
  connectorTenantSchema,
  consentUrlBody,
  consentUrlSchema,
  createConnectorBody,
  createdConnectorSchema,
  createIntegrationBody,
  directoryObjectSchema,
  integrationSchema,
  lastRunSchema,
  membershipSchema,
  migratedIntegrationSchema,
  migrateIntegrationBody,
  nextSyncsSchema,
  runChangeSchema,
  runIssueSchema,
  runSchema,
  secretAcceptedSchema,
  setSecretBody,
  syncAcceptedSchema,
  syncAnswerSchema,
  syncRequestBody,
  updateIntegrationBody,
} from './schemas.ts';

// The wire types of the API, inferred from the zod schemas it validates requests and serialises
// answers with: a client (the console) typed with these cannot drift from what the server sends.
// Answers are the schemas' output; request bodies their input (defaults may be left out).

/** An integration: configuration and state, never its secret (`GET /v1/integrations/{id}`). */
export type Integration = z.output<typeof integrationSchema>;
/** The latest run of an integration, as its listing shows it. */
export type LastRun = z.output<typeof lastRunSchema>;
/** When the scheduler next syncs an integration, per mode. */
export type NextSyncs = z.output<typeof nextSyncsSchema>;
/** A run report (`GET /v1/runs/{id}`). */
export type Run = z.output<typeof runSchema>;
/** Counts of a run report. */
export type RunCounts = Run['counts'];
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
/** A Test Connection checklist (`POST /v1/integrations/{id}/test-connection`). */
export type ConnectionReport = z.output<typeof connectionReport>;
/** One item of a Test Connection checklist. */
export type ConnectionCheck = ConnectionReport['checks'][number];
/** What `POST /v1/integrations/{id}/syncs` answers when the sync is queued. */
export type SyncAccepted = z.output<typeof syncAcceptedSchema>;
/** What `POST /v1/integrations/{id}/syncs` answers, with the run when `wait` was asked for. */
export type SyncAnswer = z.output<typeof syncAnswerSchema>;
/** What `PUT /v1/integrations/{id}/secret` answers (202). */
export type SecretAccepted = z.output<typeof secretAcceptedSchema>;
/** What `POST /v1/integrations/{id}/migrate` answers. */
export type MigratedIntegration = z.output<typeof migratedIntegrationSchema>;
/** What `POST /v1/connectors/{id}/consent-url` answers. */
export type ConsentUrl = z.output<typeof consentUrlSchema>;
/** A synced user or group. */
export type DirectoryObject = z.output<typeof directoryObjectSchema>;
/** A synced membership edge. */
export type Membership = z.output<typeof membershipSchema>;
/** The body of every error answer (RFC 9457 problem details; `errors` lists field problems). */
export type { Problem };
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
/** Body of `POST /v1/integrations/{id}/migrate`. */
export type MigrateIntegrationBody = z.input<typeof migrateIntegrationBody>;
/** Body of `POST /v1/connectors/{id}/consent-url`. */
export type ConsentUrlBody = z.input<typeof consentUrlBody>;
/** Body of `POST /v1/connectors`. */
export type CreateConnectorBody = z.input<typeof createConnectorBody>;
