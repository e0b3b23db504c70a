export { createApiServer, type ApiServer, type ApiServerOptions } from './server.ts';
export type { ApiSyncRequest, SettingsValidation, SettingsValidator, SyncRequester } from './context.ts';
export { problemContentType, type Problem } from './problems.ts';
export { dashboardPath } from './routes/dashboard.ts';
export { actionsFor, withEntraActions, type Action } from './routes/actions.ts';
export { consentCallbackPath } from './routes/connectors.ts';
export * from './ops/index.ts';
