import { enableCompileCache } from 'node:module';

// Every command is a process of its own that loads some 400 modules, most of them TypeScript that
// Node strips at each start. The compile cache keeps the stripped and compiled code between starts
// (NODE_COMPILE_CACHE, else os.tmpdir()/node-compile-cache, one directory per user and Node
// version; entries are checksummed, so a stale or torn one is compiled again). It must be on
// before the program loads, hence the dynamic imports; when it cannot be enabled (no writable
// directory) the start is only slower. The image and `bin/dirsync` set NODE_COMPILE_CACHE, so this
// file is read from the cache too: a start that finds every module there never loads Node's type
// stripper, which holds about 18 MB for the life of the process (the image's build warms the cache
// with warm-compile-cache.ts).
enableCompileCache();
const { buildProgram } = await import('./program.ts');
const { runCli } = await import('./run.ts');
await runCli(buildProgram());
