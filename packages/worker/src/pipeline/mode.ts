import type { SyncMode } from '@dirsync/contracts';
import type { Cursor, CursorRejectedError } from '@dirsync/providers';


/** The mode a run runs in and the sentence its report gives for it. */
export interface ModePlan {
  readonly mode: SyncMode;
  readonly reason: string;
}

/**
 * Decides how a requested run starts: a delta needs a stored cursor; without one (first sync,
 * or a cursor cleared on purpose) it runs as a full sync.
 */
export function planMode(requested: SyncMode, cursor: Cursor | null | undefined): ModePlan {
  if (requested === 'full') return { mode: 'full', reason: 'full sync requested' };
  if (cursor === null || cursor === undefined) {
    return { mode: 'full', reason: 'no cursor stored (first sync or cursor reset): delta ran as a full sync' };
  }
  return { mode: 'delta', reason: 'delta sync requested' };
}

/** The plan after the provider refused the cursor: a full sync, giving the provider's reason. */
export function fallbackToFull(error: CursorRejectedError): ModePlan {
  return { mode: 'full', reason: `delta cursor rejected (${error.message}): delta ran as a full sync` };
}
