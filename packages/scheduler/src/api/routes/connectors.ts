import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  completeConsent,
  type Connector,
  type ConsentOutcome,
  createConsentRequest,
  getConnector,
  getConsent,
  type Integration,
  InvalidInputError,
  listConnectorCredentials,
  listConnectors,
  listIntegrations,
  recordAudit,
} from '@dirsync/db';
import { accountOf, callerOf, requireScope } from '../auth.ts';
import type { ApiApp, ApiDeps } from '../context.ts';
import { notFound, ProblemError } from '../problems.ts';
import { connectorSchema, consentUrlBody, consentUrlSchema, idParams } from '../schemas.ts';
import { bearer, requireKeyRing, withProblems } from './common.ts';

const tags = ['connectors'];

/**
 * Where the customer's administrator lands after the admin-consent page. A connector's redirect
 * URI points here (`https://<api host>/v1/consent/callback`); it takes no API key, because the
 * signed single-use state in the query string is the proof.
 */
export const consentCallbackPath = '/v1/consent/callback';

const iso = (value: Date | null): string | null => (value === null ? null : value.toISOString());

function tenantOf(integration: Pick<Integration, 'settings'>): string {
  const tenant = integration.settings['tenantId'];
  return typeof tenant === 'string' ? tenant.toLowerCase() : '';
}

function isLegacy(integration: Pick<Integration, 'settings'>): boolean {
  return typeof integration.settings['legacyApp'] === 'object' && integration.settings['legacyApp'] !== null;
}

/** The account's Entra ID integrations. */
async function entraIntegrations(deps: ApiDeps, accountId: string): Promise<Integration[]> {
  return (await listIntegrations(deps.db, { accountId })).filter((integration) => integration.kind === 'entra_id');
}

/**
 * A connector with its certificate history (public facts only) and the consent of the tenants of
 * the account's own integrations on it: another account's tenants are not shown, even on a
 * connector both use.
 */
async function presentConnector(deps: ApiDeps, connector: Connector, integrations: readonly Integration[]) {
  const certificates = await listConnectorCredentials(deps.db, connector.id);
  const tenants = [];
  for (const integration of integrations.filter((i) => i.settings['connectorId'] === connector.id)) {
    const tenantId = tenantOf(integration);
    const consent = tenantId === '' ? undefined : await getConsent(deps.db, connector.id, tenantId);
    tenants.push({
      integrationId: integration.id,
      integrationName: integration.name,
      tenantId,
      consentStatus: consent?.status ?? ('none' as const),
      grantedAt: iso(consent?.grantedAt ?? null),
      error: consent?.error ?? null,
      errorDescription: consent?.errorDescription ?? null,
    });
  }
  // Built field by field: the connector row also holds the TLS CA and lease bookkeeping, and the
  // credential rows their certificates; none of that belongs in an account's answer.
  return {
    id: connector.id,
    name: connector.name,
    description: connector.description,
    clientId: connector.clientId,
    redirectUri: connector.redirectUri,
    permissions: connector.permissions,
    rotationCron: connector.rotationCron,
    certificateValidityDays: connector.certificateValidityDays,
    lastRotation: { at: iso(connector.lastRotationAt), status: connector.lastRotationStatus, error: connector.lastRotationError },
    certificates: certificates.map((c) => ({
      id: c.id,
      status: c.status,
      thumbprint: c.thumbprint,
      thumbprintSha256: c.thumbprintSha256,
      notBefore: c.notBefore.toISOString(),
      notAfter: c.notAfter.toISOString(),
      activatedAt: iso(c.activatedAt),
      retiredAt: iso(c.retiredAt),
      removedAt: iso(c.removedAt),
    })),
    tenants,
  };
}

