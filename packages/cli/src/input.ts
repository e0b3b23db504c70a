import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { unsafeSecretProblem } from '@dirsync/providers';
import { UserError } from './errors.ts';

/** Reads all of standard input (for `--password-stdin`), without the trailing newline. */
export async function readStdin(stdin: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** Asks for a secret on the terminal without echoing it. */
export async function promptSecret(question: string): Promise<string> {
  if (!process.stdin.isTTY) {
    throw new UserError('no terminal to ask for the password: pass --password-stdin or set DIRSYNC_INTEGRATION_SECRET');
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  // Echo nothing while the secret is typed.
  const output = rl as unknown as { _writeToOutput: (s: string) => void };
  process.stderr.write(question);
  output._writeToOutput = () => {};
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve));
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

/** Where a secret may come from: never a command-line flag (it would land in shell history and `ps`). */
export interface SecretSources {
  stdin?: boolean;
  /** Value of DIRSYNC_INTEGRATION_SECRET, read by the config module. */
  env?: string | undefined;
  prompt?: string;
}

/** Resolves a secret from stdin, the environment or a prompt, in that order of preference. */
export async function readSecret(sources: SecretSources): Promise<string> {
  const secret = sources.stdin ? await readStdin() : sources.env ?? (sources.prompt ? await promptSecret(sources.prompt) : undefined);
  if (secret === undefined || secret.length === 0) throw new UserError('the password is empty');
  const problem = unsafeSecretProblem(secret, 'the password');
  if (problem !== undefined) throw new UserError(problem);
  return secret;
}

/** Reads and parses a JSON file given on the command line, with a one-line error. */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UserError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UserError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
}
