import type { DirsyncClient } from './client.ts';
import type { ChangePage } from './types.ts';

/** Options of {@link followChanges}. */
export interface FollowChangesOptions {
  /**
   * Where to resume: the `cursor` of the last page the consumer finished with (store it after
   * handling each page). `"0"` reads from the start; a new consumer reads the lists once and
   * starts from `getChangeHead()`.
   */
  readonly after: string;
  /** Entries per page (1–1000, default the API's 100). */
  readonly limit?: number;
  /**
   * When the feed is caught up: `false` (default) waits `pollIntervalMs` and asks again, for as
   * long as the iteration goes on; `true` ends the iteration.
   */
  readonly stopWhenCaughtUp?: boolean;
  /** Wait between polls once caught up (default 5 s). */
  readonly pollIntervalMs?: number;
  /** Ends the iteration (a poll waiting is cut short; a request in flight is aborted by the client's own deadline). */
  readonly signal?: AbortSignal;
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Follows the account's change feed from a stored cursor, one page at a time; empty pages are not
 * yielded. Store `page.cursor` once a page is handled and pass it as `after` on restart: every
 * entry is then handled at least once, in cursor order. When the stored cursor is older than the
 * history the API keeps, the iteration throws `CursorExpiredError`: read the lists again and
 * follow from its `head`.
 *
 * ```ts
 * for await (const page of followChanges(client, { after: stored })) {
 *   for (const entry of page.items) apply(entry);
 *   stored = page.cursor;
 * }
 * ```
 */
export async function* followChanges(client: Pick<DirsyncClient, 'listChanges'>, options: FollowChangesOptions): AsyncGenerator<ChangePage> {
  let after = options.after;
  const pollIntervalMs = options.pollIntervalMs ?? 5_000;
  while (options.signal?.aborted !== true) {
    const page = await client.listChanges(after, options.limit === undefined ? {} : { limit: options.limit });
    if (page.items.length > 0) yield page;
    after = page.cursor;
    if (page.hasMore) continue;
    if (options.stopWhenCaughtUp === true) return;
    await pause(pollIntervalMs, options.signal);
  }
}
