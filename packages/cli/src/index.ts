// What the development tools (packages/devtools) build on: the production command tree and its
// runner, and the pieces their `demo` and `bench` commands share with the production commands.
export { buildProgram, type ProgramOptions } from './program.ts';
export { runCli } from './run.ts';
export { createContext, type Context } from './context.ts';
export { loadConfig, redisSettingsOf, type Config } from './config.ts';
export { UserError } from './errors.ts';
export { table } from './format.ts';
export { describeRun } from './report.ts';
export { describeAction } from './commands/actions.ts';
export { requestIntegrationSync } from './commands/sync.ts';
export { dirsyncBin, startService, warmCompileCache, type ChildService } from './services.ts';
