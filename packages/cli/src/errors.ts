/**
 * Exit codes of every `dirsync` command (the README's "Exit codes" table lists the same). Scripts
 * may rely on them: a code keeps its meaning across versions.
 */
export const exitCodes = {
  /** The command did what it was asked (a sync run: `succeeded` or `dry_run`). */
  succeeded: 0,
  /** The command or the run it waited for failed: a refused request, a failed Test Connection, a `failed` run, a server unreachable. */
  failed: 1,
  /** The command line itself is wrong: unknown command or option, missing or invalid argument. */
  usage: 2,
  /** An account, integration, run, connector, API key or webhook named on the command line does not exist. */
  notFound: 3,
  /** A sync run ended `blocked` by the deletion threshold (`dirsync runs approve` allows its deletions). */
  blocked: 4,
  /** `--timeout` passed before what the command waited for ended (a run goes on). */
  timedOut: 5,
} as const;

/** One of {@link exitCodes}. */
export type ExitCode = (typeof exitCodes)[keyof typeof exitCodes];

/** A mistake of the person at the keyboard: printed as one line, never with a stack trace. */
export class UserError extends Error {
  /** The code the process exits with. */
  readonly exitCode: ExitCode;

  constructor(message: string, exitCode: ExitCode = exitCodes.failed) {
    super(message);
    this.name = 'UserError';
    this.exitCode = exitCode;
  }
}

/** A command line that cannot be right whatever the data says (a flag's value, a combination of flags): exit 2. */
export class UsageError extends UserError {
  constructor(message: string) {
    super(message, exitCodes.usage);
    this.name = 'UsageError';
  }
}

/** Something named on the command line does not exist: exit 3. */
export class NotFoundError extends UserError {
  constructor(message: string) {
    super(message, exitCodes.notFound);
    this.name = 'NotFoundError';
  }
}
