import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { createWebhookSchema, idParams, problemSchema, updateWebhookSchema, webhookDeliverySchema, webhookEndpointSchema, webhookEndpointWithSecretSchema, webhookTestAcceptedSchema, webhookUrlProblem } from '@dirsync/contracts';
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  getWebhookEndpoint,
  listWebhookDeliveries,
  listWebhookEndpoints,
  recordAudit,
  recordWebhookEvent,
  redeliverWebhookDelivery,
  rotateWebhookSecret,
  updateWebhookEndpoint,
  webhookMessageId,
  type WebhookDeliveryRow,
  type WebhookEndpointRow,
} from '@dirsync/db';
import { accountOf, callerOf, requireScope } from '../auth.ts';
import type { ApiApp, ApiDeps } from '../context.ts';
import { notFound } from '../problems.ts';
import { bearer, invalidFields, requireKeyRing, withProblems } from './common.ts';

const tags = ['webhooks'];

/** An endpoint as the API shows it: never its secret. */
export function presentWebhookEndpoint(endpoint: WebhookEndpointRow): z.infer<typeof webhookEndpointSchema> {
  return {
    id: endpoint.id,
    url: endpoint.url,
    events: [...endpoint.events],
    description: endpoint.description,
    enabled: endpoint.enabled,
    disabledReason: endpoint.disabledReason,
    failureStreak: endpoint.failureStreak,
    createdAt: endpoint.createdAt.toISOString(),
    updatedAt: endpoint.updatedAt.toISOString(),
  };
}

function presentDelivery(delivery: WebhookDeliveryRow): z.infer<typeof webhookDeliverySchema> {
  return {
    id: delivery.id,
    endpointId: delivery.endpointId,
    messageId: delivery.messageId,
    eventType: delivery.eventType,
    status: delivery.status,
    attempts: delivery.attempts,
    lastStatusCode: delivery.lastStatusCode,
    lastError: delivery.lastError,
    nextAttemptAt: delivery.nextAttemptAt?.toISOString() ?? null,
    deliveredAt: delivery.deliveredAt?.toISOString() ?? null,
    createdAt: delivery.createdAt.toISOString(),
  };
}

const deliveryParams = z.object({
  id: z.guid({ message: 'must be a uuid' }).describe('uuid'),
  deliveryId: z.guid({ message: 'must be a uuid' }).describe('uuid'),
});
const deliveriesQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.guid({ message: 'must be a delivery id' }).optional().describe('the nextCursor of the previous page'),
});

/**
 * `/v1/webhooks`: the account's signed-webhook endpoints, their deliveries, redelivery and a
 * test event. Reads need `read`, changes `admin`; another account's endpoints read as absent.
 */
