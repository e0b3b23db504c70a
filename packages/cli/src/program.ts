import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerAdminCommands } from './commands/admin.ts';
import { registerApiCommands } from './commands/api.ts';
import { registerConsoleCommands } from './commands/console.ts';
import { registerIntegrationCommands } from './commands/integrations.ts';
import { registerProcessCommands } from './commands/processes.ts';
import { registerSyncCommand } from './commands/sync.ts';
import { registerConnectorCommands } from './commands/connectors.ts';
import { registerActionCommands } from './commands/actions.ts';
import { registerAuditCommand } from './commands/audit.ts';
import { registerWebhookCommands } from './commands/webhooks.ts';
import { registerObjectCommands } from './commands/objects.ts';
import { registerOpenApiCommand } from './commands/openapi.ts';
import { registerCompletionCommand } from './commands/completion.ts';
import { createContext, type Context } from './context.ts';
import { exitCodes } from './errors.ts';

/**
 * The version of this dirsync, read from the command line package's manifest when asked (every
 * package of a release carries the same version: `.changeset/config.json` fixes them together).
 */
export function productVersion(): string {
  const manifest = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version?: unknown };
  if (typeof manifest.version !== 'string') throw new Error('the package manifest of @dirsync/cli has no version');
  return manifest.version;
}

/** Runs a command body with a context that is closed afterwards, whatever happens. */
async function withContext(run: (ctx: Context) => Promise<void>): Promise<void> {
  const ctx = createContext();
  try {
    await run(ctx);
  } finally {
    await ctx.close();
  }
}

/** What a program built on the production command tree adds to it. */
export interface ProgramOptions {
  /**
   * Registers further commands (the development tools' `demo` and `bench`), before `completion`
   * so that the completion scripts list them too.
   */
  readonly extraCommands?: readonly ((program: Command) => void)[];
}

/** The `dirsync` command tree, with `extraCommands` registered before `openapi` and `completion`. */
export function buildProgram(options: ProgramOptions = {}): Command {
  const program = new Command('dirsync')
    .description('directory synchronization: LDAP, Active Directory, Domino and Entra ID into PostgreSQL')
    .version(productVersion(), '-V, --version', 'print the version of dirsync')
    .option('--debug', 'print stack traces of unexpected errors')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ outputError: (text, write) => write(text) });
  program.exitOverride((error) => {
    // commander already printed the problem (or the help or version asked for); exit without a
    // stack trace. Its own code is 1 for every mistake: a wrong command line is a usage error.
    process.exit(error.exitCode === 0 ? exitCodes.succeeded : exitCodes.usage);
  });
  registerAdminCommands(program, withContext);
  registerIntegrationCommands(program, withContext);
  registerSyncCommand(program, withContext);
  registerObjectCommands(program, withContext);
  registerConnectorCommands(program, withContext);
  registerActionCommands(program, withContext);
  registerAuditCommand(program, withContext);
  registerWebhookCommands(program, withContext);
  registerProcessCommands(program, withContext);
  registerApiCommands(program, withContext);
  registerConsoleCommands(program, withContext);
  for (const register of options.extraCommands ?? []) register(program);
  registerOpenApiCommand(program);
  // Last: the completion scripts list every command registered above.
  registerCompletionCommand(program);
  return program;
}
