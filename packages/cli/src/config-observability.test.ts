import { loadConfig, otlpEndpointOf, otlpHeadersOf } from './config.ts';

test('traces go to DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT, else the standard OTEL_EXPORTER_OTLP_ENDPOINT, else nowhere', () => {
  expect(otlpEndpointOf(loadConfig({}))).toBeUndefined();
  expect(otlpEndpointOf(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }))).toBe('http://collector:4318');
  expect(otlpEndpointOf(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT: 'https://traces.example.com' }))).toBe('https://traces.example.com');
  // Blank counts as unset, as for the other optional URLs.
  expect(otlpEndpointOf(loadConfig({ DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }))).toBeUndefined();
  expect(() => loadConfig({ DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(/DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT must be an http:\/\/ or https:\/\/ URL/);
});

test('which processes export the installation-wide series is auto, true or false', () => {
  expect(loadConfig({}).DIRSYNC_INSTALLATION_METRICS).toBe('auto');
  expect(loadConfig({ DIRSYNC_INSTALLATION_METRICS: 'false' }).DIRSYNC_INSTALLATION_METRICS).toBe('false');
  expect(() => loadConfig({ DIRSYNC_INSTALLATION_METRICS: 'yes' })).toThrow(/DIRSYNC_INSTALLATION_METRICS must be auto, true or false/);
});

test('DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS: key=value pairs, blanks trimmed, values percent-decoded, names lower-cased', () => {
  expect(otlpHeadersOf(loadConfig({}))).toEqual({});
  expect(otlpHeadersOf(loadConfig({ DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS: ' ' }))).toEqual({});
  expect(otlpHeadersOf(loadConfig({ DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Bearer%20abc%3D%3D , x-scope-orgid = tenant-1' }))).toEqual({
    authorization: 'Bearer abc==',
    'x-scope-orgid': 'tenant-1',
  });
  // "=" in a value needs no encoding: only the first one separates.
  expect(otlpHeadersOf(loadConfig({ DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS: 'api-key=a=b' }))).toEqual({ 'api-key': 'a=b' });
});

test('malformed headers are refused pair by pair, never showing a value', () => {
  const secret = 's3cr3t-collector-token';
  const cases: [string, RegExp][] = [
    [`authorization`, /pair 1 is not key=value/],
    [`a=1,,b=2`, /pair 2 is not key=value/],
    [`=${secret}`, /pair 1 is not key=value/],
    [`bad key=${secret}`, /pair 1: the key is not an HTTP header name/],
    [`authorization=${secret}%zz`, /pair 1 \(authorization\): the value is not valid percent-encoding/],
    [`authorization=${secret}%0d%0aX-Injected:%201`, /pair 1 \(authorization\): the value is empty or holds control characters/],
    [`x-a=1,authorization=`, /pair 2 \(authorization\): the value is empty/],
    [`Authorization=${secret},authorization=${secret}`, /pair 2 \(authorization\): the header is given twice/],
  ];
  for (const [value, problem] of cases) {
    let message = '';
    try {
      loadConfig({ DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS: value });
    } catch (error) {
      message = error instanceof Error ? error.message : String(error);
    }
    expect(message).toMatch(/^invalid configuration:\n {2}- DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS: /);
    expect(message).toMatch(problem);
    expect(message).not.toContain(secret);
  }
});

test("the OTLP exporter's own header variables are refused, without their values", () => {
  for (const name of ['OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS']) {
    let message = '';
    try {
      loadConfig({ [name]: 'authorization=Bearer%20s3cr3t' });
    } catch (error) {
      message = error instanceof Error ? error.message : String(error);
    }
    expect(message).toContain(`${name} is not read by dirsync: set DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS (or DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS_FILE) instead`);
    expect(message).not.toContain('s3cr3t');
    expect(() => loadConfig({ [name]: '' })).not.toThrow();
  }
});
