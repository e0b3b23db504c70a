import { randomBytes, webcrypto } from 'node:crypto';
// @peculiar/x509 needs the Reflect metadata API before it loads.
import 'reflect-metadata';

/** A throwaway CA and the server certificate it signed for the loopback addresses. */
export interface EmulatorTls {
  /** PEM of the CA: what clients that talk to the emulator trust, and nothing else does. */
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

const rsa = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };

function pem(label: string, der: ArrayBuffer): string {
  const body = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

function serial(): string {
  // Positive (high bit clear) and non-zero, as RFC 5280 asks.
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f | 0x01;
  return bytes.toString('hex');
}

/**
 * Makes a CA valid for a day and a server certificate for `127.0.0.1`, `::1` and `localhost`.
 * The CA's private key is discarded: nothing else can ever be signed with it.
 */
export async function createEmulatorTls(): Promise<EmulatorTls> {
  // Loaded here, not with the testkit: every test file imports the testkit, few start an emulator.
  const x509 = await import('@peculiar/x509');
  const crypto = webcrypto;
  const now = Date.now();
  const notBefore = new Date(now - 60_000);
  const notAfter = new Date(now + 24 * 3600_000);
  const caKeys = (await crypto.subtle.generateKey(rsa, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial(),
      name: 'CN=dirsync Entra emulator test CA',
      notBefore,
      notAfter,
      keys: caKeys,
      signingAlgorithm: rsa,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const serverKeys = (await crypto.subtle.generateKey(rsa, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const server = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: 'CN=127.0.0.1',
      issuer: ca.subject,
      notBefore,
      notAfter,
      signingKey: caKeys.privateKey,
      publicKey: serverKeys.publicKey,
      signingAlgorithm: rsa,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension([
          { type: 'ip', value: '127.0.0.1' },
          { type: 'ip', value: '::1' },
          { type: 'dns', value: 'localhost' },
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const keyDer = await crypto.subtle.exportKey('pkcs8', serverKeys.privateKey);
  return { caPem: ca.toString('pem') + '\n', certPem: server.toString('pem') + '\n', keyPem: pem('PRIVATE KEY', keyDer) };
}
