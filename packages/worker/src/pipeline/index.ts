export { defaultRunLimits, RunLimitError, type RunLimits, runSync, type RunSyncOptions, type SyncIntegration, type SyncProgress, type SyncRun } from './run-sync.ts';
export type { SyncCounts, SyncOutcome, SyncReport } from './report.ts';
export { planMode, fallbackToFull, type ModePlan } from './mode.ts';
export {
  DEFAULT_DELETE_THRESHOLD,
  deletionVerdict,
  exceedsThreshold,
  type DeletionApproval,
  type DeletionVerdict,
  type ThresholdInput,
} from './threshold.ts';
export { contentHash, memberRefsHash, stableJson } from './hash.ts';
export { decideObject, type ObjectDecision } from './decide.ts';
