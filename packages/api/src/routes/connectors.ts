import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  acceptConsentRedirect,
  type Connector,
  consentErrorAnswer,
  type ConsentErrorAnswer,
  type ConsentOutcome,
  createConnector,
  createConsentRequest,
  displayText,
  expireConsentRequests,
  getConnector,
  getConsent,
  getConsentOutcome,
  hasGrantedConsent,
  type Integration,
  InvalidInputError,
  listConnectorCredentials,
  listConnectors,
  listIntegrations,
  recordAudit,
  recordConsentVerification,
  revokeConsent,
  scopeAllows,
} from '@dirsync/db';
import { ControlJobFailedError, ControlTimeoutError, validateCron } from '@dirsync/jobs';
import { accountOf, callerOf, requireScope } from '../auth.ts';
import type { ApiApp, ApiDeps } from '../context.ts';
import { presentConnectorFacts } from '../present.ts';
import { notFound, ProblemError } from '../problems.ts';
import { connectorSchema, consentUrlBody, consentUrlSchema, createConnectorBody, createdConnectorSchema, idParams, problemSchema } from '@dirsync/contracts';
import { bearer, consoleReturnProblem, invalidFields, requireKeyRing, withProblems } from './common.ts';

const tags = ['connectors'];

const consentParams = z.object({
  id: z.string().min(1).max(100).describe('connector id or name'),
  tenantId: z.string().min(1).max(255).describe('the tenant (GUID or domain) as the consent was asked for'),
});

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

/** The account's Entra ID integrations. */
async function entraIntegrations(deps: ApiDeps, accountId: string): Promise<Integration[]> {
  return (await listIntegrations(deps.db, { accountId })).filter((integration) => integration.kind === 'entra_id');
}

/**
 * A connector with its certificate history (public facts only) and the account's own consent of
 * the tenants of its integrations on it: another account's tenants and consents are not shown,
 * even on a connector both use.
 */
