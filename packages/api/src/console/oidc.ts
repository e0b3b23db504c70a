import { createHmac } from 'node:crypto';
import * as client from 'openid-client';

/** How the console signs users in with OpenID Connect. */
export interface ConsoleOidcSettings {
  /** Issuer URL (discovery at `<issuer>/.well-known/openid-configuration`). */
  readonly issuer: string;
  readonly clientId: string;
  /** Absent: a public client, protected by PKCE alone. */
  readonly clientSecret?: string | undefined;
  /** Space-separated scopes (default `openid profile email`). */
  readonly scopes?: string | undefined;
  /** Claim listing `<account>:<role>` entries (default `dirsync_roles`). */
  readonly rolesClaim?: string | undefined;
}

/** The claims of a completed sign-in that the console uses. */
export interface OidcIdentity {
  readonly subject: string;
  readonly name: string;
  readonly email: string | null;
  /** The roles claim's value, from the ID token or else the userinfo endpoint. */
  readonly roles: unknown;
}

/** A sign-in the identity provider refused, or whose answer failed a check; `reason` is safe to show. */
export class OidcSignInError extends Error {
  readonly reason: string;
  constructor(reason: string, options?: ErrorOptions) {
    super(reason, options);
    this.name = 'OidcSignInError';
    this.reason = reason;
  }
}

const loopbackHosts = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** True for an http URL on this machine: the only place an identity provider may skip TLS. */
export function isLoopbackHttp(url: URL): boolean {
  return url.protocol === 'http:' && loopbackHosts.has(url.hostname);
}

/**
 * The PKCE verifier and the nonce of one sign-in: derived from the secret of the browser that
 * started it (a cookie only that browser holds) and the sign-in's state, so nothing stored in
 * the database can redeem an authorization code, and a code carried to another browser is
 * exchanged with the wrong verifier.
 */
export function signInSecrets(browserSecret: string, state: string): { verifier: string; nonce: string } {
  const derive = (purpose: string) => createHmac('sha256', browserSecret).update(`${purpose}\u0000${state}`).digest('base64url');
  return { verifier: derive('pkce'), nonce: derive('nonce') };
}

/** What a safe-to-log error of openid-client carries (codes, never the request's values). */
export function describeOidcError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { type: typeof error };
  const fields = error as Error & { code?: unknown; error?: unknown; status?: unknown };
  return {
    type: error.name,
    ...(typeof fields.code === 'string' ? { code: fields.code } : {}),
    ...(typeof fields.error === 'string' ? { error: fields.error } : {}),
    ...(typeof fields.status === 'number' ? { status: fields.status } : {}),
  };
}

/** The console's OpenID Connect relying party: discovery once, then authorization URLs and code exchanges. */
export interface ConsoleOidcClient {
  readonly rolesClaim: string;
  /** The provider's authorization URL for a new sign-in. */
  authorizationUrl(input: { state: string; browserSecret: string }): Promise<URL>;
  /** Exchanges the callback's code (PKCE, state, nonce, ID token checked) for the user's identity. */
  complete(currentUrl: URL, input: { state: string; browserSecret: string }): Promise<OidcIdentity>;
}

/**
 * Creates the relying party. An http issuer is accepted only on loopback (tests, a local
 * provider); anything else must be https.
 */
export function createConsoleOidcClient(settings: ConsoleOidcSettings, redirectUri: string): ConsoleOidcClient {
  const issuer = new URL(settings.issuer);
  const insecure = isLoopbackHttp(issuer);
  if (issuer.protocol !== 'https:' && !insecure) throw new Error(`the OpenID Connect issuer must be an https URL (http only on loopback): ${issuer.origin}`);
  const scopes = settings.scopes?.trim() || 'openid profile email';
  const rolesClaim = settings.rolesClaim?.trim() || 'dirsync_roles';
  let discovered: Promise<client.Configuration> | undefined;

  function configuration(): Promise<client.Configuration> {
    discovered ??= (async () => {
      const options: client.DiscoveryRequestOptions = insecure ? { execute: [client.allowInsecureRequests] } : {};
      const secret = settings.clientSecret;
      const publicClient = await client.discovery(issuer, settings.clientId, { redirect_uris: [redirectUri] }, client.None(), options);
      if (secret === undefined || secret === '') return publicClient;
      // Basic is every provider's default; a provider that lists only post gets post.
      const server = publicClient.serverMetadata();
      const methods = server.token_endpoint_auth_methods_supported;
      const auth = methods && !methods.includes('client_secret_basic') && methods.includes('client_secret_post') ? client.ClientSecretPost(secret) : client.ClientSecretBasic(secret);
      const confidential = new client.Configuration(server, settings.clientId, { client_secret: secret, redirect_uris: [redirectUri] }, auth);
      if (insecure) client.allowInsecureRequests(confidential);
      return confidential;
    })();
    // A failed discovery (provider down) is tried again on the next sign-in.
    discovered.catch(() => {
      discovered = undefined;
    });
    return discovered;
  }

  return {
    rolesClaim,
    async authorizationUrl({ state, browserSecret }) {
      const config = await configuration();
      const { verifier, nonce } = signInSecrets(browserSecret, state);
      return client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: scopes,
        response_type: 'code',
        state,
        nonce,
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
    },
    async complete(currentUrl, { state, browserSecret }) {
      const config = await configuration();
      const { verifier, nonce } = signInSecrets(browserSecret, state);
      let tokens;
      try {
        tokens = await client.authorizationCodeGrant(config, currentUrl, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true });
      } catch (error) {
        const fields = error as { error?: unknown; code?: unknown };
        const what = typeof fields.error === 'string' ? fields.error : typeof fields.code === 'string' ? fields.code : 'unexpected answer';
        throw new OidcSignInError(`the identity provider did not confirm the sign-in (${what})`, { cause: error });
      }
      const claims = tokens.claims();
      if (!claims) throw new OidcSignInError('the identity provider sent no ID token');
      let roles: unknown = claims[rolesClaim];
      let profile: Record<string, unknown> = claims;
      if (roles === undefined && tokens.access_token) {
        try {
          const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
          roles = info[rolesClaim];
          profile = { ...info, ...claims };
        } catch (error) {
          throw new OidcSignInError('the identity provider\'s userinfo endpoint did not answer', { cause: error });
        }
      }
      const text = (value: unknown) => (typeof value === 'string' && value.trim() !== '' ? value.trim().slice(0, 200) : undefined);
      const email = text(profile['email']) ?? null;
      return {
        subject: claims.sub,
        name: text(profile['name']) ?? text(profile['preferred_username']) ?? email ?? claims.sub,
        email,
        roles,
      };
    },
  };
}
