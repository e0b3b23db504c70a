// Wire types of the API, inferred by the API package from the zod schemas it serialises its
// answers through: the console never restates a shape by hand.
export type {
  Action,
  ConnectionCheck,
  ConnectionReport,
  Connector,
  ConnectorTenant,
  ConsentUrl,
  ConsoleSessionAnswer,
  CreateConnectorBody,
  CreatedConnector,
  CreateIntegrationBody,
  FieldError as FieldProblem,
  Integration,
  LastRun,
  MigratedIntegration,
  Page,
  Run,
  RunChange,
  RunCounts,
  RunIssue,
  SecretAccepted,
  SyncAnswer,
  UpdateIntegrationBody,
} from '@dirsync/api';
import type { Integration, Run } from '@dirsync/api';

/** Directory kind of an integration. */
export type IntegrationKind = Integration['kind'];
/** Status of a run. */
export type RunStatus = Run['status'];
