import { loadConfig, otlpEndpointOf } from './config.ts';

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
