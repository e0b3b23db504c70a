import { request } from 'node:https';
import type { EntraEmulator } from './server.ts';

/**
 * Opens a page of the emulator (admin consent, sign-in) as its signed-in administrator's browser
 * would, trusting the emulator's CA alone, and without following the redirect: resolves to where
 * the page sends the browser. Rejects with the status when the page answers anything but a redirect.
 */
export function followEmulatorPage(emulator: Pick<EntraEmulator, 'caPem'>, url: string | URL): Promise<URL> {
  return new Promise((resolve, reject) => {
    request(url, { ca: emulator.caPem }, (response) => {
      response.resume();
      const location = response.headers.location;
      if (response.statusCode === 302 && location) resolve(new URL(location));
      else reject(new Error(`the emulated page answered ${response.statusCode ?? '?'}`));
    })
      .on('error', reject)
      .end();
  });
}