async function presentConnector(deps: ApiDeps, accountId: string, connector: Connector, integrations: readonly Integration[]) {
  const certificates = await listConnectorCredentials(deps.db, connector.id);
  const tenants = [];
  for (const integration of integrations.filter((i) => i.settings['connectorId'] === connector.id)) {
    const tenantId = tenantOf(integration);
    const consent = tenantId === '' ? undefined : await getConsent(deps.db, accountId, connector.id, tenantId);
    tenants.push({
      integrationId: integration.id,
      integrationName: integration.name,
      tenantId,
      consentStatus: consent?.status ?? ('none' as const),
      grantedAt: iso(consent?.grantedAt ?? null),
      error: consent?.error ?? null,
      errorDescription: consent?.errorDescription ? displayText(consent.errorDescription) : null,
    });
  }
  return { ...presentConnectorFacts(connector, certificates, new Date()), tenants };
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

/** What the callback page and its JSON say: the request's end, never more than the account's own. */
interface CallbackAnswer {
  readonly status: 'granted' | 'denied' | 'not_granted' | 'confirmation_required' | 'failed';
  readonly connectorId: string;
  readonly tenantId: string;
  readonly tenantGuid: string | null;
  readonly error: string | null;
  readonly errorDescription: string | null;
  /** The account kept the grant it already had (an error answer never takes one away). */
  readonly grantKept: boolean;
}

function answerLines(answer: CallbackAnswer, connectorName: string): string[] {
  switch (answer.status) {
    case 'granted':
      return [`Tenant ${answer.tenantGuid ?? answer.tenantId} granted consent to ${connectorName}.`, 'Directory sync can now read this tenant. You can close this page.'];
    case 'confirmation_required':
      return [`Tenant ${answer.tenantId} has consented to ${connectorName}.`, answer.errorDescription ?? '', 'Directory sync will read it once a platform administrator has confirmed the consent.'];
    case 'denied':
      return [
        `Tenant ${answer.tenantId} did not grant consent to ${connectorName}: ${answer.error ?? 'access_denied'}.`,
        ...(answer.errorDescription === null ? [] : [answer.errorDescription]),
        answer.grantKept ? 'The consent granted earlier stays in force.' : 'Ask for a new consent link to try again.',
      ];
    default:
      return [
        `The consent of tenant ${answer.tenantId} to ${connectorName} was not recorded: ${answer.errorDescription ?? 'it could not be verified'}.`,
        'Ask for a new consent link to try again.',
      ];
  }
}

/**
 * 403 unless the account may use the tenant an `entra_id` integration's settings name: its own
 * account must hold a granted consent of that tenant to that connector. Other kinds, and legacy
 * Entra integrations (the customer's own app registration and secret), pass.
 */
export async function requireTenantConsent(deps: ApiDeps, accountId: string, kind: string, settings: Record<string, unknown> | undefined): Promise<void> {
  if (kind !== 'entra_id' || settings === undefined) return;
  const connectorId = settings['connectorId'];
  const tenantId = settings['tenantId'];
  if (typeof connectorId !== 'string' || typeof tenantId !== 'string') return;
  if (await hasGrantedConsent(deps.db, accountId, connectorId, tenantId)) return;
  throw new ProblemError(
    403,
    'tenant-consent-required',
    `this account holds no granted consent of tenant ${displayText(tenantId, 255)} to connector ${connectorId}: an Entra ID integration may use a tenant only through its own account's consent. Ask for a consent URL (POST /v1/connectors/${connectorId}/consent-url) and have the tenant's administrator grant it first`,
  );
}

/**
 * 403 unless the caller acts for the platform as an administrator: a platform API key (no
 * account) with the admin scope, or a console session whose platform role is admin. Connectors
 * are the platform's app registrations, shared by every account: no account may add one.
 */
function requirePlatformAdmin(request: FastifyRequest): void {
  const caller = callerOf(request);
  const allowed = caller.session ? caller.session.platformRole === 'admin' : caller.accountId === undefined && scopeAllows(caller.scopes, 'admin');
  if (!allowed) {
    throw new ProblemError(403, 'platform-required', 'only a platform administrator can create connectors (a platform API key with the admin scope, or a console platform admin); an account uses the connectors that exist');
  }
}

/** Entra ID accepts https:// redirect URIs, and http:// only for localhost. */
function redirectUriProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a valid URL';
  }
  const local = url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  return url.protocol === 'https:' || local ? undefined : 'must be an https:// URL (http:// only for localhost): pass redirectUri with the public URL of /v1/consent/callback';
}

