import { buildProgram, runCli } from '@dirsync/cli';
import { registerBenchCommand } from './commands/bench.ts';
import { registerDemoCommand } from './commands/demo.ts';

// The development command line (`bin/dirsync`): the production program plus `demo` and `bench`,
// which start throwaway directories from the testkit and so never ship in the image.
await runCli(buildProgram({ extraCommands: [registerDemoCommand, registerBenchCommand] }));
