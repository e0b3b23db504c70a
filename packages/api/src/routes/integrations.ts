import { z } from 'zod';
import {
  createIntegration,
  deleteSecretCandidate,
  type IntegrationPatch,
  getConnector,
  type Integration,
  InvalidStateError,
  isLegacyEntraIntegration,
  listIntegrations,
  listLatestRuns,
  migrateLegacyIntegration,
  recordAudit,
  removeIntegration,
  setIntegrationSecret,
  storeSecretCandidate,
  updateIntegration,
} from '@dirsync/db';
import { validateSchedule } from '@dirsync/jobs';
import { accountOf, callerOf, requireScope } from '../auth.ts';
import type { ApiApp, ApiDeps } from '../context.ts';
import { presentIntegration, presentRun } from '../present.ts';
import { notFound, ProblemError } from '../problems.ts';
import { connectionReportSchema as connectionReport, createIntegrationBody, enabledIntegrationSchema, enableIntegrationBody, idParams, type IntegrationKind, integrationSchema, migratedIntegrationSchema, migrateIntegrationBody, problemSchema, secretAcceptedSchema, setSecretBody, syncAnswerSchema, syncRequestBody, updateIntegrationBody } from '@dirsync/contracts';
import { finalRunStatuses, waitForFinalRun } from '../wait-run.ts';
import { bearer, invalidFields, ownIntegration, requireKeyRing, withProblems } from './common.ts';
import { requireTenantConsent } from './connectors.ts';

const tags = ['integrations'];

/** Settings and schedule checked together, so one answer lists every problem (422). */
/** Settings of a legacy Entra ID integration that decide where its requests go. */
const legacyCloudFields = ['legacyApp', 'authorityHost', 'graphBaseUrl', 'caPem'] as const;

/**
 * Legacy Entra ID integrations (the customer's own app registration) exist only to be migrated
 * to a connector: none is created through the API, and an existing one keeps the app, authority,
 * Graph host and CA it has. Otherwise an account could point a worker at hosts of its choosing.
 */
function refuseLegacyClouds(deps: ApiDeps, kind: string, settings: Record<string, unknown> | undefined, stored?: Record<string, unknown>): void {
  if (kind !== 'entra_id' || settings?.['legacyApp'] === undefined) return;
  // Compared with defaults applied on both sides, as the new settings have them.
  const checked = stored === undefined ? undefined : deps.validateSettings(kind, stored);
  const current = checked?.ok ? (checked.settings as Record<string, unknown>) : stored;
  if (current?.['legacyApp'] === undefined) {
    throw new ProblemError(422, 'legacy-integration-refused', 'legacy Entra ID integrations (own app registrations) can no longer be created: create the integration with a connector (settings.connectorId) after the tenant\'s consent');
  }
  const changed = legacyCloudFields.filter((field) => JSON.stringify(settings[field] ?? null) !== JSON.stringify(current[field] ?? null));
  if (changed.length > 0) {
    throw new ProblemError(422, 'legacy-integration-refused', `a legacy Entra ID integration keeps its ${changed.join(', ')}: migrate it to a connector instead`);
  }
}

function checkConfiguration(
  deps: ApiDeps,
  kind: string,
  input: { settings?: Record<string, unknown> | undefined; deltaCron?: string | undefined; fullCron?: string | undefined },
): { settings: Record<string, unknown> | undefined; schedule: { deltaCron?: string; fullCron?: string } } {
  const errors: Array<{ in: string; path: string; message: string }> = [];
  let settings: Record<string, unknown> | undefined;
  if (input.settings !== undefined) {
    const checked = deps.validateSettings(kind, input.settings);
    if (checked.ok) settings = checked.settings as Record<string, unknown>;
    else
      for (const line of checked.problems) {
        const colon = line.indexOf(': ');
        errors.push(
          colon > 0 && !line.slice(0, colon).includes(' ')
            ? { in: 'body', path: `settings.${line.slice(0, colon)}`, message: line.slice(colon + 2) }
            : { in: 'body', path: 'settings', message: line },
        );
      }
  }
  const schedule = validateSchedule({
    ...(input.deltaCron === undefined ? {} : { deltaCron: input.deltaCron }),
    ...(input.fullCron === undefined ? {} : { fullCron: input.fullCron }),
  });
  if (!schedule.ok) for (const problem of schedule.problems) errors.push({ in: 'body', path: problem.field, message: problem.message });
  if (errors.length > 0) {
    const detail = errors.map((e) => `${e.path}: ${e.message}`).join('; ');
    throw new ProblemError(422, 'invalid-configuration', `invalid ${kind} integration: ${detail}`, { extensions: { errors } });
  }
  return {
    settings,
    schedule: schedule.ok
      ? {
          ...(schedule.deltaCron === undefined ? {} : { deltaCron: schedule.deltaCron }),
          ...(schedule.fullCron === undefined ? {} : { fullCron: schedule.fullCron }),
        }
      : {},
  };
}

