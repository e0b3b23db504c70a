import type { Worker } from 'bullmq';
import type { RedisClient } from './redis.ts';

/** The part of a pino logger the helpers here use. */
export interface ErrorLogger {
  error(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

/** Options of {@link createRepeatedErrorLog}. */
export interface RepeatedErrorLogOptions {
  readonly logger: ErrorLogger;
  /** Level of the lines written. Default `error`. */
  readonly level?: 'error' | 'warn';
  /** At most one line per distinct error in this period, carrying how many were held back. Default 30 s. */
  readonly intervalMs?: number;
  /** Clock; tests pin it. */
  readonly now?: () => number;
}

/** Logs errors that repeat at a bounded rate. */
export interface RepeatedErrorLog {
  /**
   * Logs `message` with `fields` and the error's text the first time this (message, error) pair
   * is seen, then at most once per interval with `repeated`: how many identical ones came since
   * the previous line.
   */
  report(message: string, error: unknown, fields?: Record<string, unknown>): void;
}

// Distinct errors remembered at once: enough for every failing dependency of a process, bounded
// so that errors carrying ever-new text cannot grow the map.
const maxDistinctErrors = 200;

/** The text of an error as logged (never a stack). */
export function errorText(error: unknown): string {
  if (typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string') return (error as { message: string }).message;
  return String(error);
}

/**
 * Creates a {@link RepeatedErrorLog}. A dependency that fails every call (Redis answering
 * `MOVED`, refusing connections) would otherwise write a line per failed call: thousands a
 * second, drowning everything else and costing CPU of their own.
 */
export function createRepeatedErrorLog(options: RepeatedErrorLogOptions): RepeatedErrorLog {
  const intervalMs = options.intervalMs ?? 30_000;
  const now = options.now ?? Date.now;
  const level = options.level ?? 'error';
  const seen = new Map<string, { loggedAt: number; held: number }>();
  return {
    report(message, error, fields = {}) {
      const text = errorText(error);
      const key = `${message}\n${text}`;
      const at = now();
      const entry = seen.get(key);
      if (entry === undefined) {
        if (seen.size >= maxDistinctErrors) {
          const oldest = seen.keys().next().value;
          if (oldest !== undefined) seen.delete(oldest);
        }
        seen.set(key, { loggedAt: at, held: 0 });
        options.logger[level]({ ...fields, error: text }, message);
        return;
      }
      if (at - entry.loggedAt < intervalMs) {
        entry.held += 1;
        return;
      }
      options.logger[level]({ ...fields, error: text, repeated: entry.held + 1, periodSeconds: Math.round((at - entry.loggedAt) / 1000) }, message);
      entry.loggedAt = at;
      entry.held = 0;
    },
  };
}

/** Whether a queue connection can do its work now, as a readiness check reports it. */
export interface QueueCheck {
  readonly ok: boolean;
  readonly detail?: string;
}

/** Options of {@link guardWorker}. */
export interface WorkerGuardOptions {
  readonly log: RepeatedErrorLog;
  /** Log message of the worker's errors (`worker error`, `control worker error`). */
  readonly message: string;
  /** First pause after an error. Default 1 s. */
  readonly minPauseMs?: number;
  /** Longest pause, reached by doubling while errors keep coming. Default 30 s. */
  readonly maxPauseMs?: number;
}

/** What {@link guardWorker} returns. */
export interface WorkerGuard {
  /** Not ok while the worker is pausing after errors, or its last error is recent. */
  state(): QueueCheck;
  /** Cancels a pending resume and stops pausing (call before closing the worker). */
  close(): void;
}

/**
 * Makes a BullMQ worker back off when its queue commands fail. BullMQ retries a failed job
 * fetch at once, so a Redis that answers every command with an error (a cluster node's `MOVED`)
 * turns the fetch loop into a busy loop: here every error pauses the worker's fetching (running
 * jobs go on) for a pause that doubles while errors continue, up to `maxPauseMs`, and the errors
 * are logged through `log` at a bounded rate.
 */
export function guardWorker<Result>(worker: Worker<unknown, Result>, options: WorkerGuardOptions): WorkerGuard {
  const minPauseMs = options.minPauseMs ?? 1_000;
  const maxPauseMs = options.maxPauseMs ?? 30_000;
  let pauseMs = 0;
  let lastError: { at: number; text: string } | undefined;
  let resumeTimer: NodeJS.Timeout | undefined;
  let closed = false;

  const onError = (error: Error) => {
    const at = Date.now();
    // An error long after the previous one starts a new streak at the shortest pause.
    if (lastError === undefined || at - lastError.at > 2 * maxPauseMs) pauseMs = 0;
    lastError = { at, text: errorText(error) };
    options.log.report(options.message, error, pauseMs === 0 ? {} : { pausedSeconds: pauseMs / 1000 });
    if (closed || resumeTimer !== undefined) return;
    pauseMs = pauseMs === 0 ? minPauseMs : Math.min(maxPauseMs, pauseMs * 2);
    void worker.pause(true).catch(() => undefined);
    resumeTimer = setTimeout(() => {
      resumeTimer = undefined;
      if (!closed) void worker.resume();
    }, pauseMs);
    resumeTimer.unref();
  };
  worker.on('error', onError);
  // A job taken means the queue works again: the next error starts from the shortest pause.
  const onActive = () => {
    pauseMs = 0;
    lastError = undefined;
  };
  worker.on('active', onActive);

  return {
    state() {
      if (resumeTimer !== undefined) return { ok: false, detail: `queue commands failing (${lastError?.text ?? 'error'}); fetching paused for ${Math.round(pauseMs / 1000)} s` };
      // An error within the last pause period: the resumed fetch has not proven the queue works yet.
      if (lastError !== undefined && Date.now() - lastError.at < Math.max(pauseMs * 2, 5_000)) return { ok: false, detail: `queue commands failing (${lastError.text})` };
      return { ok: true };
    },
    close() {
      // The listeners stay: an error emitted while the worker closes must still be handled
      // (an EventEmitter without an 'error' listener throws it), only no longer paused for.
      closed = true;
      clearTimeout(resumeTimer);
      resumeTimer = undefined;
    },
  };
}

/**
 * Runs a cheap queue command (a key read) through `redis`, the very connection the process
 * works with, within `timeoutMs`: a node that answers PING but refuses or redirects key commands
 * fails it. Never throws.
 */
export async function checkQueueCommand(redis: RedisClient, key: string, timeoutMs = 2_000): Promise<QueueCheck> {
  if (redis.status !== 'ready') return { ok: false, detail: `queue connection ${redis.status}` };
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      redis.exists(key).then((): QueueCheck => ({ ok: true })),
      new Promise<QueueCheck>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, detail: `queue did not answer within ${timeoutMs / 1000} s` }), timeoutMs);
      }),
    ]);
  } catch (error) {
    return { ok: false, detail: `queue command failed (${errorText(error).split(' ')[0] ?? 'error'})` };
  } finally {
    clearTimeout(timer);
  }
}
