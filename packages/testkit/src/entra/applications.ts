import { createHash, randomUUID, timingSafeEqual, X509Certificate, type KeyObject } from 'node:crypto';
import { certificateThumbprints, decodeJwt, JwtError, numericClaim, verifyJwtSignature } from './jwt.ts';

/** A certificate registered on an application (`keyCredentials` in Graph). */
export interface EmulatedKeyCredential {
  readonly keyId: string;
  readonly type: 'AsymmetricX509Cert';
  readonly usage: 'Verify';
  /** SHA-1 thumbprint, upper-case hex, as Graph shows it. */
  readonly customKeyIdentifier: string;
  readonly displayName: string;
  readonly startDateTime: Date;
  readonly endDateTime: Date;
  readonly der: Buffer;
  readonly x5t: string;
  readonly x5tS256: string;
  readonly publicKey: KeyObject;
}

/** A client secret registered on an application (`passwordCredentials`). */
export interface EmulatedPasswordCredential {
  readonly keyId: string;
  readonly hint: string;
  readonly endDateTime: Date;
  readonly hash: Buffer;
}

/** An app registration: the client id tokens are asked for, its credentials and its roles. */
export interface EmulatedApplication {
  /** The client id. */
  readonly appId: string;
  /** The application object id (`iss` of addKey/removeKey proofs). */
  readonly objectId: string;
  readonly homeTenantId: string;
  readonly displayName: string;
  readonly keyCredentials: EmulatedKeyCredential[];
  readonly passwordCredentials: EmulatedPasswordCredential[];
  readonly redirectUris: string[];
  /** Application permissions an administrator's consent grants. */
  readonly roles: string[];
  /**
   * Client ids of the applications whose service principals are owners of this application (none
   * by default: an application does not own itself). `Application.ReadWrite.OwnedBy` reaches only
   * applications the caller owns.
   */
  readonly owners: string[];
  /**
   * The manifest's `groupMembershipClaims`: `DirectoryRole` or `All` make tokens carry the
   * signed-in user's directory roles in `wids` (entra-docs: access-token-claims-reference.md,
   * `wids`: "configured on a per-application basis through the groupMembershipClaims property").
   */
  groupMembershipClaims: 'None' | 'SecurityGroup' | 'DirectoryRole' | 'All';
}

/** The audience every addKey/removeKey proof must carry (the Azure AD Graph resource id). */
export const proofAudience = '00000002-0000-0000-c000-000000000000';
/** Longest lifetime of a proof token (`exp - nbf`), in seconds. */
export const maxProofLifetimeSeconds = 600;

/** A request the emulated Graph refuses with 400 and this message. */
export class GraphRequestError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Parses a certificate (PEM, or DER as Buffer or base64) into a key credential. */
export function keyCredentialFrom(certificate: string | Buffer, keyId: string = randomUUID()): EmulatedKeyCredential {
  let der: Buffer;
  if (Buffer.isBuffer(certificate)) der = certificate;
  else if (certificate.includes('-----BEGIN')) der = new X509Certificate(certificate).raw;
  else der = Buffer.from(certificate, 'base64');
  let parsed: X509Certificate;
  try {
    parsed = new X509Certificate(der);
  } catch {
    throw new GraphRequestError(400, 'Request_BadRequest', 'Invalid keyCredential: the key is not a valid X.509 certificate.');
  }
  const asymmetric = parsed.publicKey.asymmetricKeyDetails;
  if (parsed.publicKey.asymmetricKeyType !== 'rsa' || (asymmetric?.modulusLength ?? 0) < 2048) {
    throw new GraphRequestError(400, 'Request_BadRequest', 'Invalid keyCredential: an RSA key of at least 2048 bits is required.');
  }
  const prints = certificateThumbprints(der);
  return {
    keyId,
    type: 'AsymmetricX509Cert',
    usage: 'Verify',
    customKeyIdentifier: prints.sha1,
    displayName: parsed.subject.replace(/\n/g, ', '),
    startDateTime: new Date(parsed.validFrom),
    endDateTime: new Date(parsed.validTo),
    der,
    x5t: prints.x5t,
    x5tS256: prints.x5tS256,
    publicKey: parsed.publicKey,
  };
}

