import type {
  Action,
  AuditPage,
  AuditQuery,
  ChangeHead,
  ChangePage,
  ConnectionReport,
  Connector,
  ConsentUrl,
  CreateConnectorBody,
  CreatedConnector,
  CreateIntegrationBody,
  CreateWebhookBody,
  DirectoryObject,
  DirectoryQuery,
  EnabledIntegration,
  EnableIntegrationBody,
  Integration,
  Membership,
  MigratedIntegration,
  MigrateIntegrationBody,
  Page,
  PageQuery,
  PreviewRequestBody,
  PreviewResult,
  Problem,
  Run,
  RunChange,
  RunIssue,
  RunsQuery,
  SecretAccepted,
  SyncAnswer,
  SyncRequestBody,
  UpdateIntegrationBody,
  UpdateWebhookBody,
  WebhookDelivery,
  WebhookEndpoint,
  WebhookEndpointWithSecret,
} from './types.ts';

/** An error answer of the API, with its problem details. */
export class DirsyncApiError extends Error {
  readonly status: number;
  readonly problem: Problem;
  constructor(problem: Problem) {
    super(`${problem.status} ${problem.title}: ${problem.detail}`);
    this.name = 'DirsyncApiError';
    this.status = problem.status;
    this.problem = problem;
  }
}

/**
 * The feed cursor is older than the history the API keeps (410 `cursor-expired`): entries were
 * missed. Read the lists again (users, groups, memberships), then follow from {@link head}.
 */
export class CursorExpiredError extends DirsyncApiError {
  /** The feed's head when the API answered: follow from here after the resync. */
  readonly head: string;
  constructor(problem: Problem, head: string) {
    super(problem);
    this.name = 'CursorExpiredError';
    this.head = head;
  }
}

/** Options of {@link createDirsyncClient}. */
export interface DirsyncClientOptions {
  /** Where the API is served, e.g. `http://dirsync:8080`. */
  readonly baseUrl: string;
  /** An API key (`dsk_…`). */
  readonly apiKey: string;
  /** Per-request deadline (default 60 s; Test Connection and setSecret wait for a worker). */
  readonly timeoutMs?: number;
  /** Another fetch (tests, proxies). */
  readonly fetch?: typeof fetch;
}

/** Typed access to the dirsync API; every method throws {@link DirsyncApiError} for an error answer. */
export interface DirsyncClient {
  listIntegrations(): Promise<Integration[]>;
  createIntegration(input: CreateIntegrationBody): Promise<Integration>;
  getIntegration(id: string): Promise<Integration>;
  updateIntegration(id: string, update: UpdateIntegrationBody): Promise<Integration>;
  disableIntegration(id: string): Promise<Integration>;
  /** Enables scheduled syncs; with `{ sync: 'full' }`, queues the first full sync too, and the scheduler queues none of the slots already begun. */
  enableIntegration(id: string, options?: EnableIntegrationBody): Promise<EnabledIntegration>;
  removeIntegration(id: string): Promise<void>;
  /** Tests the new secret on a worker, stores it, queues a full sync. */
  setSecret(id: string, secret: string): Promise<SecretAccepted>;
  testConnection(id: string): Promise<ConnectionReport>;
  /**
   * Asks for a sync now. With `wait` the answer comes when the run ends (or the wait runs out):
   * `run` is then set, and its `status` tells which.
   */
  requestSync(id: string, request?: SyncRequestBody): Promise<SyncAnswer>;
  listRuns(query?: RunsQuery): Promise<Page<Run>>;
  getRun(id: string): Promise<Run>;
  listRunChanges(id: string, query?: PageQuery): Promise<Page<RunChange>>;
  listRunIssues(id: string, query?: PageQuery): Promise<Page<RunIssue>>;
  approveRun(id: string): Promise<Run>;
  listActions(): Promise<Action[]>;
  listUsers(integrationId: string, query?: DirectoryQuery): Promise<Page<DirectoryObject>>;
  listGroups(integrationId: string, query?: DirectoryQuery): Promise<Page<DirectoryObject>>;
  listMemberships(integrationId: string, query?: DirectoryQuery): Promise<Page<Membership>>;
  listConnectors(): Promise<Connector[]>;
  getConnector(id: string): Promise<Connector>;
  /**
   * Admin-consent URL for a tenant; the consent, once granted, is the account's own. With
   * `returnTo` (a console path) the callback sends the browser back there.
   */
  createConsentUrl(connectorId: string, tenantId: string, options?: { returnTo?: string }): Promise<ConsentUrl>;
  /** Moves a legacy Entra ID integration to a connector (after the tenant's consent) and queues a full sync. */
  migrateIntegration(id: string, migration: MigrateIntegrationBody): Promise<MigratedIntegration>;
  /** Registers a connector (platform administrators only); answers its certificate to upload. */
  createConnector(input: CreateConnectorBody): Promise<CreatedConnector>;
  /** Gives up the account's consent of a tenant (other accounts' consents are not touched). */
  revokeConsent(connectorId: string, tenantId: string): Promise<void>;
  /** Maps a few entries of the directory with the stored attribute mapping, or with `request.attributeMapping` (not stored). */
  previewMapping(id: string, request?: PreviewRequestBody): Promise<PreviewResult>;
  /**
   * One page of the change feed after `after` (`"0"`: from the start). A cursor older than the
   * retained history throws {@link CursorExpiredError}; {@link followChanges} reads page after page.
   */
  listChanges(after: string, options?: { limit?: number }): Promise<ChangePage>;
  /** The feed's latest cursor: read the lists once, then follow the feed from here. */
  getChangeHead(): Promise<ChangeHead>;
  /** The account's audit log, newest first (needs the `admin` scope). */
  listAudit(query?: AuditQuery): Promise<AuditPage>;
  /** Registers a webhook endpoint; the answer carries its signing secret, shown this once. */
  createWebhook(input: CreateWebhookBody): Promise<WebhookEndpointWithSecret>;
  listWebhooks(): Promise<WebhookEndpoint[]>;
  getWebhook(id: string): Promise<WebhookEndpoint>;
  /** Changes an endpoint; `enabled: true` turns a disabled one back on (its failure streak starts over). */
  updateWebhook(id: string, update: UpdateWebhookBody): Promise<WebhookEndpoint>;
  deleteWebhook(id: string): Promise<void>;
  /** A new signing secret, shown this once (the old one stops signing). */
  rotateWebhookSecret(id: string): Promise<WebhookEndpointWithSecret>;
  listWebhookDeliveries(id: string, query?: PageQuery): Promise<Page<WebhookDelivery>>;
  redeliverWebhook(id: string, deliveryId: string): Promise<WebhookDelivery>;
  /** Sends a `webhook.test` event to the endpoint. */
  testWebhook(id: string): Promise<{ messageId: string }>;
}

