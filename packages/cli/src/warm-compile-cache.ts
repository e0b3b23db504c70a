/**
 * Loads the modules of every command without running one, so that Node's compile cache
 * (`NODE_COMPILE_CACHE`, which must be set) holds all of them when the process exits: the image's
 * build runs it after the entrypoint (docker/Dockerfile). The commands load their packages only
 * when they run (packages.ts), so starting the entrypoint alone would leave out the worker, the
 * scheduler and the API, and each of them would load Node's type stripper at every start.
 */
import { getCompileCacheDir } from 'node:module';
import { buildProgram } from './program.ts';
import { apiPackage, consolePackage, jobsPackage, schedulerPackage, workerPackage } from './packages.ts';

if (getCompileCacheDir() === undefined) {
  process.stderr.write('NODE_COMPILE_CACHE is not set (or its directory cannot be created): there is no cache to warm\n');
  process.exit(1);
}
buildProgram();
await Promise.all([apiPackage(), consolePackage(), jobsPackage(), schedulerPackage(), workerPackage()]);