async function requireConnectorOf(deps: ApiDeps, id: string): Promise<Connector> {
  const connector = await getConnector(deps.db, id);
  if (!connector) throw notFound(`connector ${id}`);
  return connector;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, lines: readonly string[]): string {
  const body = lines.map((line) => `<p>${escapeHtml(line)}</p>`).join('\n');
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>\n<body><h1>${escapeHtml(title)}</h1>\n${body}\n</body></html>\n`;
}

/** A browser gets a page; a program that asks for JSON gets JSON (problem+json for a refusal). */
function wantsJson(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? '';
  return accept.includes('application/json') && !accept.includes('text/html');
}

function sendHtml(reply: FastifyReply, status: number, html: string): FastifyReply {
  // The page reflects the query's error description: escaped, and no script may run at all.
  return reply.code(status).header('content-security-policy', "default-src 'none'").header('cache-control', 'no-store').type('text/html; charset=utf-8').send(html);
}

function outcomeLines(outcome: ConsentOutcome, connectorName: string): string[] {
  if (outcome.status === 'granted') {
    return [`Tenant ${outcome.tenantGuid ?? outcome.tenantId} granted consent to ${connectorName}.`, 'Directory sync can now read this tenant. You can close this page.'];
  }
  return [
    `Tenant ${outcome.tenantId} did not grant consent to ${connectorName}: ${outcome.error ?? 'access_denied'}.`,
    ...(outcome.errorDescription === null ? [] : [outcome.errorDescription]),
    'Ask for a new consent link to try again.',
  ];
}

/**
 * Entra ID connectors (the platform's app registrations) and the admin-consent flow:
 * `GET /v1/connectors`, `GET /v1/connectors/{id}`, `POST /v1/connectors/{id}/consent-url`.
 * Every account may use every connector; what is account-specific (tenants and their consent) is
 * shown only for the account's own integrations.
 */
export function registerConnectorRoutes(app: ApiApp, deps: ApiDeps): void {
  app.get('/connectors', {
    schema: {
      tags,
      operationId: 'listConnectors',
      summary: "Entra ID connectors, with certificate thumbprints and expiry, rotation status and the consent of the account's tenants; never a key",
      security: bearer,
      response: withProblems({ 200: z.object({ items: z.array(connectorSchema) }) }),
    },
    preHandler: requireScope('read'),
    handler: async (request) => {
      const integrations = await entraIntegrations(deps, accountOf(request));
      const items = [];
      for (const connector of await listConnectors(deps.db)) items.push(await presentConnector(deps, connector, integrations));
      return { items };
    },
  });

  app.get('/connectors/:id', {
    schema: {
      tags,
      operationId: 'getConnector',
      summary: 'One Entra ID connector',
      security: bearer,
      params: idParams,
      response: withProblems({ 200: connectorSchema }),
    },
    preHandler: requireScope('read'),
    handler: async (request) => {
      const accountId = accountOf(request);
      const connector = await requireConnectorOf(deps, request.params.id);
      return presentConnector(deps, connector, await entraIntegrations(deps, accountId));
    },
  });

  app.post('/connectors/:id/consent-url', {
    schema: {
      tags,
      operationId: 'createConsentUrl',
      summary: "Admin-consent URL for the tenant of one of the account's Entra ID integrations (signed state, usable once, valid one hour)",
      security: bearer,
      params: idParams,
      body: consentUrlBody,
      response: withProblems({ 200: consentUrlSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request) => {
      const accountId = accountOf(request);
      const ring = requireKeyRing(deps, 'consent states cannot be signed');
      const connector = await requireConnectorOf(deps, request.params.id);
      const tenantId = request.body.tenantId.toLowerCase();
      // Consent is per tenant and shared by every account on the connector, so an account may
      // only ask for its own tenants: those of its integrations on this connector, or of its
      // legacy integrations that are to move onto it. Any other tenant reads as absent.
      const integration = (await entraIntegrations(deps, accountId)).find(
        (i) => tenantOf(i) === tenantId && (i.settings['connectorId'] === connector.id || isLegacy(i)),
      );
      // The tenant is not echoed: a 404 tells nothing about whose tenant it is.
      if (!integration) throw notFound(`this tenant among the account's Entra ID integrations on connector "${connector.name}"`);
      const consent = await createConsentRequest(deps.db, ring, { connectorId: connector.id, tenantId });
      // The URL carries the state, which works once: it goes to the caller and nowhere else.
      await recordAudit(deps.db, {
        accountId,
        integrationId: integration.id,
        actor: callerOf(request).actor,
        action: 'connector.consent.requested',
        details: { connectorId: connector.id, tenantId, expiresAt: consent.expiresAt.toISOString() },
      });
      return { url: consent.url, expiresAt: consent.expiresAt.toISOString() };
    },
  });
}

/**
 * `GET /v1/consent/callback`: the redirect back from the admin-consent page. Registered outside
 * the authenticated routes (no API key: the administrator's browser lands here) and hidden from
 * the OpenAPI document (no client calls it). Records the consent or the error with
 * `completeConsent`, which uses the state up; a forged, expired or replayed state is a 400.
 */
export function registerConsentCallback(app: ApiApp, deps: ApiDeps): void {
  app.get(consentCallbackPath, {
    schema: { hide: true },
    // The request log line would carry the query string, and the state in it is a credential
    // until it is used: only warnings and errors are logged for this route.
    logLevel: 'warn',
    handler: async (request, reply) => {
      const json = wantsJson(request);
      const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '';
      const params = new URLSearchParams(query);
      if (!deps.keyRing) {
        if (json) throw new ProblemError(503, 'secrets-unavailable', 'this API server has no secret key configured (DIRSYNC_SECRET_KEY): consent cannot be recorded');
        return sendHtml(reply, 503, page('Consent not recorded', ['This server cannot check consent links right now. Try the link again later.']));
      }
      let outcome: ConsentOutcome;
      try {
        outcome = await completeConsent(deps.db, deps.keyRing, params);
      } catch (error) {
        if (!(error instanceof InvalidInputError)) throw error;
        deps.logger.warn({ reason: error.message }, 'consent redirect refused');
        if (json) throw new ProblemError(400, 'invalid-consent-state', error.message);
        return sendHtml(reply, 400, page('Consent link not valid', [error.message, 'Ask for a new consent link.']));
      }
      deps.logger.info({ connectorId: outcome.connectorId, tenantId: outcome.tenantId, status: outcome.status, error: outcome.error }, 'consent redirect recorded');
      const connector = await getConnector(deps.db, outcome.connectorId);
      const connectorName = connector?.name ?? outcome.connectorId;
      if (json) {
        return reply.code(200).header('cache-control', 'no-store').send({
          status: outcome.status,
          connectorId: outcome.connectorId,
          connector: connectorName,
          tenantId: outcome.tenantId,
          tenantGuid: outcome.tenantGuid,
          error: outcome.error,
          errorDescription: outcome.errorDescription,
        });
      }
      return sendHtml(reply, 200, page(outcome.status === 'granted' ? 'Consent granted' : 'Consent not granted', outcomeLines(outcome, connectorName)));
    },
  });
}
