import { DbError } from '@dirsync/db';
import { InvalidJobPayloadError } from '@dirsync/jobs';
import { ProviderError } from '@dirsync/providers';
import { LockLostError } from './lock.ts';

/** What a failed attempt means for the job. */
export interface FailureVerdict {
  /** Trying again may help (busy or unreachable server, lost lock, database hiccup). */
  readonly retry: boolean;
  /** One line for the run report and the logs; built from messages that never carry secrets. */
  readonly message: string;
}

const maxMessageLength = 500;

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > maxMessageLength ? `${line.slice(0, maxMessageLength - 1)}…` : line;
}

/**
 * Classifies an error thrown during a sync attempt. Typed errors decide: a provider's or the
 * database layer's `retryable` flag, an invalid payload never; anything unknown is treated as
 * transient (a dropped connection, a timeout), so BullMQ retries it with backoff.
 */
export function classifyFailure(error: unknown): FailureVerdict {
  if (error instanceof InvalidJobPayloadError) return { retry: false, message: oneLine(error.message) };
  if (error instanceof ProviderError) {
    return { retry: error.retryable, message: oneLine(`${error.code}: ${error.message}`) };
  }
  if (error instanceof DbError) return { retry: error.retryable, message: oneLine(error.message) };
  if (error instanceof LockLostError) return { retry: true, message: oneLine(error.message) };
  if (error instanceof Error) {
    // Driver errors carry a `code` (ECONNREFUSED, a SQLSTATE); the message alone is enough and
    // holds no query parameters.
    return { retry: true, message: oneLine(error.message || error.name) };
  }
  return { retry: true, message: 'unknown error' };
}
