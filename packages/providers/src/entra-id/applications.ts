import { createHash, createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';
import { ConfigError, UnavailableError } from '../errors.ts';
import { certificateInfo } from './certificate.ts';
import type { GraphClient } from './client.ts';

/** Audience of addKey/removeKey proofs: the Azure AD Graph resource id, as Graph documents it. */
export const proofAudience = '00000002-0000-0000-c000-000000000000';

/** A certificate on an app registration, as Graph lists it (`keyCredentials`). */
export interface AppKeyCredential {
  readonly keyId: string;
  /** SHA-1 thumbprint, upper-case hex. */
  readonly thumbprint: string;
  readonly displayName: string | null;
  readonly startDateTime: Date | null;
  readonly endDateTime: Date | null;
}

/** A certificate and its private key, PEM. */
export interface CertificateKeyPair {
  readonly certificatePem: string;
  readonly privateKeyPem: string;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

/**
 * The proof-of-possession JWT addKey and removeKey require: RS256, signed with the private key
 * of a certificate currently valid on the application, `x5t` naming that certificate, `aud`
 * {@link proofAudience}, `iss` the application's object id, valid from a minute ago (clock skew)
 * for ten minutes at most. base64url without padding throughout.
 */
export function createProofJwt(applicationObjectId: string, signer: CertificateKeyPair, now: Date = new Date()): string {
  const der = new X509Certificate(signer.certificatePem).raw;
  const nbf = Math.floor(now.getTime() / 1000) - 60;
  const header = { alg: 'RS256', typ: 'JWT', x5t: b64url(createHash('sha1').update(der).digest()) };
  const claims = { aud: proofAudience, iss: applicationObjectId, nbf, exp: nbf + 600, jti: randomUUID() };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = sign('sha256', Buffer.from(input), createPrivateKey(signer.privateKeyPem));
  return `${input}.${b64url(signature)}`;
}

function parseDate(value: unknown): Date | null {
  if (typeof value !== 'string') return null;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : new Date(at);
}

function parseKey(value: unknown): AppKeyCredential | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const key = value as Record<string, unknown>;
  if (typeof key['keyId'] !== 'string') return undefined;
  const identifier = key['customKeyIdentifier'];
  return {
    keyId: key['keyId'],
    thumbprint: typeof identifier === 'string' ? identifier.toUpperCase() : '',
    displayName: typeof key['displayName'] === 'string' ? key['displayName'] : null,
    startDateTime: parseDate(key['startDateTime']),
    endDateTime: parseDate(key['endDateTime']),
  };
}

/** What {@link ApplicationKeys.remove} found. */
export type KeyRemoval = 'removed' | 'absent';

/**
 * Rolls the certificates of the app registration the client authenticates as, with Graph's
 * `addKey` and `removeKey` on `applications/{id}`. Neither needs any permission when an app rolls
 * its own keys (application-addkey.md, application-removekey.md: "An application does not need
 * any specific permission to roll its own keys"): possession of a key already on the app is proven
 * with a signed JWT instead. Nothing here reads the app registration (`GET /applications/{id}`
 * would need `Application.Read.All` or `Application.ReadWrite.OwnedBy`): callers keep the key ids
 * `addKey` returns.
 */
export class ApplicationKeys {
  readonly #client: GraphClient;
  readonly #objectId: string;

  constructor(client: GraphClient, applicationObjectId: string) {
    this.#client = client;
    this.#objectId = applicationObjectId;
  }

  private url(suffix: string): string {
    return `${this.#client.settings.graphBaseUrl}/v1.0/applications/${encodeURIComponent(this.#objectId)}${suffix}`;
  }

  /**
   * Adds `certificatePem` as a verification key, proving possession with `signer`; returns the new
   * keyCredential (its `keyId` is what {@link remove} needs later).
   */
  async add(certificatePem: string, signer: CertificateKeyPair, signal: AbortSignal): Promise<AppKeyCredential> {
    const body = await this.#client.postJson(
      this.url('/addKey'),
      {
        keyCredential: { type: 'AsymmetricX509Cert', usage: 'Verify', key: certificateInfo(certificatePem).derBase64 },
        passwordCredential: null,
        proof: createProofJwt(this.#objectId, signer),
      },
      signal,
    );
    const key = parseKey(body);
    if (!key) throw new UnavailableError('Graph answered addKey without the new key credential');
    return key;
  }

  /**
   * Removes the key `keyId`, proving possession with `signer` (a key that stays). `absent` when
   * Graph no longer knows the key (404: removed earlier, by hand or by a rotation whose answer
   * was lost).
   */
  async remove(keyId: string, signer: CertificateKeyPair, signal: AbortSignal): Promise<KeyRemoval> {
    try {
      await this.#client.postJson(this.url('/removeKey'), { keyId, proof: createProofJwt(this.#objectId, signer) }, signal);
      return 'removed';
    } catch (error) {
      if (error instanceof ConfigError && /\(404 /.test(error.message)) return 'absent';
      throw error;
    }
  }
}
