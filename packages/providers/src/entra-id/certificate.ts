import { createHash, randomBytes, webcrypto, X509Certificate } from 'node:crypto';

/** A generated certificate credential: the public certificate and its private key, both PEM. */
export interface GeneratedCertificate {
  readonly certificatePem: string;
  /** PKCS#8 PEM. A secret: store it encrypted, never print or log it. */
  readonly privateKeyPem: string;
  /** SHA-1 thumbprint, upper-case hex (Graph's `customKeyIdentifier`). */
  readonly thumbprint: string;
  /** SHA-256 thumbprint, upper-case hex. */
  readonly thumbprintSha256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Facts about a certificate, read from its PEM. */
export interface CertificateInfo {
  readonly thumbprint: string;
  readonly thumbprintSha256: string;
  readonly subject: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** base64 of the DER encoding (Graph's `keyCredential.key`). */
  readonly derBase64: string;
}

const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };

function toPem(label: string, der: ArrayBuffer): string {
  const body = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  // Positive and non-zero (RFC 5280 §4.1.2.2).
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

/**
 * @peculiar/x509, imported on first use: with what it loads it takes about 3 MB of heap, which
 * only certificate generation (a new connector, the daily rotation) needs.
 */
async function x509Library(): Promise<typeof import('@peculiar/x509')> {
  // It needs the Reflect metadata API before it loads.
  await import('reflect-metadata');
  return import('@peculiar/x509');
}

/** Reads thumbprints, subject and validity of a PEM certificate. */
export function certificateInfo(certificatePem: string): CertificateInfo {
  const certificate = new X509Certificate(certificatePem);
  const der = certificate.raw;
  return {
    thumbprint: createHash('sha1').update(der).digest('hex').toUpperCase(),
    thumbprintSha256: createHash('sha256').update(der).digest('hex').toUpperCase(),
    subject: certificate.subject.replace(/\n/g, ', '),
    notBefore: new Date(certificate.validFrom),
    notAfter: new Date(certificate.validTo),
    derBase64: der.toString('base64'),
  };
}

/**
 * Generates an RSA-2048 key pair and a self-signed certificate for it (SHA-256 with RSA), valid
 * from a minute ago (clock skew) for `validityDays`. Entra ID accepts self-signed certificates as
 * application credentials: only the public key and thumbprint matter.
 */
export async function generateCertificate(options: { subject: string; validityDays: number; now?: Date }): Promise<GeneratedCertificate> {
  const crypto = webcrypto;
  const x509 = await x509Library();
  const now = options.now?.getTime() ?? Date.now();
  const notBefore = new Date(Math.floor((now - 60_000) / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + options.validityDays * 24 * 3600_000);
  const keys = (await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      name: `CN=${options.subject.replace(/[,+="<>#;\\]/g, ' ')}`,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      ],
    },
    crypto,
  );
  const certificatePem = `${certificate.toString('pem')}\n`;
  const privateKeyPem = toPem('PRIVATE KEY', await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const info = certificateInfo(certificatePem);
  return { certificatePem, privateKeyPem, thumbprint: info.thumbprint, thumbprintSha256: info.thumbprintSha256, notBefore, notAfter };
}