/** One integration as answered, with its latest run. */
async function presentOne(deps: ApiDeps, integration: Integration) {
  const latest = await listLatestRuns(deps.db, integration.accountId, [integration.id]);
  return presentIntegration(integration, latest.get(integration.id), new Date(), deps.scheduleJitterMaxMs);
}

/** Integrations of the caller's account: CRUD, secret, Test Connection, sync requests, migration. */
export function registerIntegrationRoutes(app: ApiApp, deps: ApiDeps): void {
  const { db } = deps;

  app.get('/integrations', {
    schema: { tags, operationId: 'listIntegrations', summary: "The account's integrations", security: bearer, response: withProblems({ 200: z.object({ items: z.array(integrationSchema) }) }) },
    preHandler: requireScope('read'),
    handler: async (request) => {
      const accountId = accountOf(request);
      const rows = await listIntegrations(db, { accountId });
      const latest = await listLatestRuns(db, accountId);
      const now = new Date();
      return { items: rows.map((row) => presentIntegration(row, latest.get(row.id), now, deps.scheduleJitterMaxMs)) };
    },
  });

  app.post('/integrations', {
    schema: {
      tags,
      operationId: 'createIntegration',
      summary: 'Create an integration (settings validated for its kind)',
      security: bearer,
      body: createIntegrationBody,
      response: withProblems({ 201: integrationSchema, 409: problemSchema, 422: problemSchema, 503: problemSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request, reply) => {
      const accountId = accountOf(request);
      const { actor } = callerOf(request);
      const body = request.body;
      const { settings, schedule } = checkConfiguration(deps, body.kind, body);
      refuseLegacyClouds(deps, body.kind, settings);
      await requireTenantConsent(deps, accountId, body.kind, settings);
      const ring = body.secret === undefined ? undefined : requireKeyRing(deps);
      const integration = await createIntegration(
        db,
        {
          accountId,
          kind: body.kind as IntegrationKind,
          name: body.name,
          settings: settings ?? {},
          ...schedule,
          ...(body.description === undefined ? {} : { description: body.description }),
          ...(body.enabled === undefined ? {} : { enabled: body.enabled }),
          ...(body.deleteThresholdCount === undefined ? {} : { deleteThresholdCount: body.deleteThresholdCount }),
          ...(body.deleteThresholdPercent === undefined ? {} : { deleteThresholdPercent: body.deleteThresholdPercent }),
        },
        ring === undefined || body.secret === undefined ? undefined : { ring, plaintext: body.secret },
      );
      await recordAudit(db, { accountId, integrationId: integration.id, actor, action: 'integration.created', details: { name: integration.name, kind: integration.kind } });
      return reply.code(201).header('location', `/v1/integrations/${integration.id}`).send(presentIntegration(integration, undefined, new Date(), deps.scheduleJitterMaxMs));
    },
  });

  app.get('/integrations/:id', {
    schema: { tags, operationId: 'getIntegration', summary: 'One integration (never its secret)', security: bearer, params: idParams, response: withProblems({ 200: integrationSchema }) },
    preHandler: requireScope('read'),
    handler: async (request) => presentOne(deps, await ownIntegration(deps, request, request.params.id)),
  });

  app.patch('/integrations/:id', {
    schema: {
      tags,
      operationId: 'updateIntegration',
      summary: 'Change configuration (settings are replaced whole and validated); the secret: PUT …/secret',
      security: bearer,
      params: idParams,
      body: updateIntegrationBody,
      response: withProblems({ 200: integrationSchema, 409: problemSchema, 422: problemSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request) => {
      const current = await ownIntegration(deps, request, request.params.id);
      const body = request.body;
      const { settings, schedule } = checkConfiguration(deps, current.kind, body);
      refuseLegacyClouds(deps, current.kind, settings, current.settings as Record<string, unknown>);
      await requireTenantConsent(deps, current.accountId, current.kind, settings);
      const patch: IntegrationPatch = {
        ...schedule,
        ...(settings === undefined ? {} : { settings }),
        ...(body.name === undefined ? {} : { name: body.name }),
        ...(body.description === undefined ? {} : { description: body.description }),
        ...(body.enabled === undefined ? {} : { enabled: body.enabled }),
        ...(body.deleteThresholdCount === undefined ? {} : { deleteThresholdCount: body.deleteThresholdCount }),
        ...(body.deleteThresholdPercent === undefined ? {} : { deleteThresholdPercent: body.deleteThresholdPercent }),
      };
      if (Object.keys(patch).length === 0) throw new ProblemError(400, 'invalid-request', 'nothing to change: send at least one field');
      const updated = await updateIntegration(db, current.id, patch);
      await recordAudit(db, { accountId: current.accountId, integrationId: current.id, actor: callerOf(request).actor, action: 'integration.updated', details: { fields: Object.keys(patch) } });
      return presentOne(deps, updated);
    },
  });

  app.post('/integrations/:id/disable', {
    schema: {
      tags,
      operationId: 'disableIntegration',
      summary: 'Disable: no scheduled or requested syncs until enabled again',
      security: bearer,
      params: idParams,
      response: withProblems({ 200: integrationSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request) => {
      const current = await ownIntegration(deps, request, request.params.id);
      const updated = await updateIntegration(db, current.id, { enabled: false });
      await recordAudit(db, { accountId: current.accountId, integrationId: current.id, actor: callerOf(request).actor, action: 'integration.disabled' });
      return presentOne(deps, updated);
    },
  });

  app.post('/integrations/:id/enable', {
    schema: {
      tags,
      operationId: 'enableIntegration',
      summary: 'Enable scheduled syncs; with `{"sync": "full"}`, queue the first full sync as it is enabled',
      description:
        "Without `sync`, the scheduler queues the integration's syncs from now on (a new integration's first full sync at once). With `{\"sync\": \"full\"}`, this request queues that full sync itself, and the schedule slots already begun count as done from before the integration is enabled: no scheduled sync of them follows it, whenever the scheduler ticks. When the sync cannot be queued, the answer is that error; the integration is enabled all the same and its slots are left to the scheduler, which queues them as for any enabled integration.",
      security: bearer,
      params: idParams,
      body: enableIntegrationBody.nullish(),
      response: withProblems({ 200: enabledIntegrationSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request) => {
      const current = await ownIntegration(deps, request, request.params.id);
      const { actor } = callerOf(request);
      const body = enableIntegrationBody.parse(request.body ?? {});
      let updated = current;
      const enable = async () => {
        updated = await updateIntegration(db, current.id, { enabled: true });
        await recordAudit(db, { accountId: current.accountId, integrationId: current.id, actor, action: 'integration.enabled' });
      };
      if (body.sync === undefined) await enable();
      const sync = body.sync === undefined ? null : await deps.requestSync(deps, { integrationId: current.id, mode: body.sync, trigger: 'api', requestedBy: actor }, { beforeEnqueue: enable });
      return { ...(await presentOne(deps, updated)), sync };
    },
  });

  app.delete('/integrations/:id', {
    schema: {
      tags,
      operationId: 'removeIntegration',
      summary: 'Delete an integration with its runs and synced data',
      security: bearer,
      params: idParams,
      response: withProblems({ 204: z.null().describe('removed') }),
    },
    preHandler: requireScope('admin'),
    handler: async (request, reply) => {
      const current = await ownIntegration(deps, request, request.params.id);
      await removeIntegration(db, current.id);
      await recordAudit(db, { accountId: current.accountId, actor: callerOf(request).actor, action: 'integration.removed', details: { integrationId: current.id, name: current.name } });
      return reply.code(204).send(null);
    },
  });

  app.post('/integrations/:id/test-connection', {
    schema: {
      tags,
      operationId: 'testConnection',
      summary: 'Test Connection on a worker with the stored secret: connect, TLS, bind, bases',
      security: bearer,
      params: idParams,
      response: withProblems({ 200: connectionReport, 502: problemSchema, 504: problemSchema }),
    },
    preHandler: requireScope('sync'),
    handler: async (request) => {
      const integration = await ownIntegration(deps, request, request.params.id);
      return deps.control.testConnection(integration.id, { timeoutMs: deps.controlTimeoutMs, requestedBy: callerOf(request).actor });
    },
  });

  app.put('/integrations/:id/secret', {
    schema: {
      tags,
      operationId: 'setSecret',
      summary: 'Replace the service-account password: tested on a worker, stored encrypted, then a full sync ("Sync All")',
      description: 'When Test Connection fails with the new secret, nothing changes (the old secret stays in use) and the answer is 422 with the checklist in `checks`.',
      security: bearer,
      params: idParams,
      body: setSecretBody,
      response: withProblems({ 202: secretAcceptedSchema, 422: problemSchema, 502: problemSchema, 503: problemSchema, 504: problemSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request, reply) => {
      const integration = await ownIntegration(deps, request, request.params.id);
      const ring = requireKeyRing(deps);
      const { actor } = callerOf(request);
      const candidateId = await storeSecretCandidate(db, ring, integration.id, request.body.secret);
      let connection;
      try {
        connection = await deps.control.checkSecret(integration.id, candidateId, { timeoutMs: deps.controlTimeoutMs, requestedBy: actor });
      } finally {
        // The worker deletes it after the check; this covers a check that never ran.
        await deleteSecretCandidate(db, candidateId);
      }
      if (!connection.ok) {
        throw new ProblemError(422, 'connection-failed', 'the new secret was not stored: Test Connection failed with it (the old secret stays in use)', {
          extensions: { checks: connection.checks },
        });
      }
      await setIntegrationSecret(db, ring, integration.id, request.body.secret);
      await recordAudit(db, { accountId: integration.accountId, integrationId: integration.id, actor, action: 'integration.password_updated' });
      const sync = integration.enabled
        ? await deps.requestSync(deps, { integrationId: integration.id, mode: 'full', trigger: 'password_update', requestedBy: actor })
        : null;
      return reply.code(202).send({ connection, sync });
    },
  });

  app.post('/integrations/:id/syncs', {
    schema: {
      tags: ['syncs'],
      operationId: 'requestSync',
      summary: 'Ask for a sync now; a sync already waiting for the integration absorbs the request',
      description:
        'Answers 202 once the sync is queued. With `wait` (seconds) the answer waits for the run to end: 200 with the final run (succeeded, failed, blocked or dry_run), or 202 with the run still queued, running or retrying when the wait is over (it goes on; follow `Location`).',
      security: bearer,
      params: idParams,
      body: syncRequestBody.optional(),
      response: withProblems({ 200: syncAnswerSchema, 202: syncAnswerSchema, 409: problemSchema }),
    },
    preHandler: requireScope('sync'),
    handler: async (request, reply) => {
      const accountId = accountOf(request);
      const integration = await ownIntegration(deps, request, request.params.id);
      if (!integration.enabled) throw new ProblemError(409, 'integration-disabled', `integration ${integration.id} is disabled: enable it first`);
      const body = syncRequestBody.parse(request.body ?? {});
      const result = await deps.requestSync(deps, { integrationId: integration.id, mode: body.mode, dryRun: body.dryRun, trigger: 'api', requestedBy: callerOf(request).actor });
      reply.header('location', `/v1/runs/${result.runId}`);
      if (body.wait === undefined) return reply.code(202).send(result);
      const run = await waitForFinalRun(deps.db, accountId, result.runId, Math.min(body.wait * 1000, deps.syncWaitLimitMs), () => request.raw.socket.destroyed);
      if (!run) throw notFound(`run ${result.runId}`);
      return reply.code(finalRunStatuses.has(run.status) ? 200 : 202).send({ ...result, run: presentRun(run) });
    },
  });

  app.post('/integrations/:id/migrate', {
    schema: {
      tags,
      operationId: 'migrateIntegration',
      summary: 'Move a legacy Entra ID integration (own app registration) to a connector, then queue a full sync',
      description:
        "The name is carried over, the description replaced (required), the old client secret erased. Needs the account's granted consent of the integration's tenant to the connector (409 otherwise). The answer names the old app registration (`legacyClientId`, `tenantId`) for its administrator to delete.",
      security: bearer,
      params: idParams,
      body: migrateIntegrationBody,
      response: withProblems({ 200: migratedIntegrationSchema, 409: problemSchema, 422: problemSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request) => {
      const integration = await ownIntegration(deps, request, request.params.id);
      const { actor } = callerOf(request);
      const { connectorId, description } = request.body;
      if (description.trim() === '') {
        throw invalidFields([['description', 'must not be blank (the migrated integration keeps its name and needs a description)']]);
      }
      if (!isLegacyEntraIntegration(integration)) {
        throw new ProblemError(409, 'not-legacy-integration', `integration "${integration.name}" is not a legacy Entra ID integration: there is nothing to migrate`);
      }
      const connector = await getConnector(db, connectorId);
      if (!connector) {
        throw invalidFields([['connectorId', `no connector ${connectorId}`]]);
      }
      let result;
      try {
        // Records the audit event in the same transaction as the switch.
        result = await migrateLegacyIntegration(db, { integrationId: integration.id, connectorId: connector.id, description, actor });
      } catch (error) {
        if (!(error instanceof InvalidStateError)) throw error;
        const tenant = typeof integration.settings['tenantId'] === 'string' ? integration.settings['tenantId'] : '';
        throw new ProblemError(
          409,
          'tenant-consent-required',
          `this account holds no granted consent of tenant ${tenant} to connector "${connector.name}": ask for a consent URL (POST /v1/connectors/${connector.id}/consent-url) and have the tenant's administrator grant it, then migrate`,
        );
      }
      const migrated = await ownIntegration(deps, request, integration.id);
      const sync = migrated.enabled ? await deps.requestSync(deps, { integrationId: migrated.id, mode: 'full', trigger: 'api', requestedBy: actor }) : null;
      return { ...(await presentOne(deps, migrated)), legacyClientId: result.legacyClientId, tenantId: result.tenantId, sync };
    },
  });
}
