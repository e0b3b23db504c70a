import { fileURLToPath } from 'node:url';

/**
 * Directory of the console's built assets (`vite build`, run by the install step): the API
 * process serves it under `/console`. The CLI hands it to the API server, so the API package
 * never imports the console.
 */
export const consoleAssetsDir: string = fileURLToPath(new URL('./dist/', import.meta.url));
