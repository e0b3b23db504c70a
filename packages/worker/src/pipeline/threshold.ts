/** Deletion limits used when an integration sets none (the schema's column defaults). */
export const DEFAULT_DELETE_THRESHOLD = { count: 500, percent: 20 } as const;

/** Inputs of {@link exceedsThreshold}. */
export interface ThresholdInput {
  /** Objects the run would delete. */
  readonly wouldDelete: number;
  /** Live objects of the integration before the deletions. */
  readonly live: number;
  /** Largest number of deletions allowed. */
  readonly count: number;
  /** Largest share of `live`, in percent, allowed. */
  readonly percent: number;
}

/** True when the deletions are more than `count`, or more than `percent`% of the live objects. */
export function exceedsThreshold({ wouldDelete, live, count, percent }: ThresholdInput): boolean {
  // Integer arithmetic: no rounding decides a borderline case.
  return wouldDelete > count || wouldDelete * 100 > percent * live;
}

/** An administrator's approval of a blocked run: later runs may delete up to this many objects. */
export interface DeletionApproval {
  readonly maxDeletions: number;
}

/** Whether a run may apply its deletions, and why. */
export interface DeletionVerdict {
  readonly allowed: boolean;
  /** The deletions are over the integration's limit (approved or not). */
  readonly exceeded: boolean;
  /** The run is allowed only thanks to the approval. */
  readonly approvalUsed: boolean;
}

/**
 * Applies the threshold and an optional approval: over the limit, the run may still delete when
 * an approval covers at least as many deletions as it would make now; more than that is blocked
 * again (the source may have lost even more since the administrator looked).
 */
export function deletionVerdict(input: ThresholdInput & { readonly approval?: DeletionApproval | undefined }): DeletionVerdict {
  const exceeded = exceedsThreshold(input);
  if (!exceeded) return { allowed: true, exceeded, approvalUsed: false };
  if (input.approval !== undefined && input.wouldDelete <= input.approval.maxDeletions) {
    return { allowed: true, exceeded, approvalUsed: true };
  }
  return { allowed: false, exceeded, approvalUsed: false };
}
