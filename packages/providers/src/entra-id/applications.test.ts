import { createHash, createPublicKey, verify, X509Certificate } from 'node:crypto';
import { createProofJwt, proofAudience } from './applications.ts';
import { generateCertificate } from './certificate.ts';

describe('createProofJwt', () => {
  it('signs the addKey/removeKey proof as Graph documents it', async () => {
    const signer = await generateCertificate({ subject: 'proof test', validityDays: 2 });
    const now = new Date('2030-05-01T12:00:00Z');
    const jwt = createProofJwt('a1b2c3d4-0000-4000-8000-000000000001', signer, now);
    const [h, c, s] = jwt.split('.') as [string, string, string];
    expect(jwt).not.toContain('=');
    expect(jwt).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as Record<string, unknown>;
    const claims = JSON.parse(Buffer.from(c, 'base64url').toString()) as Record<string, number | string>;
    const der = new X509Certificate(signer.certificatePem).raw;
    expect(header).toEqual({ alg: 'RS256', typ: 'JWT', x5t: createHash('sha1').update(der).digest('base64url') });
    expect(claims['aud']).toBe(proofAudience);
    expect(claims['iss']).toBe('a1b2c3d4-0000-4000-8000-000000000001');
    expect(Number(claims['exp']) - Number(claims['nbf'])).toBeLessThanOrEqual(600);
    expect(Number(claims['nbf'])).toBeLessThanOrEqual(now.getTime() / 1000);
    expect(Number(claims['exp'])).toBeGreaterThan(now.getTime() / 1000);
    const key = createPublicKey(signer.certificatePem);
    expect(verify('sha256', Buffer.from(`${h}.${c}`), key, Buffer.from(s, 'base64url'))).toBe(true);
  });
});

describe('generateCertificate', () => {
  it('makes an RSA-2048 self-signed certificate valid from now for the given days', async () => {
    const now = new Date('2030-05-01T12:00:00Z');
    const generated = await generateCertificate({ subject: 'dirsync, connector "x"', validityDays: 30, now });
    const certificate = new X509Certificate(generated.certificatePem);
    expect(certificate.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(certificate.verify(certificate.publicKey)).toBe(true);
    expect(generated.notAfter.getTime() - generated.notBefore.getTime()).toBe(30 * 24 * 3600_000);
    expect(generated.notBefore.getTime()).toBeLessThan(now.getTime());
    expect(generated.thumbprint).toBe(createHash('sha1').update(certificate.raw).digest('hex').toUpperCase());
    expect(generated.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });
});
