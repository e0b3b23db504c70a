/**
 * The packages a command needs only while it runs, loaded on first use. Every process builds the
 * whole command tree, so whatever a command module imported at its top would sit in the memory
 * of every other command: a worker would carry the API's HTTP server, the console and the
 * scheduler, and the scheduler the worker's providers. Import these through here, never at the
 * top of a command module (`devtools/test/lazy-commands.test.ts` checks it).
 */
export const apiPackage = () => import('@dirsync/api');
/** See {@link apiPackage}. */
export const consolePackage = () => import('@dirsync/console');
/** See {@link apiPackage}. */
export const schedulerPackage = () => import('@dirsync/scheduler');
/** See {@link apiPackage}. */
export const workerPackage = () => import('@dirsync/worker');
/**
 * The queue's clients (BullMQ and the Redis client): only commands that enqueue or read jobs load
 * them. Settings take what they need from `@dirsync/jobs/settings`. See {@link apiPackage}.
 */
export const jobsPackage = () => import('@dirsync/jobs');
