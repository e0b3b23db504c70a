import { z } from 'zod';
import { type ActionNeeded, type IntegrationHealthRow, listActionsNeeded, listDisabledWebhookEndpoints, listIntegrationHealth, type WebhookEndpointRow } from '@dirsync/db';
import { accountOf, requireScope } from '../auth.ts';
import type { ApiApp, ApiDeps } from '../context.ts';
import { actionSchema } from '@dirsync/contracts';
import { bearer, withProblems } from './common.ts';

/** One entry of the actions list. */
export type Action = z.infer<typeof actionSchema>;

// A new integration gets its first (full) sync within a scheduler tick; one that still has no
// successful run after this long needs a look even if nothing failed outright.
const firstSyncGraceMs = 60 * 60_000;

// Kinds that bind with a service account and so need its password.
const passwordKinds = new Set(['ldap', 'active_directory', 'domino']);

/** The actions an integration needs, most urgent first. Pure: tested with rows. */
export function actionsFor(row: IntegrationHealthRow, now: Date): Action[] {
  const base = { integrationId: row.id, integrationName: row.name };
  const actions: Action[] = [];
  if (row.kind === 'entra_id' && typeof row.settings['legacyApp'] === 'object' && row.settings['legacyApp'] !== null) {
    actions.push({ ...base, type: 'legacy_integration', detail: "uses the customer's own app registration and secret: migrate it to a connector", runId: null, since: row.createdAt });
  }
  if (passwordKinds.has(row.kind) && !row.hasSecret && typeof row.settings['bindDn'] === 'string') {
    actions.push({ ...base, type: 'missing_secret', detail: 'no service-account password is stored: set one (PUT …/secret)', runId: null, since: row.createdAt });
  }
  if (row.status === 'blocked') {
    actions.push({ ...base, type: 'blocked_run', detail: 'the last run would delete more objects than the threshold allows: approve it or raise the threshold', runId: row.lastRunId, since: row.lastRunFinishedAt });
  } else if (row.status === 'failed') {
    const credential = row.lastRunError?.startsWith('auth:') === true;
    actions.push({
      ...base,
      type: credential ? 'credential_failed' : 'failing',
      detail: credential
        ? `the directory refused the credentials: set a new secret (${row.lastRunError ?? ''})`
        : `the last run failed: ${row.lastRunError ?? 'no error recorded'}`,
      runId: row.lastRunId,
      since: row.lastRunFinishedAt,
    });
  } else if (row.enabled && row.lastSuccessAt === null && now.getTime() - Date.parse(row.createdAt) > firstSyncGraceMs) {
    actions.push({ ...base, type: 'never_synced', detail: 'no sync has succeeded since the integration was created', runId: row.lastRunId, since: row.createdAt });
  }
  return actions;
}

const iso = (value: Date | null): string | null => (value === null ? null : value.toISOString());

/**
 * Adds to an account's actions its share of the installation's Entra ID actions
 * (`listActionsNeeded`): the migration deadline on its legacy integrations, consent its tenants
 * have not granted, old app registrations to delete, and the failed rotations and expiring
 * certificates of the connectors its integrations use (one entry per such integration). Other
 * accounts' entries are dropped. Pure: tested with rows.
 */
