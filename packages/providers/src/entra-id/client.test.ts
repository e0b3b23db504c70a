import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { AuthenticationError } from '@azure/identity';
import { ProtocolError, UnavailableError } from '../errors.ts';
import { type EntraCredential, EntraAuthError, backoffDelay, mapTokenError, parseRetryAfter, readBlockBytes, readBoundedText } from './client.ts';
import { entraIdSettingsSchema } from './config.ts';

describe('parseRetryAfter', () => {
  it.each([
    ['seconds', '7', 7000],
    ['fractional seconds', '0.5', 500],
    ['an HTTP date', 'Wed, 21 Oct 2015 07:28:10 GMT', 10_000],
    ['a date in the past', 'Wed, 21 Oct 2015 07:27:00 GMT', 0],
    ['nothing', undefined, undefined],
    ['garbage', 'soon', undefined],
  ])('reads %s', (_name, header, expected) => {
    expect(parseRetryAfter(header, Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(expected);
  });
});

describe('backoffDelay', () => {
  it('doubles from the base, stays in the upper half of its ceiling, and is capped', () => {
    expect(backoffDelay(1, 100, 10_000, () => 0)).toBe(50);
    expect(backoffDelay(1, 100, 10_000, () => 1)).toBe(100);
    expect(backoffDelay(4, 100, 10_000, () => 1)).toBe(800);
    expect(backoffDelay(4, 100, 10_000, () => 0)).toBe(400);
    expect(backoffDelay(30, 100, 10_000, () => 1)).toBe(10_000);
    expect(backoffDelay(1000, 100, 10_000, () => 0.5)).toBe(7500);
  });
});

describe('readBoundedText', () => {
  it('reads a body cut into one-byte chunks across blocks', async () => {
    const sent = `${'é'.repeat(readBlockBytes / 2)}x👍${'z'.repeat(100)}`;
    const bytes = Buffer.from(sent, 'utf8');
    const body = Object.assign(
      (async function* () {
        for (let i = 0; i < bytes.length; i += 1) yield bytes.subarray(i, i + 1);
      })(),
      { destroy: () => undefined },
    );
    expect(await readBoundedText(body, bytes.length, 'one byte at a time')).toBe(sent);
  });

  it('reads bytes that are not UTF-8 as replacement characters, as a server may send them', async () => {
    // A lone 0xff inside, and an answer cut in the middle of a four-byte character at its end.
    const bytes = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff]), Buffer.from('"}'), Buffer.from([0xf0, 0x9f])]);
    const body = Object.assign(
      (async function* () {
        yield bytes.subarray(0, 7);
        yield bytes.subarray(7);
      })(),
      { destroy: () => undefined },
    );
    expect(await readBoundedText(body, bytes.length, 'not UTF-8')).toBe('{"a":"\uFFFD"}\uFFFD');
  });

  // A real HTTP server streaming an endless answer: the reader must stop at its bound.
  it('reads an answer within the bound and refuses a larger one without reading it all', async () => {
    let sent = 0;
    const server = createServer((req, res) => {
      if (req.url === '/small') return res.end('{"value":[]}');
      if (req.url === '/blocks') {
        // "é" across the end of the first decoded block, "👍" across the second, sent one byte a chunk
        // around them and in large chunks elsewhere.
        const bytes = Buffer.concat([Buffer.alloc(readBlockBytes - 1, 0x61), Buffer.from('é', 'utf8'), Buffer.alloc(readBlockBytes - 3, 0x62), Buffer.from('👍', 'utf8'), Buffer.from('c')]);
        const cuts = [readBlockBytes - 2, readBlockBytes - 1, readBlockBytes, readBlockBytes + 1, 2 * readBlockBytes - 3, 2 * readBlockBytes - 2, 2 * readBlockBytes - 1, 2 * readBlockBytes];
        let from = 0;
        const next = () => {
          const to = cuts.shift();
          if (to === undefined) return res.end(bytes.subarray(from));
          res.write(bytes.subarray(from, to));
          from = to;
          setImmediate(next);
        };
        return next();
      }
      if (req.url === '/split') {
        // A byte order mark, then "é" and "👍" cut between two chunks of the answer.
        const bytes = Buffer.from('\uFEFF{"name":"Zoé 👍"}', 'utf8');
        const cut = bytes.indexOf(0xc3) + 1;
        const rest = bytes.indexOf(0xf0) + 2;
        res.write(bytes.subarray(0, cut));
        setImmediate(() => {
          res.write(bytes.subarray(cut, rest));
          setImmediate(() => res.end(bytes.subarray(rest)));
        });
        return;
      }
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = () => {
        while (sent < 512 * 1024 * 1024 && res.write(chunk)) sent += chunk.length;
      };
      res.on('drain', pump);
      res.on('close', () => res.off('drain', pump));
      pump();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect(await readBoundedText((await request(`${base}/small`)).body, 1024, 'small')).toBe('{"value":[]}');
      const blocks = await readBoundedText((await request(`${base}/blocks`)).body, 1024 * 1024, 'blocks');
      expect(blocks).toBe(`${'a'.repeat(readBlockBytes - 1)}é${'b'.repeat(readBlockBytes - 3)}👍c`);
      // Characters whose bytes arrive in two chunks decode whole; the mark stays, as sent.
      expect(await readBoundedText((await request(`${base}/split`)).body, 1024, 'split')).toBe('\uFEFF{"name":"Zoé 👍"}');
      const error = await readBoundedText((await request(`${base}/huge`)).body, 1024 * 1024, 'the huge answer').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as ProtocolError).retryable).toBe(false);
      expect((error as Error).message).toBe('the huge answer exceeds 1048576 bytes; refusing to read it');
      // The server stopped well short of its 512 MiB: the client hung up.
      expect(sent).toBeLessThan(64 * 1024 * 1024);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('mapTokenError', () => {
  const settings = entraIdSettingsSchema.parse({ tenantId: '0a5c6d3e-1111-4222-8333-444455556666', connectorId: '3f1e2d3c-4b5a-4697-8877-665544332211' });
  const certificate: EntraCredential = { kind: 'certificate', clientId: '77777777-2222-4333-8444-555555555555', certificatePem: 'pem', privateKeyPem: 'key' };
  const trace = ' Trace ID: 0f6e Correlation ID: 2b1c Timestamp: 2026-12-06 09:00:00Z';

  /** What @azure/identity throws for a token endpoint answer (its AuthenticationError). */
  const identityError = (status: number, error: string, description: string) =>
    new AuthenticationError(status, { error, error_description: `${description}${trace}`, error_codes: [Number(/AADSTS(\d+)/.exec(description)?.[1] ?? 0)] });
  /** What MSAL itself throws (a ServerError: errorCode, errorMessage, status). */
  const msalError = (status: number, errorCode: string, errorMessage: string) =>
    Object.assign(new Error(`${errorCode}: ${errorMessage}${trace}`), { name: 'ServerError', errorCode, errorMessage: `${errorMessage}${trace}`, status });

  const noServicePrincipal = "AADSTS7000229: The client application 77777777-2222-4333-8444-555555555555 is missing service principal in the tenant 0a5c6d3e-1111-4222-8333-444455556666.";
  const clockSkew = 'AADSTS700024: Client assertion is not within its valid time range. Current time: 2026-12-06T09:00:00.000Z, assertion valid from 2026-12-06T09:20:00.000Z.';
  const unknownKey = "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.";
  const badSignature = 'AADSTS700027: Client assertion failed signature validation.';
  const notInTenant = "AADSTS700016: Application with identifier '77777777-2222-4333-8444-555555555555' was not found in the directory 'contoso'.";

  it.each([
    ['no service principal (identity)', identityError(401, 'invalid_client', noServicePrincipal), EntraAuthError, { problem: 'consent', status: 401, entraCode: 'AADSTS7000229', retryable: false }, /tenant has no service principal of the app \(admin consent was not granted or the app was removed/],
    ['no service principal (MSAL)', msalError(401, 'invalid_client', noServicePrincipal), EntraAuthError, { problem: 'consent', entraCode: 'AADSTS7000229' }, /no service principal/],
    ['clock skew (identity)', identityError(401, 'invalid_client', clockSkew), UnavailableError, { retryable: true }, /the worker's clock differs from Entra ID's; check the machine's time synchronisation/],
    ['clock skew (MSAL)', msalError(401, 'invalid_client', clockSkew), UnavailableError, { retryable: true }, /clock differs/],
    ['a key not registered (identity)', identityError(401, 'invalid_client', unknownKey), EntraAuthError, { problem: 'credential', status: 401, entraCode: 'AADSTS700027', retryable: false }, /^Entra ID refused the certificate of app /],
    ['a bad signature (MSAL)', msalError(401, 'invalid_client', badSignature), EntraAuthError, { problem: 'credential', status: 401, entraCode: 'AADSTS700027' }, /refused the certificate/],
    ['an app not in the tenant', identityError(400, 'unauthorized_client', notInTenant), EntraAuthError, { problem: 'consent', status: 400, entraCode: 'AADSTS700016' }, /consent is missing or was revoked/],
    ['a busy token endpoint', identityError(503, 'temporarily_unavailable', 'AADSTS90033: MsodsServiceUnavailable.'), UnavailableError, { retryable: true }, /is unavailable/],
  ])('maps %s', async (_name, error, type, fields, message) => {
    const mapped = await mapTokenError(error, settings, certificate);
    expect(mapped).toBeInstanceOf(type);
    expect(mapped).toMatchObject(fields);
    expect(mapped.message).toMatch(message);
    expect(mapped.message).not.toMatch(/certificate refused|Trace ID/);
  });
});
