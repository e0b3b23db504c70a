// Wire types of the API, inferred from the zod schemas in @dirsync/contracts that the API
// serialises its answers through: the console never restates a shape by hand.
export type {
  Action,
  ConnectionCheck,
  ConnectionReport,
  Connector,
  ConnectorTenant,
  ConsentUrl,
  CreateConnectorBody,
  CreatedConnector,
  CreateIntegrationBody,
  FieldError as FieldProblem,
  Integration,
  IntegrationKind,
  LastRun,
  MigratedIntegration,
  Page,
  Run,
  RunChange,
  RunCounts,
  RunIssue,
  RunStatus,
  SecretAccepted,
  SyncAnswer,
  SyncMode,
  UpdateIntegrationBody,
} from '@dirsync/contracts';
export type { ConsoleSessionAnswer } from '@dirsync/api';
