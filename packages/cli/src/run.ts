import type { Command } from 'commander';
import { DbError } from '@dirsync/db';
import { exitCodes, UserError, type ExitCode } from './errors.ts';
import { ConfigurationError } from './config.ts';

// User mistakes and known failures print one line; only unexpected errors show more, and only
// when LOG_LEVEL asks for it.
function describe(error: unknown): { message: string; expected: boolean } {
  if (error instanceof UserError || error instanceof ConfigurationError) return { message: error.message, expected: true };
  const cause = databaseCause(error);
  if (cause !== undefined) return { message: `the database could not be used: ${cause}`, expected: true };
  if (error instanceof Error) {
    const expected = error.name === 'ZodError' || 'code' in error || error.name.endsWith('Error');
    return { message: error.message.split('\n')[0] ?? String(error), expected };
  }
  return { message: String(error), expected: false };
}

/**
 * The driver's reason behind a failed database query, if `error` is one. The query builder wraps
 * it as "Failed query: <statement> params: <values>": the statement tells an operator nothing
 * they can act on and the values may be private, while the cause ("connect ECONNREFUSED
 * 127.0.0.1:5432", "password authentication failed …") is what to fix.
 */
function databaseCause(error: unknown): string | undefined {
  if (!(error instanceof Error) || !error.message.startsWith('Failed query:')) return undefined;
  const cause: unknown = error.cause;
  if (!(cause instanceof Error)) return 'the query failed without a reason from the server';
  // A connection refused on every address of a name is an AggregateError with no message.
  const parts = cause instanceof AggregateError && cause.message === '' ? cause.errors.filter((e): e is Error => e instanceof Error).map((e) => e.message) : [cause.message];
  const code = 'code' in cause && typeof cause.code === 'string' ? cause.code : undefined;
  const text = [...new Set(parts.map((p) => p.split('\n')[0] ?? '').filter((p) => p !== ''))].join('; ');
  return text !== '' ? text : (code ?? cause.name);
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
    if (process.argv.includes('--debug') && error instanceof Error && error.stack) {
      process.stderr.write(`${error.stack}\n`);
      if (error.cause instanceof Error && error.cause.stack) process.stderr.write(`caused by: ${error.cause.stack}\n`);
    }
    process.exitCode = process.exitCode && process.exitCode !== 0 ? process.exitCode : exitCodeOf(error);
  }
}