export function registerWebhookRoutes(app: ApiApp, deps: ApiDeps): void {
  const { db } = deps;
  const allowHttp = deps.webhooks?.allowHttp ?? false;

  function checkUrl(url: string | undefined): void {
    if (url === undefined) return;
    const problem = webhookUrlProblem(url, { allowHttp });
    if (problem !== undefined) throw invalidFields([['url', problem]]);
  }

  async function ownEndpoint(request: FastifyRequest, id: string): Promise<WebhookEndpointRow> {
    const endpoint = await getWebhookEndpoint(db, accountOf(request), id);
    if (!endpoint) throw notFound(`webhook ${id}`);
    return endpoint;
  }

  // A drain request only makes delivery prompt: a sweep of the workers finds what is due anyway,
  // so a Redis hiccup here is logged, not answered as a failure of what was already stored.
  async function drainSoon(request: FastifyRequest, endpointIds: readonly string[]): Promise<void> {
    if (endpointIds.length === 0 || !deps.webhooks) return;
    await deps.webhooks.enqueue.drain(endpointIds).catch((error: unknown) => {
      request.log.warn({ error: error instanceof Error ? error.message : String(error) }, 'webhook drain request not queued; the sweep will deliver');
    });
  }

  app.post('/webhooks', {
    schema: {
      tags,
      operationId: 'createWebhook',
      summary: 'Add a webhook endpoint; the answer holds its signing secret, shown this once',
      security: bearer,
      body: createWebhookSchema,
      response: withProblems({ 201: webhookEndpointWithSecretSchema, 409: problemSchema, 422: problemSchema, 503: problemSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request, reply) => {
      const accountId = accountOf(request);
      checkUrl(request.body.url);
      const ring = requireKeyRing(deps, 'webhook secrets cannot be stored');
      const { endpoint, secret } = await createWebhookEndpoint(db, ring, { accountId, url: request.body.url, events: request.body.events, description: request.body.description });
      await recordAudit(db, { accountId, actor: callerOf(request).actor, action: 'webhook.created', details: { webhookId: endpoint.id, events: endpoint.events } });
      return reply.code(201).header('location', `/v1/webhooks/${endpoint.id}`).send({ ...presentWebhookEndpoint(endpoint), secret });
    },
  });

  app.get('/webhooks', {
    schema: { tags, operationId: 'listWebhooks', summary: "The account's webhook endpoints (never their secrets)", security: bearer, response: withProblems({ 200: z.object({ items: z.array(webhookEndpointSchema) }) }) },
    preHandler: requireScope('read'),
    handler: async (request) => ({ items: (await listWebhookEndpoints(db, accountOf(request))).map(presentWebhookEndpoint) }),
  });

  app.get('/webhooks/:id', {
    schema: { tags, operationId: 'getWebhook', summary: 'A webhook endpoint', security: bearer, params: idParams, response: withProblems({ 200: webhookEndpointSchema }) },
    preHandler: requireScope('read'),
    handler: async (request) => presentWebhookEndpoint(await ownEndpoint(request, request.params.id)),
  });

  app.patch('/webhooks/:id', {
    schema: {
      tags,
      operationId: 'updateWebhook',
      summary: 'Change an endpoint; enabling it resets its failure streak and delivers what waited',
      security: bearer,
      params: idParams,
      body: updateWebhookSchema,
      response: withProblems({ 200: webhookEndpointSchema, 422: problemSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request) => {
      const accountId = accountOf(request);
      checkUrl(request.body.url);
      const endpoint = await updateWebhookEndpoint(db, accountId, request.params.id, request.body);
      if (!endpoint) throw notFound(`webhook ${request.params.id}`);
      await recordAudit(db, { accountId, actor: callerOf(request).actor, action: 'webhook.updated', details: { webhookId: endpoint.id, changed: Object.keys(request.body) } });
      if (request.body.enabled === true) await drainSoon(request, [endpoint.id]);
      return presentWebhookEndpoint(endpoint);
    },
  });

  app.delete('/webhooks/:id', {
    schema: { tags, operationId: 'deleteWebhook', summary: 'Remove an endpoint and its deliveries', security: bearer, params: idParams, response: withProblems({ 204: z.null() }) },
    preHandler: requireScope('admin'),
    handler: async (request, reply) => {
      const accountId = accountOf(request);
      if (!(await deleteWebhookEndpoint(db, accountId, request.params.id))) throw notFound(`webhook ${request.params.id}`);
      await recordAudit(db, { accountId, actor: callerOf(request).actor, action: 'webhook.deleted', details: { webhookId: request.params.id } });
      return reply.code(204).send(null);
    },
  });

  app.post('/webhooks/:id/rotate-secret', {
    schema: {
      tags,
      operationId: 'rotateWebhookSecret',
      summary: 'Replace the signing secret; the answer holds the new one, shown this once (the old one stops signing at once)',
      security: bearer,
      params: idParams,
      response: withProblems({ 200: webhookEndpointWithSecretSchema, 503: problemSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request) => {
      const accountId = accountOf(request);
      const ring = requireKeyRing(deps, 'webhook secrets cannot be stored');
      const secret = await rotateWebhookSecret(db, ring, accountId, request.params.id);
      if (secret === undefined) throw notFound(`webhook ${request.params.id}`);
      await recordAudit(db, { accountId, actor: callerOf(request).actor, action: 'webhook.secret_rotated', details: { webhookId: request.params.id } });
      return { ...presentWebhookEndpoint(await ownEndpoint(request, request.params.id)), secret };
    },
  });

  app.get('/webhooks/:id/deliveries', {
    schema: {
      tags,
      operationId: 'listWebhookDeliveries',
      summary: 'Deliveries of an endpoint, newest first: attempts, last status code, next attempt',
      security: bearer,
      params: idParams,
      querystring: deliveriesQuery,
      response: withProblems({ 200: z.object({ items: z.array(webhookDeliverySchema), nextCursor: z.string().nullable() }) }),
    },
    preHandler: requireScope('read'),
    handler: async (request) => {
      const page = await listWebhookDeliveries(db, accountOf(request), request.params.id, { limit: request.query.limit, before: request.query.cursor });
      if (!page) throw notFound(`webhook ${request.params.id}`);
      return { items: page.items.map(presentDelivery), nextCursor: page.nextCursor };
    },
  });

  app.post('/webhooks/:id/deliveries/:deliveryId/redeliver', {
    schema: {
      tags,
      operationId: 'redeliverWebhook',
      summary: "Send a delivery again (same webhook-id, so receivers can tell); it keeps its place in the endpoint's order",
      security: bearer,
      params: deliveryParams,
      response: withProblems({ 202: webhookDeliverySchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request, reply) => {
      const accountId = accountOf(request);
      const delivery = await redeliverWebhookDelivery(db, accountId, request.params.id, request.params.deliveryId);
      if (!delivery) throw notFound(`delivery ${request.params.deliveryId} of webhook ${request.params.id}`);
      await recordAudit(db, { accountId, actor: callerOf(request).actor, action: 'webhook.redelivered', details: { webhookId: request.params.id, deliveryId: delivery.id } });
      await drainSoon(request, [request.params.id]);
      return reply.code(202).send(presentDelivery(delivery));
    },
  });

  app.post('/webhooks/:id/test', {
    schema: {
      tags,
      operationId: 'testWebhook',
      summary: 'Send a webhook.test event to this endpoint (whatever it subscribes to)',
      security: bearer,
      params: idParams,
      response: withProblems({ 202: webhookTestAcceptedSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request, reply) => {
      const accountId = accountOf(request);
      const endpoint = await ownEndpoint(request, request.params.id);
      const recorded = await recordWebhookEvent(db, { accountId, type: 'webhook.test', endpointId: endpoint.id, data: { webhookId: endpoint.id, requestedBy: callerOf(request).actor } });
      await drainSoon(request, recorded.endpointIds);
      return reply.code(202).send({ messageId: webhookMessageId(recorded.eventId ?? '') });
    },
  });
}
