import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// Heavy SDKs that only some workers use load on first use. The Microsoft SDKs behind the Entra ID
// provider take about 43 MB of a process's memory: a worker that syncs LDAP directories only must
// not carry them. The OpenTelemetry exporter and SDK (3.5 MB of heap) load only with tracing on,
// the X.509 library (3 MB) only to generate a certificate, and undici (7 MB) only for HTTPS.

const workerEntry = fileURLToPath(new URL('../src/index.ts', import.meta.url));
const providersEntry = fileURLToPath(new URL('../../providers/src/index.ts', import.meta.url));
const sdkLoader = fileURLToPath(new URL('../../providers/src/entra-id/sdk.ts', import.meta.url));
const microsoftUrl = /\/@azure\+identity@|\/@microsoft\+microsoft-graph-client@/;
const undiciUrl = /\/undici@/;
const x509Url = /\/@peculiar\+x509@|\/reflect-metadata@/;
const tracingUrl = /\/@opentelemetry\+(exporter-trace-otlp-http|sdk-trace|otlp-transformer|resources)@/;

// Records the URL of every module matching `pattern` the process loads, and prints them at exit.
const recorder = (pattern: RegExp) => `
import { registerHooks } from 'node:module';
import { writeSync } from 'node:fs';
const urls = [];
registerHooks({ load(url, context, nextLoad) { if (${pattern.toString()}.test(url)) urls.push(url); return nextLoad(url, context); } });
process.on('exit', () => writeSync(1, '\\nloaded: ' + JSON.stringify(urls) + '\\n'));
`;

/** The modules matching `pattern` that a process running `script` loaded. */
function modulesLoaded(pattern: RegExp, script: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--disable-warning=ExperimentalWarning', '--import', `data:text/javascript,${encodeURIComponent(recorder(pattern))}`, '--input-type=module', '--eval', script],
      { timeout: 60_000 },
      (error, stdout) => {
        const line = stdout.split('\n').find((l) => l.startsWith('loaded: '));
        if (line === undefined) reject(error ?? new Error(`no module list in the output:\n${stdout}`));
        else resolve(JSON.parse(line.slice('loaded: '.length)) as string[]);
      },
    );
  });
}

test('the worker package loads neither the identity nor the Graph SDK nor undici until an Entra client needs them', async () => {
  expect(await modulesLoaded(microsoftUrl, `await import(${JSON.stringify(workerEntry)});`)).toEqual([]);
  expect(await modulesLoaded(undiciUrl, `await import(${JSON.stringify(workerEntry)});`)).toEqual([]);
  // The recorder sees them when they load: an empty list above is not a blind spot.
  const loaded = await modulesLoaded(microsoftUrl, `const { microsoftSdks } = await import(${JSON.stringify(sdkLoader)}); await microsoftSdks();`);
  expect(loaded.some((url) => url.includes('/@azure+identity@'))).toBe(true);
  expect(loaded.some((url) => url.includes('/@microsoft+microsoft-graph-client@'))).toBe(true);
});

test('the worker package loads the OpenTelemetry SDK only when tracing is on', async () => {
  const off = `const { createTracing } = await import(${JSON.stringify(workerEntry)}); await createTracing({});`;
  expect(await modulesLoaded(tracingUrl, off)).toEqual([]);
  const on = `const { createTracing } = await import(${JSON.stringify(workerEntry)}); const t = await createTracing({ endpoint: 'http://127.0.0.1:9' }); await t.shutdown();`;
  const loaded = await modulesLoaded(tracingUrl, on);
  expect(loaded.some((url) => url.includes('/@opentelemetry+exporter-trace-otlp-http@'))).toBe(true);
  expect(loaded.some((url) => url.includes('/@opentelemetry+sdk-trace@'))).toBe(true);
});

test('the worker package loads the X.509 library only to generate a certificate', async () => {
  expect(await modulesLoaded(x509Url, `await import(${JSON.stringify(workerEntry)});`)).toEqual([]);
  const generate = `const { generateCertificate } = await import(${JSON.stringify(providersEntry)}); await generateCertificate({ subject: 'dirsync', validityDays: 1 });`;
  const loaded = await modulesLoaded(x509Url, generate);
  expect(loaded.some((url) => url.includes('/@peculiar+x509@'))).toBe(true);
});