export function withEntraActions(accountId: string, rows: readonly IntegrationHealthRow[], actions: readonly Action[], needed: readonly ActionNeeded[]): Action[] {
  const merged = actions.map((action) => {
    if (action.type !== 'legacy_integration') return action;
    const legacy = needed.find((n) => n.kind === 'migrate_legacy_integration' && n.integrationId === action.integrationId);
    if (legacy?.kind !== 'migrate_legacy_integration') return action;
    const deadline = iso(legacy.deadline);
    const detail =
      deadline === null
        ? action.detail
        : legacy.overdue
          ? `${action.detail}: the migration deadline ${deadline} has passed, it no longer syncs`
          : `${action.detail} before ${deadline}, when it stops syncing`;
    return { ...action, detail, deadline, overdue: legacy.overdue };
  });
  const usersOf = (connectorId: string) => rows.filter((row) => row.kind === 'entra_id' && row.settings['connectorId'] === connectorId);
  for (const item of needed) {
    switch (item.kind) {
      case 'grant_consent':
        if (item.accountId !== accountId) break;
        merged.push({
          type: 'grant_consent',
          integrationId: item.integrationId,
          integrationName: item.name,
          detail: `tenant ${item.tenantId} has not granted consent to the connector (${item.consentStatus}${item.detail === null ? '' : `: ${item.detail}`}): send its administrator a consent URL (POST /v1/connectors/${item.connectorId}/consent-url)`,
          runId: null,
          since: null,
          connectorId: item.connectorId,
        });
        break;
      case 'delete_old_app_registration':
        if (item.accountId !== accountId) break;
        merged.push({
          type: 'delete_old_app_registration',
          integrationId: item.integrationId,
          integrationName: item.name,
          detail: `migrated to a connector: delete the old app registration (client id ${item.legacyClientId}) in tenant ${item.tenantId}`,
          runId: null,
          since: item.migratedAt.toISOString(),
        });
        break;
      case 'rotation_failed':
        for (const row of usersOf(item.connectorId)) {
          merged.push({
            type: 'connector_rotation_failed',
            integrationId: row.id,
            integrationName: row.name,
            detail: `the certificate rotation of connector "${item.connector}" failed (${item.error}); the platform team has to look at it before the current certificate expires`,
            runId: null,
            since: iso(item.at),
            connectorId: item.connectorId,
          });
        }
        break;
      case 'certificate_expiring':
        for (const row of usersOf(item.connectorId)) {
          merged.push({
            type: 'certificate_expiring',
            integrationId: row.id,
            integrationName: row.name,
            detail: `the current certificate of connector "${item.connector}" expires at ${item.notAfter.toISOString()} and has not been rotated; syncs fail after that`,
            runId: null,
            since: null,
            connectorId: item.connectorId,
          });
        }
        break;
      case 'migrate_legacy_integration':
        // Already an entry of its own integration (legacy_integration), given its deadline above.
        break;
    }
  }
  return merged;
}

/** One entry per disabled webhook endpoint: its events wait until it is enabled again. Pure. */
export function webhookActions(endpoints: readonly WebhookEndpointRow[]): Action[] {
  return endpoints
    .filter((endpoint) => !endpoint.enabled)
    .map((endpoint) => ({
      type: 'webhook_disabled' as const,
      integrationId: null,
      integrationName: endpoint.description === '' ? endpoint.url : endpoint.description,
      detail: `webhook endpoint ${endpoint.url} is disabled (${endpoint.disabledReason ?? 'no reason recorded'}): fix the receiver, then enable it (PATCH /v1/webhooks/${endpoint.id} {"enabled": true}); its events wait meanwhile`,
      runId: null,
      since: endpoint.disabledAt === null ? null : endpoint.disabledAt.toISOString(),
      webhookId: endpoint.id,
    }));
}

/** `GET /v1/actions`: what the account's administrators should do. */
export function registerActionRoutes(app: ApiApp, deps: ApiDeps): void {
  app.get('/actions', {
    schema: {
      tags: ['actions'],
      operationId: 'listActions',
      summary: 'Actions needed: blocked or failing integrations, refused or missing credentials, legacy integrations and their deadline, missing consent, connector certificates',
      security: bearer,
      response: withProblems({ 200: z.object({ items: z.array(actionSchema) }) }),
    },
    preHandler: requireScope('read'),
    handler: async (request) => {
      const accountId = accountOf(request);
      const rows = await listIntegrationHealth(deps.db, accountId);
      const now = new Date();
      const needed = await listActionsNeeded(deps.db, now);
      const webhooks = await listDisabledWebhookEndpoints(deps.db, accountId);
      return { items: [...withEntraActions(accountId, rows, rows.flatMap((row) => actionsFor(row, now)), needed), ...webhookActions(webhooks)] };
    },
  });
}