/**
 * Entra ID connectors (the platform's app registrations) and the admin-consent flow:
 * `GET /v1/connectors`, `GET /v1/connectors/{id}`, `POST /v1/connectors/{id}/consent-url`.
 * Every account may use every connector; a tenant's consent belongs to the account that asked for
 * it, and an Entra ID integration may name a tenant only through its own account's granted
 * consent (see {@link requireTenantConsent}).
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
      // A consent still pending past its link's expiry reads as such.
      await expireConsentRequests(deps.db);
      const integrations = await entraIntegrations(deps, accountOf(request));
      const items = [];
      for (const connector of await listConnectors(deps.db)) items.push(await presentConnector(deps, accountOf(request), connector, integrations));
      return { items };
    },
  });

  app.post('/connectors', {
    schema: {
      tags,
      operationId: 'createConnector',
      summary: 'Register a connector (platform administrators only): generates its first certificate, whose public PEM is answered for upload to the app registration',
      description:
        'The private key is stored encrypted and never answered. Name and description are required; a taken name or client id is a 409. Later certificates are rotated in by dirsync.',
      security: bearer,
      body: createConnectorBody,
      response: withProblems({ 201: createdConnectorSchema, 409: problemSchema, 422: problemSchema, 503: problemSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request, reply) => {
      requirePlatformAdmin(request);
      const blank = (['name', 'description'] as const).filter((field) => request.body[field].trim() === '');
      if (blank.length > 0) throw invalidFields(blank.map((field) => [field, 'must not be blank'] as const));
      const ring = requireKeyRing(deps, 'connector keys cannot be stored');
      const tooling = deps.connectorTooling;
      if (!tooling) throw new ProblemError(503, 'connectors-unavailable', 'this API server cannot generate connector certificates: create the connector with `dirsync connectors add`');
      const body = request.body;
      const redirectUri = body.redirectUri ?? `${request.protocol}://${request.host}${consentCallbackPath}`;
      const problem = redirectUriProblem(redirectUri);
      if (problem !== undefined) {
        throw invalidFields([['redirectUri', problem]]);
      }
      let rotationCron: string | undefined;
      if (body.rotationCron !== undefined) {
        const checked = validateCron(body.rotationCron);
        if (!checked.ok) throw invalidFields([['rotationCron', checked.message]]);
        rotationCron = checked.expression;
      }
      const days = body.certificateValidityDays ?? 30;
      const certificate = await tooling.generateCertificate({ subject: `dirsync connector ${body.name}`, validityDays: days });
      const connector = await createConnector(deps.db, ring, {
        name: body.name.trim(),
        description: body.description.trim(),
        clientId: body.clientId.toLowerCase(),
        applicationObjectId: body.objectId.toLowerCase(),
        homeTenantId: body.homeTenant.toLowerCase(),
        redirectUri,
        cloud: body.cloud ?? 'global',
        ...tooling.cloudHosts(body.cloud ?? 'global'),
        ...(rotationCron === undefined ? {} : { rotationCron }),
        certificateValidityDays: days,
      }, certificate);
      const { actor } = callerOf(request);
      await recordAudit(deps.db, {
        actor,
        action: 'connector.created',
        details: { connectorId: connector.id, name: connector.name, clientId: connector.clientId, thumbprint: certificate.thumbprint },
      });
      // A platform caller has no account, so no tenant of its own on the connector.
      const presented = await presentConnector(deps, '', connector, []);
      return reply.code(201).header('location', `/v1/connectors/${connector.id}`).send({ ...presented, certificatePem: certificate.certificatePem });
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
      await expireConsentRequests(deps.db);
      return presentConnector(deps, accountId, connector, await entraIntegrations(deps, accountId));
    },
  });

  app.post('/connectors/:id/consent-url', {
    schema: {
      tags,
      operationId: 'createConsentUrl',
      summary: "Admin-consent URL for a tenant, on behalf of the account (signed state, usable once, valid one hour); the consent is the account's own",
      security: bearer,
      params: idParams,
      body: consentUrlBody,
      response: withProblems({ 200: consentUrlSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request) => {
      const accountId = accountOf(request);
      const returnProblem = request.body.returnTo === undefined ? undefined : consoleReturnProblem(request.body.returnTo);
      if (returnProblem !== undefined) throw invalidFields([['returnTo', returnProblem]]);
      const ring = requireKeyRing(deps, 'consent states cannot be signed');
      const connector = await requireConnectorOf(deps, request.params.id);
      // Any tenant may be asked for: what the consent grants belongs to this account alone, and
      // only after a token for the tenant shows the permissions (see the callback).
      const consent = await createConsentRequest(deps.db, ring, {
        accountId,
        connectorId: connector.id,
        tenantId: request.body.tenantId,
        ...(request.body.returnTo === undefined ? {} : { returnTo: request.body.returnTo }),
      });
      // The URL carries the state, which works once: it goes to the caller and nowhere else.
      await recordAudit(deps.db, {
        accountId,
        actor: callerOf(request).actor,
        action: 'connector.consent.requested',
        details: { connectorId: connector.id, tenantId: consent.tenantId, expiresAt: consent.expiresAt.toISOString(), ...(request.body.returnTo === undefined ? {} : { returnTo: request.body.returnTo }) },
      });
      return { url: consent.url, expiresAt: consent.expiresAt.toISOString() };
    },
  });

  app.delete('/connectors/:id/consents/:tenantId', {
    schema: {
      tags,
      operationId: 'revokeConsent',
      summary: "Give up the account's consent of a tenant: its integrations there stop syncing; other accounts' consents of the tenant are not touched",
      security: bearer,
      params: consentParams,
      response: withProblems({ 204: z.null().describe('revoked') }),
    },
    preHandler: requireScope('admin'),
    handler: async (request, reply) => {
      const accountId = accountOf(request);
      const connector = await requireConnectorOf(deps, request.params.id);
      const revoked = await revokeConsent(deps.db, { accountId, connectorId: connector.id, tenantId: request.params.tenantId, actor: callerOf(request).actor });
      if (!revoked) throw notFound("this tenant's consent among the account's");
      return reply.code(204).send(null);
    },
  });
}

/**
 * `GET /v1/consent/callback`: the redirects back from the admin-consent page and from the
 * administrator's sign-in that follows it. Registered outside the authenticated routes (no API
 * key: the administrator's browser lands here) and hidden from the OpenAPI document (no client
 * calls it). The consent page's `admin_consent=True` answers 302 to the tenant's sign-in page;
 * the sign-in's `code` has a worker redeem it and verify the administrator and the tenant's
 * token (see `acceptConsentRedirect`). Every state is used up on arrival; a forged, expired or
 * replayed one is a 400 — except for an error answer (Microsoft sends some without any state),
 * which is shown as "consent not granted" with its sanitised description and what to do next,
 * and changes nothing for anyone.
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
      const refusal = consentErrorAnswer(params);
      if (refusal && (params.get('state') ?? '') === '') {
        // Microsoft sends some error redirects without the state: nothing names the request, so
        // nothing is recorded for anyone; the administrator is told what happened and what next.
        deps.logger.warn({ error: refusal.error }, 'consent error redirect without a state');
        return notGranted(reply, json, refusal, null);
      }
      let redirect;
      try {
        redirect = await acceptConsentRedirect(deps.db, deps.keyRing, params);
      } catch (error) {
        if (!(error instanceof InvalidInputError)) throw error;
        deps.logger.warn({ reason: error.message }, 'consent redirect refused');
        if (refusal) return notGranted(reply, json, refusal, error.message);
        if (json) throw new ProblemError(400, 'invalid-consent-state', error.message);
        return sendHtml(reply, 400, page('Consent link not valid', [error.message, 'Ask for a new consent link.']));
      }
      const { connectorId, tenantId, nonce } = redirect.request;
      if (redirect.kind === 'sign_in') {
        // The consent page's answer proves nothing by itself: the tenant's administrator signs in
        // next, and that sign-in comes back here with a code.
        deps.logger.info({ connectorId, tenantId }, 'consent redirect answered: administrator sign-in next');
        return reply.code(302).header('cache-control', 'no-store').header('location', redirect.url).send();
      }
      let answer: CallbackAnswer;
      if (redirect.kind === 'refused') {
        answer = { status: 'denied', connectorId, tenantId, tenantGuid: null, error: redirect.error, errorDescription: redirect.errorDescription, grantKept: redirect.grantKept };
      } else {
        const outcome = await verifyOnWorker(deps, nonce);
        answer = {
          status: outcome.outcome,
          connectorId,
          tenantId,
          tenantGuid: outcome.tenantGuid,
          error: outcome.outcome === 'granted' ? null : outcome.outcome,
          errorDescription: outcome.detail,
          grantKept: false,
        };
      }
      deps.logger.info({ connectorId, tenantId, status: answer.status, error: answer.error }, 'consent redirect recorded');
      const connector = await getConnector(deps.db, connectorId);
      const connectorName = connector?.name ?? connectorId;
      const returnTo = redirect.request.returnTo;
      if (returnTo !== null && !json) {
        // The request came from the console: its page shows the outcome (the path was checked
        // to be under /console/ when the request was made, so this never leaves the console).
        return reply.code(303).header('cache-control', 'no-store').header('location', consoleReturn(returnTo, answer)).send();
      }
      if (json) {
        return reply.code(200).header('cache-control', 'no-store').send({ ...answer, connector: connectorName });
      }
      const title = answer.status === 'granted' ? 'Consent granted' : answer.status === 'confirmation_required' ? 'Consent waiting for confirmation' : 'Consent not granted';
      return sendHtml(reply, 200, page(title, answerLines(answer, connectorName)));
    },
  });
}

/**
 * Where the console gets the browser back: its page with `consent=granted&tenant=<id>`, or
 * `consent=failed&reason=<words>` (a consent waiting for a platform administrator's confirmation
 * reads as failed for now, with that reason).
 */
