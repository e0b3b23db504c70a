import { validateHeaderValue } from 'node:http';
import { loadConfig, parseOtlpHeaders } from './config.ts';

// What the configuration accepts as an OTLP header value must be what Node's HTTP client sends:
// a value it refuses would make every export fail, silently (the exporter reports failures to
// OpenTelemetry's diagnostics, which dirsync does not log).

function nodeSends(value: string): boolean {
  try {
    validateHeaderValue('authorization', value);
    return true;
  } catch {
    return false;
  }
}

test('a header value is accepted exactly when the HTTP client can send it, checked over every character up to U+2FFF', () => {
  const disagreements: string[] = [];
  for (let code = 1; code <= 0x2fff; code += 1) {
    const value = `Bearer ${String.fromCharCode(code)}x`;
    const accepted = parseOtlpHeaders(`authorization=${encodeURIComponent(value)}`).ok;
    if (accepted !== nodeSends(value)) disagreements.push(`U+${code.toString(16).padStart(4, '0')}: config ${accepted ? 'accepts' : 'refuses'}`);
  }
  expect(disagreements).toEqual([]);
});

test('a token pasted with a typographic character is refused at start by its key, never shown', () => {
  const secret = 'tok\u2019en-s3cr3t';
  let message = '';
  try {
    loadConfig({ DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS: `x-scope-orgid=t1,authorization=Bearer%20${encodeURIComponent(secret)}` });
  } catch (error) {
    message = error instanceof Error ? error.message : String(error);
  }
  expect(message).toMatch(/DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS: pair 2 \(authorization\): the value is empty or holds control characters or characters an HTTP header cannot carry \(past Latin-1\)/);
  expect(message).not.toContain('s3cr3t');
  expect(message).not.toContain(encodeURIComponent(secret));
  // Latin-1 letters are sent as they are, as before.
  expect(parseOtlpHeaders('x-team=caf%C3%A9')).toEqual({ ok: true, headers: { 'x-team': 'café' } });
});

test('an endpoint with a query or fragment, which would swallow /v1/traces, is refused without being shown', () => {
  for (const name of ['DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT']) {
    for (const endpoint of ['https://collector.example.com:4318/?api-key=s3cr3t', 'https://collector.example.com:4318?', 'http://collector:4318/otlp#s3cr3t']) {
      let message = '';
      try {
        loadConfig({ [name]: endpoint });
      } catch (error) {
        message = error instanceof Error ? error.message : String(error);
      }
      expect(message).toContain(`${name} must not have a query or fragment: traces are sent to <endpoint>/v1/traces`);
      expect(message).not.toContain('s3cr3t');
    }
    // A path is the collector's prefix, as OpenTelemetry's base endpoint allows.
    expect(() => loadConfig({ [name]: 'https://gateway.example.com/otlp' })).not.toThrow();
  }
});
