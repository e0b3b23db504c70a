// The console's one way to the API: same-origin requests with the session cookie, the account
// and CSRF headers, and problem+json answers turned into ApiError.
import { ApiError, problemFromResponse } from './problem.ts';
import type {
  Action,
  ConnectionReport,
  Connector,
  ConsentUrl,
  ConsoleSessionAnswer,
  CreateConnectorBody,
  CreatedConnector,
  CreateIntegrationBody,
  EnabledIntegration,
  Integration,
  MigratedIntegration,
  Page,
  Run,
  RunChange,
  RunIssue,
  SecretAccepted,
  SyncAnswer,
  SyncMode,
  UpdateIntegrationBody,
} from './types.ts';

/** What `GET /console/auth/session` answers: the user, the CSRF token, the accounts and roles. */
export type Session = ConsoleSessionAnswer;

/** A role of a signed-in user on an account. */
export type Role = Session['accounts'][number]['role'];

interface RequestContext {
  accountId: string | undefined;
  csrfToken: string | undefined;
  /** Called on any 401: the session ended (expired, signed out elsewhere). */
  onUnauthenticated: () => void;
}

const context: RequestContext = { accountId: undefined, csrfToken: undefined, onUnauthenticated: () => undefined };

/** Sets what every later request carries: the chosen account, the session's CSRF token, the 401 handler. */
export function configureApi(update: Partial<RequestContext>): void {
  Object.assign(context, update);
}

/** Where the console's pages live (the router's basename). */
export const consoleBase = '/console';

async function send<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (context.accountId !== undefined) headers['x-dirsync-account'] = context.accountId;
  if (method !== 'GET' && method !== 'HEAD' && context.csrfToken !== undefined) headers['x-csrf-token'] = context.csrfToken;
  let response: Response;
  try {
    response = await fetch(path, { method, headers, credentials: 'same-origin', ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  } catch {
    throw new ApiError(0, 'network', 'the server cannot be reached: check the connection and try again', [], {});
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const error = problemFromResponse(response.status, response.statusText, parsed);
    if (response.status === 401) context.onUnauthenticated();
    throw error;
  }
  return parsed as T;
}

const enc = encodeURIComponent;

/** The API's routes as the console uses them. */
export const api = {
  session: () => send<Session>('GET', '/console/auth/session'),
  authConfig: () => send<{ oidc: boolean }>('GET', '/console/auth/config'),
  logout: () => send<undefined>('POST', '/console/auth/logout'),

  integrations: () => send<{ items: Integration[] }>('GET', '/v1/integrations'),
  integration: (id: string) => send<Integration>('GET', `/v1/integrations/${enc(id)}`),
  createIntegration: (body: CreateIntegrationBody) => send<Integration>('POST', '/v1/integrations', body),
  updateIntegration: (id: string, patch: UpdateIntegrationBody) => send<Integration>('PATCH', `/v1/integrations/${enc(id)}`, patch),
  setEnabled: (id: string, enabled: boolean) => send<Integration>('POST', `/v1/integrations/${enc(id)}/${enabled ? 'enable' : 'disable'}`),
  /** Enables and queues the first sync in one request, so no scheduled sync of the slots already begun follows it. */
  enableWithFullSync: (id: string) => send<EnabledIntegration>('POST', `/v1/integrations/${enc(id)}/enable`, { sync: 'full' }),
  testConnection: (id: string) => send<ConnectionReport>('POST', `/v1/integrations/${enc(id)}/test-connection`),
  setSecret: (id: string, secret: string) => send<SecretAccepted>('PUT', `/v1/integrations/${enc(id)}/secret`, { secret }),
  sync: (id: string, mode: SyncMode, dryRun = false) => send<SyncAnswer>('POST', `/v1/integrations/${enc(id)}/syncs`, { mode, dryRun }),
  migrate: (id: string, connectorId: string, description: string) => send<MigratedIntegration>('POST', `/v1/integrations/${enc(id)}/migrate`, { connectorId, description }),

  runs: (integrationId: string, limit = 20) => send<Page<Run>>('GET', `/v1/runs?integrationId=${enc(integrationId)}&limit=${limit}`),
  run: (id: string) => send<Run>('GET', `/v1/runs/${enc(id)}`),
  runChanges: (id: string, limit = 500) => send<Page<RunChange>>('GET', `/v1/runs/${enc(id)}/changes?limit=${limit}`),
  runIssues: (id: string, limit = 500) => send<Page<RunIssue>>('GET', `/v1/runs/${enc(id)}/issues?limit=${limit}`),
  approve: (id: string) => send<Run>('POST', `/v1/runs/${enc(id)}/approve`),

  actions: () => send<{ items: Action[] }>('GET', '/v1/actions'),

  connectors: () => send<{ items: Connector[] }>('GET', '/v1/connectors'),
  consentUrl: (connectorId: string, tenantId: string, returnTo: string) =>
    send<ConsentUrl>('POST', `/v1/connectors/${enc(connectorId)}/consent-url`, { tenantId, returnTo }),
  createConnector: (body: CreateConnectorBody) => send<CreatedConnector>('POST', '/v1/connectors', body),
};

/** Whether a role may do what an API scope allows (viewer → read; operator → read, sync; admin → all). */
export function roleAllows(role: Role | undefined, scope: 'read' | 'sync' | 'admin'): boolean {
  if (role === undefined) return false;
  if (scope === 'read') return true;
  if (scope === 'sync') return role === 'operator' || role === 'admin';
  return role === 'admin';
}