function consoleReturn(returnTo: string, answer: Pick<CallbackAnswer, 'status' | 'tenantId' | 'tenantGuid' | 'error' | 'errorDescription'>): string {
  const target = new URL(returnTo, 'http://console.invalid');
  for (const name of ['consent', 'tenant', 'reason']) target.searchParams.delete(name);
  if (answer.status === 'granted') {
    target.searchParams.set('consent', 'granted');
    target.searchParams.set('tenant', answer.tenantGuid ?? answer.tenantId);
  } else {
    const reason =
      answer.status === 'confirmation_required'
        ? `waiting for a platform administrator's confirmation${answer.errorDescription === null ? '' : `: ${answer.errorDescription}`}`
        : `${answer.error ?? answer.status}${answer.errorDescription === null ? '' : `: ${answer.errorDescription}`}`;
    target.searchParams.set('consent', 'failed');
    target.searchParams.set('tenant', answer.tenantId);
    target.searchParams.set('reason', displayText(reason, 300));
  }
  return `${target.pathname}${target.search}`;
}

/**
 * The answer to a consent error redirect that names no request this installation can use (no
 * state, or one that is forged, expired or used): consent was not granted, nothing was recorded,
 * and what to do next. 200: Microsoft's answer arrived and is shown, not refused.
 */
