import { z } from 'zod';
import { accountOf, requireScope } from '../auth.ts';
import type { ApiApp, ApiDeps } from '../context.ts';
import { type IntegrationHealthRow, listIntegrationHealth } from '../queries.ts';
import { actionSchema } from '../schemas.ts';
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
  if (row.status === 'blocked_by_threshold') {
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

/** `GET /v1/actions`: what the account's administrators should do. */
export function registerActionRoutes(app: ApiApp, deps: ApiDeps): void {
  app.get('/actions', {
    schema: {
      tags: ['actions'],
      operationId: 'listActions',
      summary: 'Actions needed: blocked or failing integrations, refused or missing credentials, legacy integrations',
      security: bearer,
      response: withProblems({ 200: z.object({ items: z.array(actionSchema) }) }),
    },
    preHandler: requireScope('read'),
    handler: async (request) => {
      const rows = await listIntegrationHealth(deps.db, accountOf(request));
      const now = new Date();
      return { items: rows.flatMap((row) => actionsFor(row, now)) };
    },
  });
}
