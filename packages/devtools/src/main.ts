import { enableCompileCache } from 'node:module';

// The development command line (`bin/dirsync`): the production program plus `demo` and `bench`,
// which start throwaway directories from the testkit and so never ship in the image. The compile
// cache is on before anything else loads, as in the production entry (packages/cli/src/main.ts).
enableCompileCache();
const { buildProgram, runCli } = await import('@dirsync/cli');
const { registerBenchCommand } = await import('./commands/bench.ts');
const { registerDemoCommand } = await import('./commands/demo.ts');
await runCli(buildProgram({ extraCommands: [registerDemoCommand, registerBenchCommand] }));
