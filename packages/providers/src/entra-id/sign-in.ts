import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import type { JSONWebKeySet } from 'jose';
import { ProviderError, UnavailableError } from '../errors.ts';
import type { DestinationPolicy } from '../net/destination.ts';
import { type CheckedHttp, checkedHttp } from '../net/undici.ts';
import { readBoundedText, transportError } from './client.ts';
import { isGuid } from './config.ts';

// The administrator's sign-in that proves who answered an admin-consent page. Microsoft's admin
// consent documentation warns that the redirect's `tenant` can be sent by anyone and recommends
// signing the administrator in (entra-docs: docs/identity-platform/v2-admin-consent.md,
// v2-oauth2-client-creds-grant-flow.md). The authorization code is redeemed with the connector's
// certificate (v2-oauth2-auth-code-flow.md, "Request an ID token" / certificate credentials) and
// the id_token checked as id-token-claims-reference.md says: signature against the authority's
// published keys, `aud` the client id, `iss`/`tid` the tenant, `nonce` the one sent.

/**
 * Directory role template ids (the `wids` claim) of users who can grant tenant-wide admin consent
 * to Microsoft Graph application permissions, which is what a connector asks for. Privileged Role
 * Administrator may grant "any permission, for any API"; Cloud Application Administrator and
 * Application Administrator may not grant "Microsoft Graph app roles (application permissions)"
 * (entra-docs: docs/identity/enterprise-apps/grant-admin-consent.md), so they do not count.
 * Global Administrator holds every permission. Ids from
 * docs/identity/role-based-access-control/permissions-reference.md.
 */
export const consentGrantingRoles: Readonly<Record<string, string>> = {
  '62e90394-69f5-4237-9190-012177145e10': 'Global Administrator',
  'e8611ab8-c189-46e8-94e1-60213ab1f814': 'Privileged Role Administrator',
};

/** Longest time between the administrator's sign-in (`iat`) and its verification. */
export const maxSignInAgeSeconds = 600;

/** The sign-in does not prove a tenant administrator's consent (retrying cannot help). */
export class AdminSignInRefusedError extends ProviderError {
  constructor(message: string) {
    super('admin_sign_in_refused', message, false);
  }
}

/** Input of {@link verifyAdminSignIn}. */
export interface AdminSignInInput {
  readonly authorityHost: string;
  /** The tenant of the consent request (GUID or domain): the code is redeemed there. */
  readonly tenantId: string;
  readonly clientId: string;
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly redirectUri: string;
  readonly code: string;
  /** The nonce the authorize request carried. */
  readonly nonce: string;
  /** Extra CA trusted for the authority (private clouds, emulators). */
  readonly caPem?: string | undefined;
  readonly destinations: DestinationPolicy;
  readonly signal: AbortSignal;
  /** Clock (epoch ms); tests may move it. */
  readonly now?: () => number;
}

/** A verified administrator's sign-in. */
export interface VerifiedAdminSignIn {
  /** `tid`: the tenant the administrator signed in to (lower-case GUID). */
  readonly tenantGuid: string;
  /** `oid` of the administrator. */
  readonly objectId: string;
  /** Names of the directory roles among {@link consentGrantingRoles} the user holds. */
  readonly roles: readonly string[];
}

const maxAnswerBytes = 256 * 1024;

// jose loads with the first sign-in, not with the package: every command and process that never
// verifies a consent would otherwise load its 46 modules at start.
const joseLibrary = () => import('jose');

async function clientAssertion(input: AdminSignInInput, audience: string): Promise<string> {
  const { importPKCS8, SignJWT } = await joseLibrary();
  const der = new X509Certificate(input.certificatePem).raw;
  const key = await importPKCS8(input.privateKeyPem, 'PS256');
  const now = Math.floor((input.now ?? Date.now)() / 1000);
  return new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'PS256', typ: 'JWT', 'x5t#S256': createHash('sha256').update(der).digest('base64url') })
    .setIssuer(input.clientId)
    .setSubject(input.clientId)
    .setAudience(audience)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + 300)
    .sign(key);
}

async function call(http: CheckedHttp, url: string, init: { method: 'GET' | 'POST'; body?: string }, signal: AbortSignal): Promise<{ status: number; json: Record<string, unknown> }> {
  let response;
  try {
    response = await http.request(url, {
      dispatcher: http.agent,
      method: init.method,
      signal,
      ...(init.body === undefined ? {} : { body: init.body, headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
    });
  } catch (error) {
    if (signal.aborted) throw new UnavailableError(`${new URL(url).origin} did not answer in time`);
    throw transportError(error, new URL(url).origin);
  }
  const text = await readBoundedText(response.body, maxAnswerBytes, 'the authority answer');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    if (response.statusCode >= 500 || response.statusCode === 429) throw new UnavailableError(`the authority answered HTTP ${response.statusCode}`);
    throw new AdminSignInRefusedError(`the authority answered HTTP ${response.statusCode} without JSON`);
  }
  return { status: response.statusCode, json: json as Record<string, unknown> };
}

/** The AADSTS sentence of an error description, without trace ids. */
function aadsts(description: unknown): string {
  const text = typeof description === 'string' ? description : '';
  return /AADSTS\d+:[^]*?(?=\s+Trace ID:|$)/.exec(text)?.[0]?.replace(/\s+/g, ' ').trim() ?? 'no description';
}

function why(error: unknown, joseErrors: typeof import('jose').errors): string {
  if (error instanceof joseErrors.JWTExpired) return 'has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `fails its ${error.claim} check (${error.reason})`;
  if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWSSignatureVerificationFailed) return "is not signed by one of the authority's published keys";
  if (error instanceof joseErrors.JOSEError) return `is not valid (${error.code})`;
  return 'is not valid';
}