/** The API operation (OpenAPI `operationId`) behind each client method. */
export const clientOperations = {
  listIntegrations: 'listIntegrations',
  createIntegration: 'createIntegration',
  getIntegration: 'getIntegration',
  updateIntegration: 'updateIntegration',
  disableIntegration: 'disableIntegration',
  enableIntegration: 'enableIntegration',
  removeIntegration: 'removeIntegration',
  setSecret: 'setSecret',
  testConnection: 'testConnection',
  requestSync: 'requestSync',
  listRuns: 'listRuns',
  getRun: 'getRun',
  listRunChanges: 'listRunChanges',
  listRunIssues: 'listRunIssues',
  approveRun: 'approveRun',
  listActions: 'listActions',
  listUsers: 'listUsers',
  listGroups: 'listGroups',
  listMemberships: 'listMemberships',
  listConnectors: 'listConnectors',
  getConnector: 'getConnector',
  createConsentUrl: 'createConsentUrl',
  revokeConsent: 'revokeConsent',
  migrateIntegration: 'migrateIntegration',
  createConnector: 'createConnector',
  previewMapping: 'previewMapping',
  listChanges: 'listChanges',
  getChangeHead: 'getChangeHead',
  listAudit: 'listAudit',
  createWebhook: 'createWebhook',
  listWebhooks: 'listWebhooks',
  getWebhook: 'getWebhook',
  updateWebhook: 'updateWebhook',
  deleteWebhook: 'deleteWebhook',
  rotateWebhookSecret: 'rotateWebhookSecret',
  listWebhookDeliveries: 'listWebhookDeliveries',
  redeliverWebhook: 'redeliverWebhook',
  testWebhook: 'testWebhook',
} as const satisfies Record<keyof DirsyncClient, string>;

type Query = Record<string, string | number | boolean | undefined>;

/** Builds `path?query` with only the defined parameters. */
export function buildPath(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
  const text = params.toString();
  return text === '' ? path : `${path}?${text}`;
}

const id = (value: string) => encodeURIComponent(value);

/**
 * Reads every page of a list, one item at a time:
 * `for await (const user of allPages((cursor) => client.listUsers(id, { cursor }))) …`.
 */
export async function* allPages<T>(fetchPage: (cursor: string | undefined) => Promise<Page<T>>): AsyncGenerator<T> {
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor);
    yield* page.items;
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
}

