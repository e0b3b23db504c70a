export { createApiServer, type ApiServer, type ApiServerOptions } from './server.ts';
export type { ApiSyncRequest, ConnectorTooling, SettingsValidation, SettingsValidator, SyncRequester } from './context.ts';
export { problemContentType } from './problems.ts';
export { dashboardPath } from './routes/dashboard.ts';
export { actionsFor, withEntraActions } from './routes/actions.ts';
export { consentCallbackPath } from './routes/connectors.ts';
export * from './ops/index.ts';
export type {
  Action,
  ConnectionCheck,
  ConnectionReport,
  Connector,
  ConnectorCertificate,
  ConnectorTenant,
  ConsentUrl,
  ConsentUrlBody,
  CreateConnectorBody,
  CreatedConnector,
  CreateIntegrationBody,
  DirectoryObject,
  FieldError,
  Integration,
  LastRun,
  Membership,
  MigratedIntegration,
  MigrateIntegrationBody,
  NextSyncs,
  Page,
  Problem,
  Run,
  RunChange,
  RunCounts,
  RunIssue,
  SecretAccepted,
  SetSecretBody,
  SyncAccepted,
  SyncAnswer,
  SyncRequestBody,
  UpdateIntegrationBody,
} from './types.ts';
export type { Caller } from './auth.ts';
export { accountHeader, csrfHeader } from './auth.ts';
export { consoleAuthPaths, consoleContentSecurityPolicy, mapRolesClaim, type ApiConsoleOptions, type ConsoleOidcSettings, type ConsoleSessionAnswer } from './console/index.ts';
