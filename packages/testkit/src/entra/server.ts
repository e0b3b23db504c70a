import { createHash, generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import {
  addPasswordCredential,
  checkClientSecret,
  type EmulatedApplication,
  GraphRequestError,
  keyCredentialFrom,
  keyCredentialJson,
  keyIsValid,
  verifyProof,
} from './applications.ts';
import { computePage, type DeltaResource, type RoundState, selectableProperties, StateSealer } from './delta.ts';
import { EmulatedTenantDirectory, EmulatorControlError } from './directory.ts';
import { FaultPlan, faultCode, type EmulatedService, type FaultRule } from './faults.ts';
import { decodeJwt, JwtError, numericClaim, signJwt, verifyJwtSignature } from './jwt.ts';
import { seededUnit, shapesDeltaRounds, SlidingWindowBudget, type EntraRealism } from './realism.ts';
import { planRecords, type RoundPlan } from './rounds.ts';
import { createEmulatorTls, type EmulatorTls } from './tls.ts';

/** Options of {@link startEntraEmulator}. */
export interface EntraEmulatorOptions {
  /** Records per delta page when the client sends no `Prefer: odata.maxpagesize` (default 100). */
  readonly defaultPageSize?: number;
  /** Largest page a client may ask for (default 999, Graph's limit for directory objects). */
  readonly maxPageSize?: number;
  /** Members per group record of `groups/delta` (default 20): larger groups span records and pages. */
  readonly membersPerRecord?: number;
  /** Access token lifetime (default 3600 s). */
  readonly accessTokenLifetimeSeconds?: number;
  /** Clock skew tolerated on assertions and proofs (default 60 s). */
  readonly clockSkewSeconds?: number;
  /** Clock (epoch ms); tests may move it. */
  readonly now?: () => number;
  /** Behaviours of a real tenant that make a client's life hard (all off by default); see {@link EntraRealism}. */
  readonly realism?: EntraRealism;
  /**
   * The national cloud the emulator stands for, in messages and the OpenID configuration's
   * `cloud_instance_name` (default `global`). Whatever the cloud, a token is issued only for this
   * emulator's own Graph (`{graphBaseUrl}/.default`), as each cloud's token service issues tokens
   * only for its own Graph endpoint (entra-docs: docs/identity-platform/authentication-national-cloud.md).
   */
  readonly cloud?: 'global' | 'usgov' | 'china';
}

/** One request the emulator answered, for assertions about what a client did. */
export interface EmulatorRequest {
  readonly service: EmulatedService;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** Client id of the token request, or of the token that authorised a Graph call. */
  readonly clientId?: string;
  readonly tenantId?: string;
}

/** Input of {@link EntraEmulator.registerApplication}. */
export interface NewEmulatedApplication {
  readonly homeTenantId: string;
  readonly displayName: string;
  readonly appId?: string;
  readonly objectId?: string;
  /** PEM certificates registered at creation. */
  readonly certificates?: readonly string[];
  /** A client secret registered at creation (legacy apps). */
  readonly clientSecret?: string;
  readonly redirectUris?: readonly string[];
  /** Application permissions the app asks for (default: users, group members, own keys). */
  readonly roles?: readonly string[];
  /**
   * The manifest's `groupMembershipClaims` (default `DirectoryRole`, as a connector's registration
   * must set it so that id_tokens carry `wids`).
   */
  readonly groupMembershipClaims?: EmulatedApplication['groupMembershipClaims'];
  /** Client ids of applications whose service principals own this one (default none; see {@link EntraEmulator.addApplicationOwner}). */
  readonly owners?: readonly string[];
}

/** Directory role template id of Global Administrator (permissions-reference.md). */
export const globalAdministratorRoleId = '62e90394-69f5-4237-9190-012177145e10';

/**
 * Who signs in at the authorize endpoint: a user of `tenant` holding the directory roles
 * `roles` (role template ids, as `wids` carries them).
 */
export interface EmulatedSignIn {
  readonly tenant: string;
  readonly roles: readonly string[];
  readonly objectId?: string;
  readonly userPrincipalName?: string;
}

/** Changes the emulator makes to the id_tokens it issues, for tests of a client's checks. */
export interface IdTokenTampering {
  /** Sign with a key the JWKS endpoint does not publish (under the published `kid`). */
  readonly foreignKey?: boolean;
  /** Claims replacing the real ones (`nonce`, `aud`, `exp`, `iat`, `tid`…); `undefined` removes one. */
  readonly claims?: Readonly<Record<string, unknown>>;
}

interface IssuedCode {
  readonly clientId: string;
  readonly redirectUri: string;
  readonly tenantId: string;
  readonly user: Required<EmulatedSignIn>;
  readonly nonce: string | null;
  readonly expiresAt: number;
  redeemed: boolean;
}

/** Lifetime of an authorization code: "typically ... about 10 minutes" (v2-oauth2-auth-code-flow.md). */
const codeLifetimeMs = 10 * 60_000;

/**
 * What an administrator of a tenant answers on the admin-consent page: approve, deny the
 * permissions, or cancel the sign-in (AADSTS65004 UserDeclinedConsent, entra-docs:
 * docs/identity-platform/reference-error-codes.md).
 */
export type ConsentDecision = 'approve' | 'deny' | 'cancel';

/** The app's roles an administrator grants: all it asks for, or the approved ones among them. */
function grantedRoles(app: EmulatedApplication, approved: readonly string[] | undefined): string[] {
  return approved === undefined ? [...app.roles] : app.roles.filter((role) => approved.includes(role));
}

/**
 * Default permissions of a connector app: least privilege for directory sync. Rolling its own
 * keys needs none: "An application does not need any specific permission to roll its own keys"
 * (microsoft-graph-docs-contrib: api-reference/v1.0/api/application-addkey.md, "Permissions").
 */
export const defaultConnectorRoles = ['User.Read.All', 'GroupMember.Read.All'] as const;

/** `cloud_instance_name` per national cloud (entra-docs: docs/identity-platform/authentication-national-cloud.md). */
const cloudInstanceNames = { global: 'microsoftonline.com', usgov: 'microsoftonline.us', china: 'partner.microsoftonline.cn' } as const;

/** Round plans kept for their skip tokens (the least recently used go first); a dropped plan's tokens have expired. */
const maxPlans = 128;

interface TenantRecord {
  readonly id: string;
  readonly domain: string;
  readonly directory: EmulatedTenantDirectory;
  /** App id → roles granted by the tenant's administrator (an app present with none: empty). */
  readonly consents: Map<string, string[]>;
  decision: ConsentDecision;
  /** Which of an app's roles the administrator approves on the consent page (default: all). */
  approvedRoles: readonly string[] | undefined;
  /** App id → each consent given (time and roles), oldest first: what `consentPropagationMs` reads. */
  readonly consentHistory: Map<string, { readonly at: number; readonly roles: readonly string[] }[]>;
}

interface AccessClaims {
  readonly tid: string;
  readonly appid: string;
  readonly roles: readonly string[];
}

class HttpError extends Error {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) {
    super(`HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

const maxBody = 1024 * 1024;
const maxRecorded = 20_000;

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > maxBody) throw new HttpError(413, { error: { code: 'RequestTooLarge', message: 'body too large' } });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function graphError(status: number, code: string, message: string, headers: Record<string, string> = {}): HttpError {
  return new HttpError(
    status,
    { error: { code, message, innerError: { date: new Date().toISOString(), 'request-id': randomUUID(), 'client-request-id': randomUUID() } } },
    headers,
  );
}

/**
 * An emulator of Microsoft Entra ID's v2.0 endpoints and the parts of Microsoft Graph dirsync
 * uses, over HTTPS on loopback with a throwaway CA (clients trust `caPem`, scoped to their own
 * connections). Two listeners: `authorityHost` (OpenID configuration, token endpoint, admin
 * consent) and `graphBaseUrl` (users/groups delta, applications addKey/removeKey). Tests drive
 * it through the methods below: tenants, apps and their certificates, consent, directory
 * changes, expired delta tokens and injected faults.
 */
export class EntraEmulator {
  readonly authorityHost: string;
  readonly graphBaseUrl: string;
  /** CA certificate the emulator's server certificate chains to. */
  readonly caPem: string;
  /** Requests answered, oldest first (the latest 20,000). */
  readonly requests: EmulatorRequest[] = [];
  readonly faults = new FaultPlan();
  private readonly loginServer: Server;
  private readonly graphServer: Server;
  private readonly tenants = new Map<string, TenantRecord>();
  private readonly applications = new Map<string, EmulatedApplication>();
  private readonly signingKey: KeyObject;
  private readonly signingKid = randomUUID();
  private readonly codes = new Map<string, IssuedCode>();
  private signIn: EmulatedSignIn | undefined;
  private tampering: IdTokenTampering | undefined;
  private readonly options: Required<Omit<EntraEmulatorOptions, 'now' | 'realism' | 'cloud'>>;
  private readonly now: () => number;
  /** The national cloud named in messages. */
  readonly cloud: 'global' | 'usgov' | 'china';
  private realismSettings: EntraRealism;
  private readonly sealer = new StateSealer();
  private readonly plans = new Map<string, RoundPlan>();
  private planCounter = 0;
  private readonly budgets = new SlidingWindowBudget();
  /** Key id → when addKey registered it (`keyPropagationMs`). */
  private readonly keysAddedAt = new Map<string, number>();

  private constructor(tls: EmulatorTls, loginServer: Server, graphServer: Server, options: EntraEmulatorOptions) {
    this.caPem = tls.caPem;
    this.loginServer = loginServer;
    this.graphServer = graphServer;
    this.authorityHost = `https://127.0.0.1:${(loginServer.address() as AddressInfo).port}`;
    this.graphBaseUrl = `https://127.0.0.1:${(graphServer.address() as AddressInfo).port}`;
    this.signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    this.now = options.now ?? Date.now;
    this.options = {
      defaultPageSize: options.defaultPageSize ?? 100,
      maxPageSize: options.maxPageSize ?? 999,
      membersPerRecord: options.membersPerRecord ?? 20,
      accessTokenLifetimeSeconds: options.accessTokenLifetimeSeconds ?? 3600,
      clockSkewSeconds: options.clockSkewSeconds ?? 60,
    };
    this.cloud = options.cloud ?? 'global';
    this.realismSettings = { ...(options.realism ?? {}) };
  }

  /** The realism behaviours in force (see {@link EntraRealism}). */
  get realism(): Readonly<EntraRealism> {
    return this.realismSettings;
  }

  /**
   * Changes realism behaviours at run time: the given settings replace the current ones (a
   * setting given as `undefined` turns that behaviour off); the others stay.
   */
  setRealism(partial: { [K in keyof EntraRealism]?: EntraRealism[K] | undefined }): void {
    const next: Record<string, unknown> = { ...this.realismSettings };
    for (const [name, value] of Object.entries(partial)) {
      if (value === undefined) delete next[name];
      else next[name] = value;
    }
    this.realismSettings = next as EntraRealism;
    if (partial.throttle !== undefined || 'throttle' in partial) this.budgets.clear();
  }

  /** Starts both listeners on ephemeral loopback ports. */
  static async start(options: EntraEmulatorOptions = {}): Promise<EntraEmulator> {
    const tls = await createEmulatorTls();
    let emulator: EntraEmulator | undefined;
    const handler = (service: EmulatedService) => (request: IncomingMessage, response: ServerResponse) => {
      if (!emulator) {
        response.writeHead(503).end();
        return;
      }
      void emulator.handle(service, request, response);
    };
    const loginServer = createServer({ cert: tls.certPem, key: tls.keyPem }, handler('login'));
    const graphServer = createServer({ cert: tls.certPem, key: tls.keyPem }, handler('graph'));
    for (const server of [loginServer, graphServer]) {
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
    }
    emulator = new EntraEmulator(tls, loginServer, graphServer, options);
    return emulator;
  }

  /** Stops both listeners and drops their connections. */
  async close(): Promise<void> {
    for (const server of [this.loginServer, this.graphServer]) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  // ---- control API: tenants, applications, consent ----

  /** Creates a tenant (a GUID id and an `onmicrosoft.com` domain) and returns its directory. */
  createTenant(input: { id?: string; domain?: string } = {}): EmulatedTenantDirectory {
    const id = input.id ?? randomUUID();
    if (this.tenants.has(id)) throw new EmulatorControlError(`tenant ${id} exists`);
    const domain = (input.domain ?? `tenant-${id.slice(0, 8)}.onmicrosoft.com`).toLowerCase();
    const directory = new EmulatedTenantDirectory(id, this.now);
    this.tenants.set(id, { id, domain, directory, consents: new Map(), decision: 'approve', approvedRoles: undefined, consentHistory: new Map() });
    return directory;
  }

  /** The directory of a tenant (by id or domain). */
  tenant(idOrDomain: string): EmulatedTenantDirectory {
    return this.requireTenant(idOrDomain).directory;
  }

  /** Registers an application in its home tenant, consented there for its roles. */
  registerApplication(input: NewEmulatedApplication): EmulatedApplication {
    const home = this.requireTenant(input.homeTenantId);
    const app: EmulatedApplication = {
      appId: input.appId ?? randomUUID(),
      objectId: input.objectId ?? randomUUID(),
      homeTenantId: home.id,
      displayName: input.displayName,
      keyCredentials: (input.certificates ?? []).map((pem) => keyCredentialFrom(pem)),
      passwordCredentials: [],
      redirectUris: [...(input.redirectUris ?? [])],
      roles: [...(input.roles ?? defaultConnectorRoles)],
      owners: [...(input.owners ?? [])],
      groupMembershipClaims: input.groupMembershipClaims ?? 'DirectoryRole',
    };
    if (input.clientSecret !== undefined) {
      addPasswordCredential(app, input.clientSecret, new Date(this.now() + 365 * 24 * 3600_000));
    }
    this.applications.set(app.appId, app);
    // Registered in its home tenant long ago: its roles have propagated.
    home.consents.set(app.appId, [...app.roles]);
    home.consentHistory.set(app.appId, [{ at: -Infinity, roles: [...app.roles] }]);
    return app;
  }

  /**
   * Makes the service principal of application `ownerAppId` an owner of application `appId`, so
   * that `Application.ReadWrite.OwnedBy` reaches it ("It cannot update any apps that it is not an
   * owner of", microsoft-graph-docs-contrib: concepts/permissions-reference.md).
   */
  addApplicationOwner(appId: string, ownerAppId: string): void {
    const app = this.application(appId);
    this.application(ownerAppId);
    if (!app.owners.includes(ownerAppId)) app.owners.push(ownerAppId);
  }

  /** Records a consent (roles granted now) for `consentPropagationMs`. */
  private recordConsent(tenant: TenantRecord, appId: string, roles: readonly string[]): void {
    tenant.consents.set(appId, [...roles]);
    const history = tenant.consentHistory.get(appId) ?? [];
    history.push({ at: this.now(), roles: [...roles] });
    tenant.consentHistory.set(appId, history);
  }

  /**
   * The roles a token issued now carries: the latest consent older than `consentPropagationMs`,
   * none when every consent is younger. The `roles` claim is fixed when the token is issued
   * (entra-docs: docs/identity-platform/access-token-claims-reference.md, `roles`), and the
   * directory replicates a change with a delay ("some requests might have replication delays for
   * objects that were recently created, updated, or deleted", microsoft-graph-docs-contrib:
   * concepts/delta-query-overview.md, "Processing delays"); Microsoft gives no figure for a
   * consent, so the delay is the test's choice.
   */
  private propagatedRoles(tenant: TenantRecord, appId: string, granted: readonly string[]): readonly string[] {
    const delayMs = this.realismSettings.consentPropagationMs ?? 0;
    if (delayMs <= 0) return granted;
    const history = tenant.consentHistory.get(appId) ?? [];
    const cutoff = this.now() - delayMs;
    for (let i = history.length - 1; i >= 0; i--) {
      const entry = history[i] as { at: number; roles: readonly string[] };
      if (entry.at <= cutoff) return entry.roles;
    }
    return [];
  }

  /** The application with this client id (its credentials as the emulator holds them). */
  application(appId: string): EmulatedApplication {
    const app = this.applications.get(appId);
    if (!app) throw new EmulatorControlError(`no application ${appId}`);
    return app;
  }

  /** Registers another certificate on an application (what an administrator uploads). */
  addApplicationCertificate(appId: string, certificatePem: string): string {
    const key = keyCredentialFrom(certificatePem);
    this.application(appId).keyCredentials.push(key);
    return key.keyId;
  }

  /** Removes a certificate by SHA-1 thumbprint (hex) or key id. Returns whether one was removed. */
  removeApplicationCertificate(appId: string, thumbprintOrKeyId: string): boolean {
    const keys = this.application(appId).keyCredentials;
    const at = keys.findIndex(
      (k) => k.keyId === thumbprintOrKeyId || k.customKeyIdentifier === thumbprintOrKeyId.replace(/:/g, '').toUpperCase(),
    );
    if (at < 0) return false;
    keys.splice(at, 1);
    return true;
  }

  /**
   * Grants an application's roles in a tenant, as an administrator's consent does; `roles`
   * grants only those (an administrator who approved fewer permissions than the app asks for).
   */
  grantConsent(tenant: string, appId: string, roles?: readonly string[]): void {
    const app = this.application(appId);
    this.recordConsent(this.requireTenant(tenant), app.appId, grantedRoles(app, roles));
  }

  /** Revokes consent (removes the app's service principal from the tenant). */
  revokeConsent(tenant: string, appId: string): void {
    const record = this.requireTenant(tenant);
    record.consents.delete(appId);
    record.consentHistory.delete(appId);
  }

  /** Whether the tenant has consented to the app. */
  hasConsent(tenant: string, appId: string): boolean {
    return this.requireTenant(tenant).consents.has(appId);
  }

  /**
   * What the tenant's administrator answers on the admin-consent page from now on; with
   * `approve`, `roles` limits the permissions granted (default: every role the app asks for).
   */
  setConsentDecision(tenant: string, decision: ConsentDecision, roles?: readonly string[]): void {
    const record = this.requireTenant(tenant);
    record.decision = decision;
    record.approvedRoles = roles === undefined ? undefined : [...roles];
  }

  /**
   * Who signs in at the authorize endpoint from now on. Undefined (the default): a Global
   * Administrator of the tenant the authorize URL names.
   */
  signInAs(user: EmulatedSignIn | undefined): void {
    if (user !== undefined) this.requireTenant(user.tenant);
    this.signIn = user;
  }

  /** Alters the id_tokens issued from now on (undefined: issue them as Entra does). */
  tamperIdTokens(tampering: IdTokenTampering | undefined): void {
    this.tampering = tampering;
  }

  /** Makes every delta and skip token issued so far for the tenant expire. */
  expireDeltaTokens(tenant: string): void {
    const record = this.requireTenant(tenant);
    record.directory.tokenGeneration += 1;
    for (const [id, plan] of this.plans) if (plan.tenantId === record.id) this.plans.delete(id);
  }

  /** Injects a fault (see {@link FaultRule}). */
  injectFault(rule: FaultRule): void {
    this.faults.add(rule);
  }

  /** Requests answered by one service, optionally only those whose path contains `path`. */
  requestsTo(service: EmulatedService, path?: string): EmulatorRequest[] {
    return this.requests.filter((r) => r.service === service && (path === undefined || r.path.includes(path)));
  }

  // ---- HTTP ----

  private requireTenant(idOrDomain: string): TenantRecord {
    const found = this.findTenant(idOrDomain);
    if (!found) throw new EmulatorControlError(`no tenant ${idOrDomain}`);
    return found;
  }

  private findTenant(idOrDomain: string): TenantRecord | undefined {
    const direct = this.tenants.get(idOrDomain);
    if (direct) return direct;
    const lower = idOrDomain.toLowerCase();
    for (const tenant of this.tenants.values()) if (tenant.domain === lower) return tenant;
    return undefined;
  }

  private async handle(service: EmulatedService, request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', service === 'login' ? this.authorityHost : this.graphBaseUrl);
    const method = (request.method ?? 'GET').toUpperCase();
    const record: { status: number; clientId?: string; tenantId?: string } = { status: 500 };
    try {
      const fault = this.faults.take(service, method, url.pathname);
      if (fault?.delayMs !== undefined) await delay(fault.delayMs);
      if (fault?.status !== undefined) throw this.faultAnswer(fault);
      const body = method === 'POST' ? await readBody(request) : '';
      const answer =
        service === 'login' ? await this.login(method, url, body, record) : await this.graph(method, url, body, request, record);
      record.status = answer.status;
      response.writeHead(answer.status, { 'content-type': 'application/json; charset=utf-8', ...(answer.headers ?? {}) });
      response.end(answer.body === undefined ? undefined : JSON.stringify(answer.body));
    } catch (error) {
      const http =
        error instanceof HttpError
          ? error
          : error instanceof GraphRequestError
            ? graphError(error.status, error.code, error.message)
            : graphError(500, 'InternalServerError', error instanceof Error ? error.message : String(error));
      record.status = http.status;
      if (!response.headersSent) {
        response.writeHead(http.status, { 'content-type': 'application/json; charset=utf-8', ...http.headers });
        response.end(JSON.stringify(http.body));
      } else {
        response.destroy();
      }
    } finally {
      this.requests.push({ service, method, path: url.pathname, ...record });
      if (this.requests.length > maxRecorded) this.requests.splice(0, this.requests.length - maxRecorded);
    }
  }

  private faultAnswer(fault: FaultRule): HttpError {
    const status = fault.status ?? 500;
    const headers: Record<string, string> = fault.retryAfterSeconds === undefined ? {} : { 'retry-after': String(fault.retryAfterSeconds) };
    if (fault.service === 'login') {
      return new HttpError(status, { error: fault.code ?? 'temporarily_unavailable', error_description: `AADSTS90033: injected ${status}` }, headers);
    }
    return graphError(status, faultCode(fault), `injected ${status}`, headers);
  }

  // ---- login.microsoftonline.com ----

  private async login(
    method: string,
    url: URL,
    body: string,
    record: { clientId?: string; tenantId?: string },
  ): Promise<{ status: number; body?: unknown; headers?: Record<string, string> }> {
    const parts = url.pathname.split('/').filter(Boolean);
    const tenantSegment = parts[0] ?? '';
    const rest = parts.slice(1).join('/');
    if (method === 'GET' && tenantSegment === 'common' && rest === 'discovery/instance') {
      return { status: 200, body: { tenant_discovery_endpoint: `${this.authorityHost}/common/v2.0/.well-known/openid-configuration`, 'api-version': '1.1', metadata: [] } };
    }
    const tenant = this.findTenant(tenantSegment);
    if (method === 'GET' && (rest === 'v2.0/.well-known/openid-configuration' || rest === '.well-known/openid-configuration')) {
      if (!tenant) throw this.aadError(400, 'invalid_tenant', 90002, `Tenant '${tenantSegment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`);
      return { status: 200, body: this.openIdConfiguration(tenant.id) };
    }
    if (method === 'GET' && rest === 'discovery/v2.0/keys') return { status: 200, body: this.jwks() };
    if (method === 'POST' && rest === 'oauth2/v2.0/token') {
      if (!tenant) throw this.aadError(400, 'invalid_request', 90002, `Tenant '${tenantSegment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`);
      record.tenantId = tenant.id;
      return this.token(tenant, tenantSegment, url, body, record);
    }
    if (method === 'GET' && rest === 'oauth2/v2.0/authorize') return this.authorizeEndpoint(tenantSegment, tenant, url);
    if (method === 'GET' && (rest === 'adminconsent' || rest === 'v2.0/adminconsent')) {
      return this.adminConsent(tenantSegment, tenant, url, rest === 'v2.0/adminconsent');
    }
    throw this.aadError(404, 'invalid_request', 900561, `The endpoint ${url.pathname} does not exist.`);
  }

  /**
   * The `iss` of v2.0 id_tokens, as the tenant's OpenID metadata publishes it: the authority's own
   * host, except in the China cloud, whose authority `login.chinacloudapi.cn` publishes
   * `https://login.partner.microsoftonline.cn/{tenant}/v2.0` (its `.well-known/openid-configuration`,
   * as Microsoft's token validation guidance for national clouds points to): a client must take the
   * issuer from the metadata, not build it from the host it asked.
   */
  private idTokenIssuer(tenantId: string): string {
    return this.cloud === 'china' ? `https://login.partner.microsoftonline.cn/${tenantId}/v2.0` : `${this.authorityHost}/${tenantId}/v2.0`;
  }

  private openIdConfiguration(tenantId: string): Record<string, unknown> {
    const base = `${this.authorityHost}/${tenantId}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: this.idTokenIssuer(tenantId),
      request_uri_parameter_supported: false,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'tid'],
      tenant_region_scope: 'EU',
      cloud_instance_name: cloudInstanceNames[this.cloud],
    };
  }

  private jwks(): Record<string, unknown> {
    const jwk = this.signingKey.export({ format: 'jwk' });
    return { keys: [{ kty: 'RSA', use: 'sig', kid: this.signingKid, n: jwk.n, e: jwk.e }] };
  }

  private aadError(status: number, error: string, code: number, description: string): HttpError {
    const traceId = randomUUID();
    const correlationId = randomUUID();
    const timestamp = new Date(this.now()).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    return new HttpError(status, {
      error,
      error_description: `AADSTS${code}: ${description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `${this.authorityHost}/error?code=${code}`,
    });
  }

  private async token(
    tenant: TenantRecord,
    tenantSegment: string,
    url: URL,
    body: string,
    record: { clientId?: string },
  ): Promise<{ status: number; body: unknown }> {
    const form = new URLSearchParams(body);
    const grant = form.get('grant_type');
    if (grant === 'authorization_code') return this.redeemCode(tenant, tenantSegment, url, form, record);
    if (grant !== 'client_credentials') {
      throw this.aadError(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grant ?? ''}'.`);
    }
    const clientId = form.get('client_id') ?? '';
    record.clientId = clientId;
    const scope = form.get('scope') ?? '';
    const resources = scope.split(' ').filter(Boolean);
    if (resources.length !== 1 || !(resources[0] as string).endsWith('/.default')) {
      throw this.aadError(400, 'invalid_scope', 1002012, `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`);
    }
    // Each cloud's token service issues tokens for its own Graph only: Microsoft Graph global's
    // `https://graph.microsoft.com/.default` is refused by a national cloud (entra-docs:
    // docs/identity-platform/authentication-national-cloud.md), with the client credentials
    // flow's documented error "AADSTS70011: The provided value for the input parameter 'scope'
    // is not valid. The scope https://foo.microsoft.com/.default is not valid."
    // (v2-oauth2-client-creds-grant-flow.md, "Error response").
    if (resources[0] !== `${this.graphBaseUrl}/.default`) {
      throw this.aadError(400, 'invalid_scope', 70011, `The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid: this is the ${this.cloud} cloud, whose Microsoft Graph is ${this.graphBaseUrl}.`);
    }
    // No service principal in the tenant (never consented, or consent revoked): no token at all,
    // AADSTS700016 UnauthorizedClient_DoesNotMatchRequest, "the application wasn't found in the
    // directory/tenant ... if the application has not been installed by the administrator of the
    // tenant" (entra-docs: docs/identity-platform/reference-error-codes.md).
    const app = this.applications.get(clientId);
    const granted = app ? tenant.consents.get(app.appId) : undefined;
    if (!app || !granted) {
      throw this.aadError(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${tenant.domain}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`);
    }
    const now = this.now();
    const assertionType = form.get('client_assertion_type');
    const assertion = form.get('client_assertion');
    const secret = form.get('client_secret');
    if (assertion !== null) {
      if (assertionType !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
        throw this.aadError(400, 'invalid_request', 50027, 'Invalid client_assertion_type.');
      }
      this.checkAssertion(app, assertion, [url.href, `${this.authorityHost}/${tenant.id}/oauth2/v2.0/token`, `${this.authorityHost}/${tenantSegment}/oauth2/v2.0/token`], now, tenant.id);
    } else if (secret !== null) {
      const problem = checkClientSecret(app, secret, now);
      if (problem === 'invalid') {
        throw this.aadError(401, 'invalid_client', 7000215, 'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.');
      }
      if (problem === 'expired') {
        throw this.aadError(401, 'invalid_client', 7000222, `The provided client secret keys for app '${app.appId}' are expired.`);
      }
    } else {
      throw this.aadError(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    }
    const roles = this.propagatedRoles(tenant, app.appId, granted);
    const issuedAt = Math.floor(now / 1000);
    const lifetime = this.options.accessTokenLifetimeSeconds;
    // The `roles` claim lists the application permissions the tenant's administrator granted,
    // and is left out when none were: "app-only tokens can be issued without a `roles` claim"
    // (entra-docs: docs/identity-platform/v2-oauth2-client-creds-grant-flow.md, "Controlling
    // tokens without the roles claim"; access-token-claims-reference.md, `roles`).
    const accessToken = signJwt(
      {
        aud: this.graphBaseUrl,
        iss: `https://sts.windows.net/${tenant.id}/`,
        iat: issuedAt,
        nbf: issuedAt,
        exp: issuedAt + lifetime,
        appid: app.appId,
        idtyp: 'app',
        oid: randomUUID(),
        ...(roles.length === 0 ? {} : { roles: [...roles] }),
        sub: app.appId,
        tid: tenant.id,
        ver: '1.0',
      },
      this.signingKey,
      { kid: this.signingKid },
    );
    return { status: 200, body: { token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: accessToken } };
  }

  /**
   * The OpenID Connect authorize endpoint, answered at once as the test's signed-in user
   * ({@link signInAs}). Checked as documented (entra-docs: docs/identity-platform/
   * v2-protocols-oidc.md, "Send the sign-in request"; v2-oauth2-auth-code-flow.md, "Request an
   * authorization code"): `client_id` of a registered app, `response_type=code`, `scope` with
   * `openid`, `redirect_uri` among the app's registered redirect URIs (AADSTS50011). A user of
   * another tenant than the one the URL names cannot sign in there (AADSTS50020, shown on the
   * page, not redirected). Success redirects with `code`, `state` and `session_state`.
   */
  private authorizeEndpoint(tenantSegment: string, tenant: TenantRecord | undefined, url: URL): { status: number; body?: unknown; headers?: Record<string, string> } {
    const clientId = url.searchParams.get('client_id') ?? '';
    const redirectUri = url.searchParams.get('redirect_uri') ?? '';
    const app = this.applications.get(clientId);
    if (!app) throw this.aadError(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory.`);
    if (!app.redirectUris.includes(redirectUri)) {
      throw this.aadError(400, 'invalid_request', 50011, `The redirect URI '${redirectUri}' specified in the request does not match the redirect URIs configured for the application '${clientId}'.`);
    }
    if (url.searchParams.get('response_type') !== 'code') {
      throw this.aadError(400, 'unsupported_response_type', 700054, "The app requested a response_type that is not enabled: this emulator issues only 'code'.");
    }
    const scopes = (url.searchParams.get('scope') ?? '').split(' ').filter(Boolean);
    if (!scopes.includes('openid')) throw this.aadError(400, 'invalid_scope', 90014, "The required field 'scope' must include 'openid' for a sign-in.");
    if (!tenant) throw this.aadError(400, 'invalid_tenant', 90002, `Tenant '${tenantSegment}' not found.`);
    const chosen = this.signIn ?? { tenant: tenant.id, roles: [globalAdministratorRoleId] };
    const home = this.requireTenant(chosen.tenant);
    if (home.id !== tenant.id) {
      throw this.aadError(400, 'invalid_request', 50020, `User account from identity provider does not exist in tenant '${tenant.domain}' and cannot access the application '${clientId}' in that tenant.`);
    }
    const user: Required<EmulatedSignIn> = {
      tenant: home.id,
      roles: [...chosen.roles],
      objectId: chosen.objectId ?? randomUUID(),
      userPrincipalName: chosen.userPrincipalName ?? `admin@${home.domain}`,
    };
    const code = randomBytes(32).toString('base64url');
    this.codes.set(code, { clientId, redirectUri, tenantId: home.id, user, nonce: url.searchParams.get('nonce'), expiresAt: this.now() + codeLifetimeMs, redeemed: false });
    const target = new URL(redirectUri);
    target.searchParams.set('code', code);
    const state = url.searchParams.get('state');
    if (state !== null) target.searchParams.set('state', state);
    target.searchParams.set('session_state', randomUUID());
    return { status: 302, headers: { location: target.href } };
  }

  /**
   * `grant_type=authorization_code`: the client authenticates as for client credentials; the code
   * is single-use (AADSTS54005 "OAuth2 Authorization code was already redeemed"), bound to the
   * client and the redirect URI it was issued for, and short-lived (AADSTS70008 expired) —
   * entra-docs: docs/identity-platform/reference-error-codes.md, v2-oauth2-auth-code-flow.md
   * ("Redeem a code for an access token"). The answer carries an id_token (RS256, this
   * emulator's key, published at `/{tenant}/discovery/v2.0/keys`) with the claims of
   * id-token-claims-reference.md, and `wids` when the app's `groupMembershipClaims` asks for
   * directory roles. The code is not tied to the tenant of the token URL: a client's own `tid`
   * check is what decides in tests.
   */
  private redeemCode(
    tenant: TenantRecord,
    tenantSegment: string,
    url: URL,
    form: URLSearchParams,
    record: { clientId?: string },
  ): { status: number; body: unknown } {
    const clientId = form.get('client_id') ?? '';
    record.clientId = clientId;
    const app = this.applications.get(clientId);
    if (!app) throw this.aadError(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${tenant.domain}'.`);
    const now = this.now();
    const assertion = form.get('client_assertion');
    if (assertion === null || form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
      throw this.aadError(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    }
    this.checkAssertion(app, assertion, [url.href, `${this.authorityHost}/${tenant.id}/oauth2/v2.0/token`, `${this.authorityHost}/${tenantSegment}/oauth2/v2.0/token`], now, tenant.id);
    const issued = this.codes.get(form.get('code') ?? '');
    if (!issued || issued.clientId !== app.appId) {
      throw this.aadError(400, 'invalid_grant', 9002313, 'Invalid request. Request is malformed or invalid: the authorization code is not valid.');
    }
    if (issued.redeemed) throw this.aadError(400, 'invalid_grant', 54005, 'OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.');
    issued.redeemed = true;
    if (issued.expiresAt < now) throw this.aadError(400, 'invalid_grant', 70008, 'The provided authorization code or refresh token has expired due to inactivity.');
    if (form.get('redirect_uri') !== issued.redirectUri) {
      throw this.aadError(400, 'invalid_grant', 50148, 'The redirect_uri does not match the one the authorization code was requested with.');
    }
    const issuedAt = Math.floor(now / 1000);
    const { user } = issued;
    const directoryRoles = app.groupMembershipClaims === 'DirectoryRole' || app.groupMembershipClaims === 'All';
    const claims: Record<string, unknown> = {
      aud: app.appId,
      iss: this.idTokenIssuer(user.tenant),
      iat: issuedAt,
      nbf: issuedAt,
      exp: issuedAt + 3600,
      name: user.userPrincipalName,
      ...(issued.nonce === null ? {} : { nonce: issued.nonce }),
      oid: user.objectId,
      preferred_username: user.userPrincipalName,
      sub: createHash('sha256').update(`${user.objectId}:${app.appId}`).digest('base64url'),
      tid: user.tenant,
      ver: '2.0',
      ...(directoryRoles && user.roles.length > 0 ? { wids: [...user.roles] } : {}),
    };
    for (const [name, value] of Object.entries(this.tampering?.claims ?? {})) {
      if (value === undefined) delete claims[name];
      else claims[name] = value;
    }
    const key = this.tampering?.foreignKey ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey : this.signingKey;
    const idToken = signJwt(claims, key, { kid: this.signingKid });
    return { status: 200, body: { token_type: 'Bearer', scope: 'openid profile', expires_in: 3600, ext_expires_in: 3600, id_token: idToken } };
  }

  /** Verifies a client assertion as Entra does: registered certificate, signature, claims, time. */
  private checkAssertion(app: EmulatedApplication, assertion: string, audiences: readonly string[], now: number, tenantId: string): void {
    let jwt;
    try {
      jwt = decodeJwt(assertion);
    } catch (error) {
      throw this.aadError(401, 'invalid_client', 50027, `JWT token is invalid or malformed: ${error instanceof JwtError ? error.message : 'unreadable'}.`);
    }
    const x5tS256 = jwt.header['x5t#S256'];
    const x5t = jwt.header['x5t'];
    if (typeof x5tS256 !== 'string' && typeof x5t !== 'string') {
      throw this.aadError(401, 'invalid_client', 700027, 'Client assertion failed signature validation. [Reason - The key was not found. x5t or x5t#S256 header is missing.]');
    }
    const found = app.keyCredentials.find((k) => (typeof x5tS256 === 'string' ? k.x5tS256 === x5tS256 : k.x5t === x5t));
    // A key addKey registered only now is unknown to the token service for a while, and each
    // tenant's token service learns it at its own time (`keyPropagationMs`): until then it is
    // "not registered on application", AADSTS700027 InvalidClientCredential / "Client assertion
    // contains an invalid signature ... The key was not found" (entra-docs:
    // docs/identity-platform/reference-error-codes.md, AADSTS700027; the directory's replication
    // delay: microsoft-graph-docs-contrib concepts/delta-query-overview.md, "Processing delays").
    const key = found && this.keyPropagated(found.keyId, tenantId, now) ? found : undefined;
    if (!key) {
      const print = typeof x5tS256 === 'string' ? x5tS256 : String(x5t);
      throw this.aadError(401, 'invalid_client', 700027, `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${print}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${app.appId}'.]`);
    }
    if (!keyIsValid(key, now)) {
      throw this.aadError(401, 'invalid_client', 700027, `The certificate used to sign the client assertion is expired or not yet valid for app '${app.appId}'.`);
    }
    let valid: boolean;
    try {
      valid = verifyJwtSignature(jwt, key.publicKey);
    } catch {
      valid = false;
    }
    if (!valid) {
      throw this.aadError(401, 'invalid_client', 700027, 'Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]');
    }
    const { claims } = jwt;
    if (claims['iss'] !== app.appId || claims['sub'] !== app.appId) {
      throw this.aadError(401, 'invalid_client', 700023, "Client assertion contains an invalid 'iss' or 'sub' claim: both must be the client id.");
    }
    if (typeof claims['aud'] !== 'string' || !audiences.includes(claims['aud'])) {
      throw this.aadError(401, 'invalid_client', 700021, `Client assertion audience claim does not match the token endpoint. [Audience: '${String(claims['aud'])}']`);
    }
    const exp = numericClaim(claims, 'exp');
    const nbf = numericClaim(claims, 'nbf') ?? numericClaim(claims, 'iat');
    const seconds = now / 1000;
    const skew = this.options.clockSkewSeconds;
    if (exp === undefined || exp < seconds - skew || (nbf !== undefined && nbf > seconds + skew)) {
      throw this.aadError(401, 'invalid_client', 700024, `Client assertion is not within its valid time range. Current time: ${new Date(now).toISOString()}.`);
    }
  }

  /** Whether a key registered by addKey is known, by now, to the token service of `tenantId`. */
  private keyPropagated(keyId: string, tenantId: string, now: number): boolean {
    const addedAt = this.keysAddedAt.get(keyId);
    const windowMs = this.realismSettings.keyPropagationMs ?? 0;
    if (addedAt === undefined || windowMs <= 0) return true;
    // Between half the window and all of it, per key and tenant: refused at first everywhere,
    // accepted everywhere once the window has passed.
    const delayMs = windowMs * (0.5 + 0.5 * seededUnit(this.realismSettings.seed ?? 1, 'key', keyId, tenantId));
    return now >= addedAt + delayMs;
  }

  /**
   * The admin-consent page, answered at once as the tenant's administrator decided. Redirect
   * parameters as documented: `/{tenant}/adminconsent` sends `tenant`, `state` and
   * `admin_consent=True`, or `error=permission_denied&error_description=…` (entra-docs:
   * docs/identity-platform/v2-oauth2-client-creds-grant-flow.md, "Request the permissions from a
   * directory admin"); `/{tenant}/v2.0/adminconsent` adds `scope` to a success and keeps
   * `admin_consent=True` beside `error=consent_required&error_description=AADSTS65004…` on a
   * refusal (docs/identity-platform/v2-admin-consent.md). Nothing here authenticates the
   * redirect: the same documents warn that `tenant` can be sent by anyone.
   */
  private adminConsent(tenantSegment: string, tenant: TenantRecord | undefined, url: URL, v2: boolean): { status: number; body?: unknown; headers?: Record<string, string> } {
    const clientId = url.searchParams.get('client_id') ?? '';
    const redirectUri = url.searchParams.get('redirect_uri') ?? '';
    const state = url.searchParams.get('state');
    const app = this.applications.get(clientId);
    if (!app) {
      throw this.aadError(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory.`);
    }
    if (!app.redirectUris.includes(redirectUri)) {
      throw this.aadError(400, 'invalid_request', 50011, `The redirect URI '${redirectUri}' specified in the request does not match the redirect URIs configured for the application '${clientId}'.`);
    }
    const target = new URL(redirectUri);
    const scope = url.searchParams.get('scope');
    let failed = true;
    if (!tenant) {
      target.searchParams.set('error', 'invalid_request');
      target.searchParams.set('error_description', `AADSTS90002: Tenant '${tenantSegment}' not found.`);
    } else if (v2 && (scope === null || scope.trim() === '')) {
      // `scope` is Required on the v2.0 endpoint (v2-admin-consent.md, "Request the permissions
      // from a directory admin"): a request without it is refused, as any missing parameter is
      // (AADSTS900144, reference-error-codes.md).
      target.searchParams.set('admin_consent', 'True');
      target.searchParams.set('error', 'invalid_request');
      target.searchParams.set('error_description', "AADSTS900144: The request body must contain the following parameter: 'scope'.");
    } else if (tenant.decision === 'cancel') {
      // The administrator closed the consent page: AADSTS65004 UserDeclinedConsent
      // (reference-error-codes.md), sent as `access_denied`.
      if (v2) target.searchParams.set('admin_consent', 'True');
      target.searchParams.set('error', 'access_denied');
      target.searchParams.set('error_description', 'AADSTS65004: User declined to consent to access the app.');
    } else if (tenant.decision === 'deny') {
      if (v2) {
        target.searchParams.set('admin_consent', 'True');
        target.searchParams.set('error', 'consent_required');
        target.searchParams.set('error_description', 'AADSTS65004: The resource owner or authorization server denied the request.');
      } else {
        target.searchParams.set('error', 'permission_denied');
        target.searchParams.set('error_description', 'The admin canceled the request');
      }
    } else {
      failed = false;
      const granted = grantedRoles(app, tenant.approvedRoles);
      this.recordConsent(tenant, app.appId, granted);
      target.searchParams.set('admin_consent', 'True');
      target.searchParams.set('tenant', tenant.id);
      if (v2) target.searchParams.set('scope', granted.map((role) => `https://graph.microsoft.com/${role}`).join(' '));
    }
    // `consentErrorsWithoutState`: the client credentials page documents the admin-consent error
    // redirect as `error` and `error_description` only, with an example without `state`
    // ("GET http://localhost/myapp/permissions?error=permission_denied&error_description=The+admin+canceled+the+request",
    // entra-docs: docs/identity-platform/v2-oauth2-client-creds-grant-flow.md, "Error response"),
    // while v2-admin-consent.md lists `state` among an error's parameters: a client must cope with both.
    const dropState = failed && this.realismSettings.consentErrorsWithoutState === true;
    if (state !== null && !dropState) target.searchParams.set('state', state);
    return { status: 302, headers: { location: target.href } };
  }

  // ---- graph.microsoft.com ----

  private authorize(request: IncomingMessage, record: { clientId?: string; tenantId?: string }): AccessClaims {
    const header = request.headers['authorization'] ?? '';
    const match = /^Bearer (.+)$/i.exec(header);
    if (!match) throw graphError(401, 'InvalidAuthenticationToken', 'Access token is empty.');
    let claims: Record<string, unknown>;
    try {
      const jwt = decodeJwt(match[1] as string);
      if (!verifyJwtSignature(jwt, this.signingKey)) throw new JwtError('bad signature');
      claims = jwt.claims;
    } catch {
      throw graphError(401, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid audience or signature.');
    }
    const exp = numericClaim(claims, 'exp') ?? 0;
    if (exp * 1000 < this.now()) throw graphError(401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.');
    if (claims['aud'] !== this.graphBaseUrl) throw graphError(401, 'InvalidAuthenticationToken', 'Invalid audience.');
    const tid = String(claims['tid']);
    const appid = String(claims['appid']);
    record.clientId = appid;
    record.tenantId = tid;
    const tenant = this.tenants.get(tid);
    if (!tenant?.consents.has(appid)) {
      throw graphError(401, 'InvalidAuthenticationToken', 'The identity of the calling application could not be established: its service principal is not present in the tenant.');
    }
    // Graph authorises app-only calls by the token's `roles` claim, a snapshot of what was
    // granted when the token was issued (entra-docs: access-token-claims-reference.md, `roles`).
    const claimed = claims['roles'];
    const roles = Array.isArray(claimed) ? claimed.filter((r): r is string => typeof r === 'string') : [];
    return { tid, appid, roles };
  }

  /**
   * `throttle`: budgets of Graph requests per application and tenant, and per tenant across
   * applications, over sliding windows; over budget, `429 Too Many Requests` with `Retry-After`
   * (microsoft-graph-docs-contrib: concepts/throttling.md, "What happens when throttling
   * occurs?"; concepts/throttling-limits.md, "Identity and access service limits": limits per
   * "application+tenant pair" and per "tenant"). Refused requests are not counted.
   */
  private throttle(claims: AccessClaims): void {
    const budgets = this.realismSettings.throttle;
    if (!budgets) return;
    const now = this.now();
    const checks: [string, { requests: number; windowMs: number }][] = [];
    if (budgets.perAppPerTenant) checks.push([`app:${claims.appid}:${claims.tid}`, budgets.perAppPerTenant]);
    if (budgets.perTenant) checks.push([`tenant:${claims.tid}`, budgets.perTenant]);
    let waitMs = 0;
    for (const [key, budget] of checks) waitMs = Math.max(waitMs, this.budgets.wouldRefuse(key, budget, now) ?? 0);
    if (waitMs > 0) {
      throw graphError(429, 'TooManyRequests', 'Too many requests. Please retry after the time the Retry-After header gives.', {
        'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))),
      });
    }
    for (const [key] of checks) this.budgets.count(key, now);
  }

  private requireRole(claims: AccessClaims, anyOf: readonly string[]): void {
    if (!anyOf.some((role) => claims.roles.includes(role))) {
      throw graphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    }
  }

  private async graph(
    method: string,
    url: URL,
    body: string,
    request: IncomingMessage,
    record: { clientId?: string; tenantId?: string },
  ): Promise<{ status: number; body?: unknown; headers?: Record<string, string> }> {
    const claims = this.authorize(request, record);
    this.throttle(claims);
    const path = url.pathname.replace(/\/microsoft\.graph\.delta$/, '/delta');
    const tenant = this.tenants.get(claims.tid) as TenantRecord;
    let match: RegExpExecArray | null;
    if (method === 'GET' && (match = /^\/v1\.0\/(users|groups)\/delta$/.exec(path))) {
      const resource = match[1] as DeltaResource;
      this.requireRole(claims, resource === 'users' ? ['User.Read.All', 'Directory.Read.All'] : ['GroupMember.Read.All', 'Group.Read.All', 'Directory.Read.All']);
      return { status: 200, body: this.delta(tenant, resource, url, request) };
    }
    if (method === 'GET' && (match = /^\/v1\.0\/(users|groups)$/.exec(path))) {
      const resource = match[1] as DeltaResource;
      this.requireRole(claims, resource === 'users' ? ['User.Read.All', 'Directory.Read.All'] : ['GroupMember.Read.All', 'Group.Read.All', 'Directory.Read.All']);
      return { status: 200, body: this.list(tenant, resource, url) };
    }
    if ((match = /^\/v1\.0\/applications\/([^/]+)(\/addKey|\/removeKey)?$/.exec(path))) {
      const app = [...this.applications.values()].find((a) => a.objectId === match?.[1]);
      if (!app || app.homeTenantId !== claims.tid) {
        throw graphError(404, 'Request_ResourceNotFound', `Resource '${match[1] ?? ''}' does not exist or one of its queried reference-property objects are not present.`);
      }
      // `Application.ReadWrite.OwnedBy` reaches only applications whose owners include the
      // caller's service principal, and an application is not its own owner unless made so
      // (microsoft-graph-docs-contrib: concepts/permissions-reference.md,
      // Application.ReadWrite.OwnedBy; application-get.md, "Permissions", whose table for
      // application permissions is api-reference/v1.0/includes/permissions/application-get-permissions.md:
      // Application.Read.All, or Application.ReadWrite.OwnedBy, Application.ReadWrite.All).
      const owns = claims.roles.includes('Application.ReadWrite.OwnedBy') && app.owners.includes(claims.appid);
      if (method === 'GET' && match[2] === undefined) {
        if (!owns) this.requireRole(claims, ['Application.Read.All', 'Application.ReadWrite.All']);
        return { status: 200, body: this.applicationJson(app) };
      }
      if (method === 'POST' && match[2] !== undefined) {
        // "An application does not need any specific permission to roll its own keys": on
        // itself, the proof of possession is the whole check (application-addkey.md and
        // application-removekey.md, "Permissions"); on another application, the permissions
        // listed there apply.
        if (app.appId !== claims.appid && !owns) this.requireRole(claims, ['Application.ReadWrite.All', 'Directory.ReadWrite.All']);
        if (match[2] === '/addKey') return { status: 200, body: this.addKey(app, body) };
        this.removeKey(app, body);
        return { status: 204 };
      }
    }
    throw graphError(400, 'BadRequest', `Resource not found for the segment '${path}'.`);
  }

  private delta(tenant: TenantRecord, resource: DeltaResource, url: URL, request: IncomingMessage): Record<string, unknown> {
    const directory = tenant.directory;
    const skip = url.searchParams.get('$skiptoken');
    const deltaToken = url.searchParams.get('$deltatoken');
    // An empty `$deltatoken` is the initial query (the Location of a 410, delta-query-overview.md).
    const token = skip ?? (deltaToken === '' ? null : deltaToken);
    const base = `${this.graphBaseUrl}/v1.0/${resource}/delta`;
    let state: RoundState;
    if (token !== null) {
      const decoded = this.sealer.open(token);
      const plan = decoded?.plan ? this.plans.get(decoded.plan.id) : undefined;
      if (!decoded || decoded.r !== resource || decoded.t !== tenant.id || decoded.g !== directory.tokenGeneration || (decoded.plan && !plan)) {
        throw this.expiredToken(base, decoded?.r === resource ? decoded.sel : null);
      }
      if (skip !== null && decoded.plan && plan) {
        this.plans.delete(plan.id);
        this.plans.set(plan.id, plan);
        return this.plannedPage(plan, decoded, request, base);
      }
      // A delta link starts a new round from where the previous one ended.
      state = skip !== null ? decoded : { ...decoded, since: decoded.upTo, upTo: this.horizon(directory, decoded.upTo), after: null, part: null };
    } else {
      const select = url.searchParams.get('$select');
      let sel: string[] | null = null;
      if (select !== null) {
        sel = select.split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== 'id');
        const unknown = sel.find((s) => !selectableProperties[resource].includes(s));
        if (unknown !== undefined) {
          throw graphError(400, 'Request_BadRequest', `Could not find a property named '${unknown}' on type 'microsoft.graph.${resource === 'users' ? 'user' : 'group'}'.`);
        }
      }
      state = { r: resource, t: tenant.id, g: directory.tokenGeneration, sel, since: null, upTo: this.horizon(directory, 0), after: null, part: null };
    }
    if (skip === null && shapesDeltaRounds(this.realismSettings)) {
      const plan = this.startPlan(tenant, state);
      return this.plannedPage(plan, { ...state, plan: { id: plan.id, pos: 0, n: 0, empty: false } }, request, base);
    }
    const page = computePage(directory, state, { pageSize: this.clientPageSize(request), membersPerRecord: this.options.membersPerRecord });
    const context = this.deltaContext(resource, state.sel);
    return page.next === null
      ? { '@odata.context': context, '@odata.deltaLink': `${base}?$deltatoken=${this.sealer.seal({ ...state, after: null, part: null })}`, value: page.value }
      : { '@odata.context': context, '@odata.nextLink': `${base}?$skiptoken=${this.sealer.seal(page.next)}`, value: page.value };
  }

  private deltaContext(resource: DeltaResource, sel: readonly string[] | null): string {
    return `${this.graphBaseUrl}/v1.0/$metadata#${resource}${sel ? `(${sel.join(',')})` : ''}`;
  }

  /** The page size the client asks for with `Prefer: odata.maxpagesize`, within the emulator's limits. */
  private clientPageSize(request: IncomingMessage): number {
    const prefer = /odata\.maxpagesize=(\d+)/.exec(String(request.headers['prefer'] ?? ''));
    return Math.max(1, Math.min(this.options.maxPageSize, prefer ? Number(prefer[1]) : this.options.defaultPageSize));
  }

  /**
   * The last change a round starting now includes: every change, or with `replicationLagMs` only
   * those older than the lag ("Expect varying delays between the time a change is made to a
   * resource instance ... and the time the tracked change is reflected in a delta query
   * response", microsoft-graph-docs-contrib: concepts/delta-query-overview.md, "Processing
   * delays"). Never before `floor`, where the previous round ended.
   */
  private horizon(directory: EmulatedTenantDirectory, floor: number): number {
    const lagMs = this.realismSettings.replicationLagMs ?? 0;
    if (lagMs <= 0) return directory.seq;
    return Math.max(floor, directory.seqAt(this.now() - lagMs));
  }

  /**
   * The answer to an expired or unknown state token: 400 `syncStateNotFound` ("In case of an
   * expired token, the service should respond with a 40X-series error with error codes such as
   * syncStateNotFound"), or with `goneWithLocation` the synchronization reset answer "410 (gone)
   * and a Location header containing a request URL with an empty $deltaToken (same as the
   * initial query)" (microsoft-graph-docs-contrib: concepts/delta-query-overview.md, "Token
   * duration", "Synchronization reset").
   */
  private expiredToken(base: string, sel: readonly string[] | null): HttpError {
    if (this.realismSettings.goneWithLocation) {
      const location = `${base}?$deltatoken=${sel ? `&$select=${sel.join(',')}` : ''}`;
      return graphError(410, 'resyncRequired', 'The delta token has expired: restart with a full synchronization from the Location URL.', { location });
    }
    return graphError(400, 'syncStateNotFound', 'The sync state generation is not found. The delta token is expired and data must be synchronized again.');
  }

  /** Computes a whole round for the realism behaviours (see `rounds.ts`) and keeps it for its skip tokens. */
  private startPlan(tenant: TenantRecord, state: RoundState): RoundPlan {
    this.planCounter += 1;
    const id = `${state.r}-${this.planCounter}`;
    const records = planRecords(tenant.directory, {
      // Seeded choices depend on what the round covers, not on how many rounds came before: the
      // same round asked for again is the same round.
      id: `${state.r}:${state.since ?? 'initial'}:${state.upTo}:${(state.sel ?? []).join(',')}`,
      resource: state.r,
      sel: state.sel,
      since: state.since,
      upTo: state.upTo,
      membersPerRecord: this.options.membersPerRecord,
      realism: this.realismSettings,
    });
    const plan: RoundPlan = { id, resource: state.r, tenantId: tenant.id, generation: state.g, sel: state.sel, since: state.since, upTo: state.upTo, records };
    this.plans.set(id, plan);
    while (this.plans.size > maxPlans) this.plans.delete(this.plans.keys().next().value as string);
    return plan;
  }

  /**
   * One page of a planned round. `serverPageSize`: the server picks the page size, whatever
   * `Prefer: odata.maxpagesize` asks ("The number of objects in each page can vary depending on
   * the resource type and the type of changes made to the resource", delta-query-overview.md,
   * "Optional query parameters"). `emptyPageRate`: a page with no records that still has a
   * `@odata.nextLink` ("If an @odata.nextLink URL is returned, there are additional pages of data
   * to be retrieved in the session. This is true even if the current response may contain an
   * empty result", delta-query-overview.md, "Use delta query to track changes in a resource
   * collection"); never two in a row, never the last page.
   */
  private plannedPage(plan: RoundPlan, state: RoundState, request: IncomingMessage, base: string): Record<string, unknown> {
    const at = state.plan as NonNullable<RoundState['plan']>;
    const seed = this.realismSettings.seed ?? 1;
    const context = this.deltaContext(plan.resource, plan.sel);
    const remaining = plan.records.length - at.pos;
    const emptyRate = this.realismSettings.emptyPageRate ?? 0;
    if (remaining > 0 && !at.empty && emptyRate > 0 && seededUnit(seed, plan.id, 'empty', at.n) < emptyRate) {
      const next: RoundState = { ...state, plan: { id: plan.id, pos: at.pos, n: at.n + 1, empty: true } };
      return { '@odata.context': context, '@odata.nextLink': `${base}?$skiptoken=${this.sealer.seal(next)}`, value: [] };
    }
    const size = this.serverPageSize(plan.id, at.n, seed) ?? this.clientPageSize(request);
    const value = plan.records.slice(at.pos, at.pos + size).map((record) => structuredClone(record));
    const pos = at.pos + value.length;
    if (pos >= plan.records.length) {
      const end: RoundState = { r: plan.resource, t: plan.tenantId, g: plan.generation, sel: plan.sel, since: plan.since, upTo: plan.upTo, after: null, part: null };
      return { '@odata.context': context, '@odata.deltaLink': `${base}?$deltatoken=${this.sealer.seal(end)}`, value };
    }
    const next: RoundState = { ...state, plan: { id: plan.id, pos, n: at.n + 1, empty: false } };
    return { '@odata.context': context, '@odata.nextLink': `${base}?$skiptoken=${this.sealer.seal(next)}`, value };
  }

  /** The page size `serverPageSize` chooses for page `n` of a plan; undefined when the client's is used. */
  private serverPageSize(planId: string, n: number, seed: number): number | undefined {
    const setting = this.realismSettings.serverPageSize;
    if (setting === undefined) return undefined;
    if (typeof setting === 'number') return Math.max(1, Math.floor(setting));
    const min = Math.max(1, Math.floor(Math.min(setting.min, setting.max)));
    const max = Math.max(min, Math.floor(Math.max(setting.min, setting.max)));
    return min + Math.floor(seededUnit(seed, planId, 'size', n) * (max - min + 1));
  }

  private list(tenant: TenantRecord, resource: DeltaResource, url: URL): Record<string, unknown> {
    const top = Math.max(1, Math.min(999, Number(url.searchParams.get('$top') ?? 100) || 100));
    const directory = tenant.directory;
    const ids = (resource === 'users' ? directory.userIds.ids : directory.groupIds.ids).slice(0, top);
    const value = ids.map((id) => {
      const source = resource === 'users' ? directory.users.get(id)?.data : directory.groups.get(id)?.data;
      return { id, displayName: source?.displayName ?? null };
    });
    return { '@odata.context': `${this.graphBaseUrl}/v1.0/$metadata#${resource}(id,displayName)`, value };
  }

  private applicationJson(app: EmulatedApplication): Record<string, unknown> {
    return {
      id: app.objectId,
      appId: app.appId,
      displayName: app.displayName,
      keyCredentials: app.keyCredentials.map(keyCredentialJson),
      passwordCredentials: app.passwordCredentials.map((p) => ({ keyId: p.keyId, hint: p.hint, endDateTime: p.endDateTime.toISOString(), secretText: null })),
      web: { redirectUris: [...app.redirectUris] },
    };
  }

  private parseJson(body: string): Record<string, unknown> {
    try {
      const value = JSON.parse(body) as unknown;
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      // fall through
    }
    throw graphError(400, 'BadRequest', 'The request body is not a JSON object.');
  }

  private addKey(app: EmulatedApplication, body: string): Record<string, unknown> {
    const input = this.parseJson(body);
    verifyProof(app, input['proof'], this.now(), this.options.clockSkewSeconds);
    const credential = input['keyCredential'] as Record<string, unknown> | undefined;
    if (!credential || credential['type'] !== 'AsymmetricX509Cert' || credential['usage'] !== 'Verify' || typeof credential['key'] !== 'string') {
      throw graphError(400, 'Request_BadRequest', "keyCredential must have type 'AsymmetricX509Cert', usage 'Verify' and a base64 'key'.");
    }
    const key = keyCredentialFrom(Buffer.from(credential['key'], 'base64'));
    if (app.keyCredentials.some((k) => k.customKeyIdentifier === key.customKeyIdentifier)) {
      throw graphError(400, 'Request_BadRequest', 'A key credential with the same thumbprint already exists on the application.');
    }
    app.keyCredentials.push(key);
    this.keysAddedAt.set(key.keyId, this.now());
    return keyCredentialJson(key);
  }

  private removeKey(app: EmulatedApplication, body: string): void {
    const input = this.parseJson(body);
    verifyProof(app, input['proof'], this.now(), this.options.clockSkewSeconds);
    const keyId = input['keyId'];
    const at = app.keyCredentials.findIndex((k) => k.keyId === keyId);
    if (at < 0) throw graphError(404, 'Request_ResourceNotFound', `No key credential with keyId '${String(keyId)}' exists on the application.`);
    const now = this.now();
    const remainingValid = app.keyCredentials.filter((k, i) => i !== at && keyIsValid(k, now)).length;
    if (remainingValid === 0) {
      throw graphError(400, 'Request_BadRequest', 'Removing this key would leave the application without a valid certificate.');
    }
    app.keyCredentials.splice(at, 1);
  }
}

/** Starts an {@link EntraEmulator}; close it with `close()`. */
export function startEntraEmulator(options: EntraEmulatorOptions = {}): Promise<EntraEmulator> {
  return EntraEmulator.start(options);
}
