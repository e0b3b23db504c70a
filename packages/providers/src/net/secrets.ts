import { ConfigError } from '../errors.ts';

/** Characters a secret must not hold: line breaks and NUL. */
const unsafeCharacters = /[\r\n\0]/;

/**
 * Why a secret cannot be used, or undefined when it can. CR, LF and NUL are refused: they are
 * nearly always a pasting mistake, and a password carrying `\r\n` turns a bind sent to a server
 * that is not LDAP (a URL aimed at Redis) into commands for that server. The secret itself is
 * never part of the answer.
 */
export function unsafeSecretProblem(secret: string, what = 'the secret'): string | undefined {
  if (!unsafeCharacters.test(secret)) return undefined;
  return `${what} contains a carriage return, line feed or NUL character, which dirsync refuses; set it again without line breaks`;
}

/** Throws {@link ConfigError} (never retried) when {@link unsafeSecretProblem} finds a problem. */
export function refuseUnsafeSecret(secret: string, what?: string): void {
  const problem = unsafeSecretProblem(secret, what);
  if (problem !== undefined) throw new ConfigError(problem);
}
