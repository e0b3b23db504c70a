import type { Command } from 'commander';
import { DbError } from '@dirsync/db';
import { exitCodes, UserError, type ExitCode } from './errors.ts';
import { ConfigurationError } from './config.ts';

// User mistakes and known failures print one line; only unexpected errors show more, and only
// when LOG_LEVEL asks for it.
function describe(error: unknown): { message: string; expected: boolean } {
  if (error instanceof UserError || error instanceof ConfigurationError) return { message: error.message, expected: true };
  if (error instanceof Error) {
    const expected = error.name === 'ZodError' || 'code' in error || error.name.endsWith('Error');
    return { message: error.message.split('\n')[0] ?? String(error), expected };
  }
  return { message: String(error), expected: false };
}

/** The documented exit code of an error that ended a command (see `exitCodes`). */
function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof UserError) return error.exitCode;
  // The repositories' "no such record" is the command line naming something that does not exist.
  if (error instanceof DbError && error.code === 'not_found') return exitCodes.notFound;
  return exitCodes.failed;
}

/**
 * Runs `program` on this process's arguments: an error that ends a command prints one line on
 * stderr (its stack too with `--debug`) and sets the exit code the error stands for, unless the
 * command already set a failing one.
 */
export async function runCli(program: Command): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    const { message } = describe(error);
    process.stderr.write(`dirsync: ${message}\n`);
    if (process.argv.includes('--debug') && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    process.exitCode = process.exitCode && process.exitCode !== 0 ? process.exitCode : exitCodeOf(error);
  }
}
