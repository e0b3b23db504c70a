import { constants, createHash, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';

/** A decoded compact JWS: header and claims as JSON objects, plus what was signed. */
export interface DecodedJwt {
  readonly header: Record<string, unknown>;
  readonly claims: Record<string, unknown>;
  readonly signingInput: string;
  readonly signature: Buffer;
}

/** Why a token was refused; `message` is meant for an AADSTS-style error description. */
export class JwtError extends Error {}

const segment = /^[A-Za-z0-9_-]+$/;

/** base64url without padding, as JWS requires (RFC 7515 §2). */
export function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/** Splits and parses a compact JWS. Refuses padding and anything that is not base64url. */
export function decodeJwt(token: string): DecodedJwt {
  const parts = token.split('.');
  if (parts.length !== 3) throw new JwtError('the token is not a compact JWS (three dot-separated parts)');
  const [h, c, s] = parts as [string, string, string];
  for (const part of [h, c, s]) {
    if (!segment.test(part)) throw new JwtError('the token is not base64url without padding');
  }
  let header: unknown;
  let claims: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
  } catch {
    throw new JwtError('the token header or claims are not JSON');
  }
  if (typeof header !== 'object' || header === null || typeof claims !== 'object' || claims === null) {
    throw new JwtError('the token header or claims are not JSON objects');
  }
  return {
    header: header as Record<string, unknown>,
    claims: claims as Record<string, unknown>,
    signingInput: `${h}.${c}`,
    signature: Buffer.from(s, 'base64url'),
  };
}

/** Verifies an RS256 or PS256 signature with `key`. */
export function verifyJwtSignature(jwt: DecodedJwt, key: KeyObject): boolean {
  const alg = jwt.header['alg'];
  if (alg === 'RS256') return verify('sha256', Buffer.from(jwt.signingInput), key, jwt.signature);
  if (alg === 'PS256') {
    return verify(
      'sha256',
      Buffer.from(jwt.signingInput),
      { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
      jwt.signature,
    );
  }
  throw new JwtError(`unsupported signing algorithm ${JSON.stringify(alg)}`);
}

/** Signs `claims` as an RS256 compact JWS with `header` fields added. */
export function signJwt(claims: Record<string, unknown>, key: KeyObject, header: Record<string, unknown> = {}): string {
  const h = base64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', ...header }));
  const c = base64url(JSON.stringify(claims));
  return `${h}.${c}.${base64url(sign('sha256', Buffer.from(`${h}.${c}`), key))}`;
}

/** SHA-1 and SHA-256 thumbprints of a DER certificate, as `x5t` / `x5t#S256` carry them. */
export function certificateThumbprints(der: Buffer): { sha1: string; sha256: string; x5t: string; x5tS256: string } {
  const sha1 = createHash('sha1').update(der).digest();
  const sha256 = createHash('sha256').update(der).digest();
  return {
    sha1: sha1.toString('hex').toUpperCase(),
    sha256: sha256.toString('hex').toUpperCase(),
    x5t: base64url(sha1),
    x5tS256: base64url(sha256),
  };
}

/** Public key of a DER or PEM certificate. */
export function certificatePublicKey(certificate: Buffer | string): KeyObject {
  return new X509Certificate(certificate).publicKey;
}

/** A numeric claim, or undefined when absent or not a number. */
export function numericClaim(claims: Record<string, unknown>, name: string): number | undefined {
  const value = claims[name];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}
