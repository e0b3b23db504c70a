import type { StoredObjectState } from '@dirsync/db';

/** What the pipeline does with one fetched object. */
export type ObjectDecision = 'create' | 'update' | 'restore' | 'unchanged';

/** The fetched side of a comparison. */
export interface IncomingState {
  readonly contentHash: string;
  readonly dn: string | null;
}

/**
 * Compares a fetched object with what is stored. A soft-deleted object that reappears is restored
 * (rewritten whatever its hash); a DN change alone is an update, because the stored DN is what
 * member references are resolved against.
 */
export function decideObject(
  stored: Pick<StoredObjectState, 'contentHash' | 'dn' | 'deleted'> | undefined,
  incoming: IncomingState,
): ObjectDecision {
  if (stored === undefined) return 'create';
  if (stored.deleted) return 'restore';
  if (stored.contentHash !== incoming.contentHash || stored.dn !== incoming.dn) return 'update';
  return 'unchanged';
}