/** Creates a client for the dirsync API. */
export function createDirsyncClient(options: DirsyncClientOptions): DirsyncClient {
  const base = options.baseUrl.replace(/\/+$/, '');
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 60_000;

  async function call<T>(method: string, path: string, body?: unknown, extraMs = 0): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${options.apiKey}`, accept: 'application/json, application/problem+json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await doFetch(`${base}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs + extraMs),
    });
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    const parsed: unknown = text === '' ? undefined : JSON.parse(text);
    if (!response.ok) {
      const problem =
        typeof parsed === 'object' && parsed !== null && 'detail' in parsed
          ? (parsed as Problem)
          : { type: 'about:blank', title: response.statusText, status: response.status, detail: text.slice(0, 200) };
      throw problem.status === 410 && typeof problem['head'] === 'string' ? new CursorExpiredError(problem, problem['head']) : new DirsyncApiError(problem);
    }
    return parsed as T;
  }

  const directory = (kind: string) => (integrationId: string, query: DirectoryQuery = {}) =>
    call<Page<never>>('GET', buildPath(`/v1/integrations/${id(integrationId)}/${kind}`, { ...query }));

  return {
    listIntegrations: async () => (await call<{ items: Integration[] }>('GET', '/v1/integrations')).items,
    createIntegration: (input) => call('POST', '/v1/integrations', input),
    getIntegration: (integrationId) => call('GET', `/v1/integrations/${id(integrationId)}`),
    updateIntegration: (integrationId, update) => call('PATCH', `/v1/integrations/${id(integrationId)}`, update),
    disableIntegration: (integrationId) => call('POST', `/v1/integrations/${id(integrationId)}/disable`),
    enableIntegration: (integrationId, options) => call('POST', `/v1/integrations/${id(integrationId)}/enable`, options),
    removeIntegration: (integrationId) => call('DELETE', `/v1/integrations/${id(integrationId)}`),
    setSecret: (integrationId, secret) => call('PUT', `/v1/integrations/${id(integrationId)}/secret`, { secret }),
    testConnection: (integrationId) => call('POST', `/v1/integrations/${id(integrationId)}/test-connection`),
    // A waiting request is held by the server for up to `wait` seconds on top of the usual time.
    requestSync: (integrationId, request = {}) => call('POST', `/v1/integrations/${id(integrationId)}/syncs`, request, (request.wait ?? 0) * 1000),
    listRuns: (query = {}) => call('GET', buildPath('/v1/runs', { ...query })),
    getRun: (runId) => call('GET', `/v1/runs/${id(runId)}`),
    listRunChanges: (runId, query = {}) => call('GET', buildPath(`/v1/runs/${id(runId)}/changes`, { ...query })),
    listRunIssues: (runId, query = {}) => call('GET', buildPath(`/v1/runs/${id(runId)}/issues`, { ...query })),
    approveRun: (runId) => call('POST', `/v1/runs/${id(runId)}/approve`),
    listActions: async () => (await call<{ items: Action[] }>('GET', '/v1/actions')).items,
    listUsers: directory('users'),
    listGroups: directory('groups'),
    listMemberships: directory('memberships'),
    listConnectors: async () => (await call<{ items: Connector[] }>('GET', '/v1/connectors')).items,
    getConnector: (connectorId) => call('GET', `/v1/connectors/${id(connectorId)}`),
    createConsentUrl: (connectorId, tenantId, options = {}) =>
      call('POST', `/v1/connectors/${id(connectorId)}/consent-url`, { tenantId, ...(options.returnTo === undefined ? {} : { returnTo: options.returnTo }) }),
    migrateIntegration: (integrationId, migration) => call('POST', `/v1/integrations/${id(integrationId)}/migrate`, migration),
    createConnector: (input) => call('POST', '/v1/connectors', input),
    revokeConsent: async (connectorId, tenantId) => {
      await call('DELETE', `/v1/connectors/${id(connectorId)}/consents/${encodeURIComponent(tenantId)}`);
    },
    previewMapping: (integrationId, request = {}) => call('POST', `/v1/integrations/${id(integrationId)}/preview`, request),
    listChanges: (after, options = {}) => call('GET', buildPath('/v1/changes', { after, limit: options.limit })),
    getChangeHead: () => call('GET', '/v1/changes/head'),
    listAudit: (query = {}) => call('GET', buildPath('/v1/audit', { ...query })),
    createWebhook: (input) => call('POST', '/v1/webhooks', input),
    listWebhooks: async () => (await call<{ items: WebhookEndpoint[] }>('GET', '/v1/webhooks')).items,
    getWebhook: (webhookId) => call('GET', `/v1/webhooks/${id(webhookId)}`),
    updateWebhook: (webhookId, update) => call('PATCH', `/v1/webhooks/${id(webhookId)}`, update),
    deleteWebhook: async (webhookId) => {
      await call('DELETE', `/v1/webhooks/${id(webhookId)}`);
    },
    rotateWebhookSecret: (webhookId) => call('POST', `/v1/webhooks/${id(webhookId)}/rotate-secret`),
    listWebhookDeliveries: (webhookId, query = {}) => call('GET', buildPath(`/v1/webhooks/${id(webhookId)}/deliveries`, { ...query })),
    redeliverWebhook: (webhookId, deliveryId) => call('POST', `/v1/webhooks/${id(webhookId)}/deliveries/${id(deliveryId)}/redeliver`),
    testWebhook: (webhookId) => call('POST', `/v1/webhooks/${id(webhookId)}/test`),
  };
}