/** Graph's JSON shape of a key credential (`key` is never returned). */
export function keyCredentialJson(key: EmulatedKeyCredential): Record<string, unknown> {
  return {
    customKeyIdentifier: key.customKeyIdentifier,
    displayName: key.displayName,
    endDateTime: key.endDateTime.toISOString(),
    key: null,
    keyId: key.keyId,
    startDateTime: key.startDateTime.toISOString(),
    type: key.type,
    usage: key.usage,
  };
}

/** True while `now` lies within the key's validity. */
export function keyIsValid(key: EmulatedKeyCredential, now: number): boolean {
  return key.startDateTime.getTime() <= now && now <= key.endDateTime.getTime();
}

/** Adds a client secret to an application; returns its key id. */
export function addPasswordCredential(app: EmulatedApplication, secret: string, endDateTime: Date): string {
  const keyId = randomUUID();
  app.passwordCredentials.push({ keyId, hint: secret.slice(0, 3), endDateTime, hash: hashSecret(secret) });
  return keyId;
}

/** Why a client secret was refused, or undefined when it matches a live one. */
export function checkClientSecret(app: EmulatedApplication, secret: string, now: number): 'invalid' | 'expired' | undefined {
  const hash = hashSecret(secret);
  const match = app.passwordCredentials.find((p) => timingSafeEqual(p.hash, hash));
  if (!match) return 'invalid';
  return match.endDateTime.getTime() < now ? 'expired' : undefined;
}

/**
 * Checks the proof-of-possession token of addKey/removeKey as Graph documents it: a JWT signed
 * by one of the application's currently valid certificates (named by `x5t` or `x5t#S256`), with
 * `aud` {@link proofAudience}, `iss` the application object id, and `nbf`/`exp` around now,
 * `exp` at most ten minutes after `nbf`. Returns the key that signed it.
 */
export function verifyProof(app: EmulatedApplication, proof: unknown, now: number, skewSeconds: number): EmulatedKeyCredential {
  const refuse = (why: string): never => {
    throw new GraphRequestError(400, 'Request_BadRequest', `Proof of possession validation failed: ${why}.`);
  };
  if (typeof proof !== 'string' || proof === '') return refuse('the proof is missing');
  let jwt;
  try {
    jwt = decodeJwt(proof);
  } catch (error) {
    return refuse(error instanceof JwtError ? error.message : 'the proof is not a JWT');
  }
  const x5t = jwt.header['x5t'];
  const x5tS256 = jwt.header['x5t#S256'];
  const key = app.keyCredentials.find((k) => (typeof x5tS256 === 'string' ? k.x5tS256 === x5tS256 : k.x5t === x5t));
  if (!key) return refuse('the proof is not signed by a certificate registered on the application');
  if (!keyIsValid(key, now)) return refuse('the certificate that signed the proof is not valid now');
  let signatureOk: boolean;
  try {
    signatureOk = verifyJwtSignature(jwt, key.publicKey);
  } catch (error) {
    return refuse(error instanceof Error ? error.message : 'unsupported signature');
  }
  if (!signatureOk) return refuse('the signature does not verify');
  if (jwt.claims['aud'] !== proofAudience) return refuse(`aud must be ${proofAudience}`);
  if (jwt.claims['iss'] !== app.objectId) return refuse('iss must be the application object id');
  const nbf = numericClaim(jwt.claims, 'nbf');
  const exp = numericClaim(jwt.claims, 'exp');
  if (nbf === undefined || exp === undefined) return refuse('nbf and exp are required');
  if (exp - nbf > maxProofLifetimeSeconds) return refuse('the proof lives longer than 10 minutes');
  const seconds = now / 1000;
  if (nbf > seconds + skewSeconds || exp < seconds - skewSeconds) return refuse('the proof is not valid now');
  return key;
}