function notGranted(reply: FastifyReply, json: boolean, refusal: ConsentErrorAnswer, stateProblem: string | null): FastifyReply {
  const next =
    "Nothing was recorded. Ask whoever sent you the consent link for a new one, and open it signed in as a Global Administrator or Privileged Role Administrator of your tenant; accept every permission it asks for.";
  if (json) {
    return reply
      .code(200)
      .header('cache-control', 'no-store')
      .send({ status: 'not_granted', recorded: false, error: refusal.error, errorDescription: refusal.errorDescription, stateProblem, next });
  }
  return sendHtml(
    reply,
    200,
    page('Consent not granted', [
      `Microsoft Entra ID answered: ${refusal.error}${refusal.errorDescription === null ? '' : ` (${refusal.errorDescription})`}.`,
      ...(stateProblem === null ? [] : [`This answer cannot be matched to a consent request: ${stateProblem}.`]),
      next,
    ]),
  );
}

/**
 * Has a worker redeem the administrator's sign-in and obtain a token for the tenant of an
 * answered consent request, and record what they show (the control queue, as Test Connection:
 * only workers talk to Entra ID),
 * waiting up to the control deadline. When no worker answers in time the request ends as `failed`
 * unless the worker recorded its result first (the first result is the one kept).
 */
async function verifyOnWorker(deps: ApiDeps, nonce: string): Promise<ConsentOutcome> {
  try {
    await deps.control.verifyConsent(nonce, { timeoutMs: deps.controlTimeoutMs, requestedBy: 'consent-redirect' });
  } catch (error) {
    if (!(error instanceof ControlTimeoutError || error instanceof ControlJobFailedError)) throw error;
    deps.logger.warn({ error: error.message }, 'consent verification did not finish');
    return recordConsentVerification(deps.db, nonce, { ok: false, outcome: 'failed', detail: `the consent could not be checked (${error.message})` });
  }
  // The worker recorded the outcome; this reads it back (and the tenant GUID with it).
  return (await getConsentOutcome(deps.db, nonce)) ?? recordConsentVerification(deps.db, nonce, { ok: false, outcome: 'failed', detail: 'no verification was recorded' });
}
