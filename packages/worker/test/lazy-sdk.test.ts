import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// The Microsoft SDKs behind the Entra ID provider take about 43 MB of a process's memory. A worker
// that syncs LDAP directories only must not carry them: they load on an Entra client's first call.

const workerEntry = fileURLToPath(new URL('../src/index.ts', import.meta.url));
const sdkLoader = fileURLToPath(new URL('../../providers/src/entra-id/sdk.ts', import.meta.url));
const sdkUrl = /\/@azure\+identity@|\/@microsoft\+microsoft-graph-client@/;

// Records the URL of every module of the two SDKs the process loads, and prints them at exit.
const recorder = `
import { registerHooks } from 'node:module';
import { writeSync } from 'node:fs';
const urls = [];
registerHooks({ load(url, context, nextLoad) { if (${sdkUrl.toString()}.test(url)) urls.push(url); return nextLoad(url, context); } });
process.on('exit', () => writeSync(1, '\\nloaded: ' + JSON.stringify(urls) + '\\n'));
`;

/** The SDK modules a process that runs `script` loaded. */
function sdkModulesLoaded(script: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--disable-warning=ExperimentalWarning', '--import', `data:text/javascript,${encodeURIComponent(recorder)}`, '--input-type=module', '--eval', script],
      { timeout: 60_000 },
      (error, stdout) => {
        const line = stdout.split('\n').find((l) => l.startsWith('loaded: '));
        if (line === undefined) reject(error ?? new Error(`no module list in the output:\n${stdout}`));
        else resolve(JSON.parse(line.slice('loaded: '.length)) as string[]);
      },
    );
  });
}

test('the worker package loads neither the identity nor the Graph SDK until an Entra client needs them', async () => {
  expect(await sdkModulesLoaded(`await import(${JSON.stringify(workerEntry)});`)).toEqual([]);
  // The recorder sees them when they load: an empty list above is not a blind spot.
  const loaded = await sdkModulesLoaded(`const { microsoftSdks } = await import(${JSON.stringify(sdkLoader)}); await microsoftSdks();`);
  expect(loaded.some((url) => url.includes('/@azure+identity@'))).toBe(true);
  expect(loaded.some((url) => url.includes('/@microsoft+microsoft-graph-client@'))).toBe(true);
});