/**
 * Redeems the authorization code of an administrator's sign-in (the connector's certificate as
 * client assertion) and verifies the id_token it returns: RS256 signature against the keys the
 * authority publishes for the tenant (its OpenID metadata's `jwks_uri`), `aud` = client id,
 * `iss` = the metadata's `issuer` for `tid`, `tid` a GUID and, when the request named a GUID, that GUID,
 * `nonce` = the request's, issued at most {@link maxSignInAgeSeconds} ago and unexpired, and a
 * `wids` role among {@link consentGrantingRoles}. Every connection passes the destination policy.
 * Throws {@link AdminSignInRefusedError} when the sign-in proves nothing, {@link UnavailableError}
 * when the authority could not be asked. The code and tokens never appear in an error.
 */
export async function verifyAdminSignIn(input: AdminSignInInput): Promise<VerifiedAdminSignIn> {
  const tenantPath = `${input.authorityHost}/${encodeURIComponent(input.tenantId)}`;
  const tokenUrl = `${tenantPath}/oauth2/v2.0/token`;
  const http = await checkedHttp(input.destinations, { caPem: input.caPem, timeoutMs: 30_000 });
  try {
    const form = new URLSearchParams({
      client_id: input.clientId,
      grant_type: 'authorization_code',
      code: input.code,
      redirect_uri: input.redirectUri,
      scope: 'openid profile',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(input, tokenUrl),
    });
    const token = await call(http, tokenUrl, { method: 'POST', body: form.toString() }, input.signal);
    if (token.status !== 200) {
      if (token.status >= 500 || token.status === 429) throw new UnavailableError(`the token endpoint answered HTTP ${token.status}`);
      const code = typeof token.json['error'] === 'string' ? token.json['error'].slice(0, 64) : 'invalid_response';
      throw new AdminSignInRefusedError(`the sign-in's code was not redeemed: ${code} (${aadsts(token.json['error_description'])})`);
    }
    const idToken = token.json['id_token'];
    if (typeof idToken !== 'string') throw new AdminSignInRefusedError('the token endpoint returned no id_token');
    // The issuer and keys come from the tenant's OpenID metadata: national clouds publish an
    // issuer host other than the authority's (China: login.partner.microsoftonline.cn).
    const metadata = await call(http, `${tenantPath}/v2.0/.well-known/openid-configuration`, { method: 'GET' }, input.signal);
    const issuerTemplate = metadata.json['issuer'];
    const jwksUri = metadata.json['jwks_uri'];
    if (metadata.status !== 200 || typeof issuerTemplate !== 'string' || typeof jwksUri !== 'string' || !jwksUri.startsWith('https://')) {
      throw new UnavailableError(`the authority's OpenID metadata could not be read (HTTP ${metadata.status})`);
    }
    const keys = await call(http, jwksUri, { method: 'GET' }, input.signal);
    if (keys.status !== 200 || !Array.isArray(keys.json['keys'])) throw new UnavailableError(`the authority's signing keys could not be read (HTTP ${keys.status})`);
    const { createLocalJWKSet, errors, jwtVerify } = await joseLibrary();
    let claims: Record<string, unknown>;
    try {
      const verified = await jwtVerify(idToken, createLocalJWKSet(keys.json as unknown as JSONWebKeySet), {
        algorithms: ['RS256'],
        audience: input.clientId,
        maxTokenAge: maxSignInAgeSeconds,
        clockTolerance: 60,
        requiredClaims: ['iss', 'aud', 'exp', 'iat', 'tid', 'oid', 'nonce'],
        ...(input.now === undefined ? {} : { currentDate: new Date(input.now()) }),
      });
      claims = verified.payload as Record<string, unknown>;
    } catch (error) {
      throw new AdminSignInRefusedError(`the id_token ${why(error, errors)}`);
    }
    const tid = typeof claims['tid'] === 'string' ? claims['tid'].toLowerCase() : '';
    if (!isGuid(tid)) throw new AdminSignInRefusedError('the id_token names no tenant GUID');
    // The metadata's issuer names the tenant asked for (or `{tenantid}`); the token must be issued
    // by the tenant it names, on that issuer host (which tenant that is, is checked next).
    const expectedIssuer = issuerTemplate.replace(/\{tenantid\}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i, tid);
    if (claims['iss'] !== expectedIssuer) throw new AdminSignInRefusedError('the id_token was not issued by the tenant it names');
    if (isGuid(input.tenantId) && tid !== input.tenantId.toLowerCase()) {
      throw new AdminSignInRefusedError(`the administrator signed in to tenant ${tid}, not to the tenant of the request`);
    }
    if (claims['nonce'] !== input.nonce) throw new AdminSignInRefusedError('the id_token does not carry the nonce of this consent request');
    const wids = Array.isArray(claims['wids']) ? claims['wids'].filter((w): w is string => typeof w === 'string') : undefined;
    if (wids === undefined) {
      throw new AdminSignInRefusedError("the id_token carries no directory roles (wids): the connector's app registration must emit them (groupMembershipClaims DirectoryRole)");
    }
    const roles = wids.map((w) => consentGrantingRoles[w.toLowerCase()]).filter((r): r is string => r !== undefined);
    if (roles.length === 0) {
      throw new AdminSignInRefusedError('the user who signed in holds no directory role that can grant admin consent to application permissions (Global Administrator or Privileged Role Administrator)');
    }
    const oid = typeof claims['oid'] === 'string' ? claims['oid'] : '';
    return { tenantGuid: tid, objectId: oid, roles };
  } finally {
    await http.agent.close().catch(() => undefined);
  }
}
