export * from './pipeline/index.ts';
export { createSyncProcessor, type ProviderFactory, type ProviderOwner, type SyncJobResult, type SyncProcessorOptions } from './processor.ts';
export { createWorker, type CreateWorkerOptions, type DirsyncWorker } from './worker.ts';
export { classifyFailure, type FailureVerdict } from './failure.ts';
export {
  DEFAULT_LOCK_TIMING,
  integrationLockKey,
  LockLostError,
  tryAcquireLock,
  type HeldLock,
  type LockTiming,
} from './lock.ts';
export { createControlProcessor, createControlWorker, type ControlProcessorOptions, type ControlWorker, type ControlWorkerOptions, withMappedSamples } from './control/index.ts';
export * from './ops/index.ts';
export * from './entra/index.ts';
export * from './rotation/index.ts';
export * from './webhooks/index.ts';
export {
  accountFullLimitKey,
  accountLimitKey,
  countSlots,
  DEFAULT_SYNC_LIMITS,
  directoryHostOf,
  hostLimitKey,
  resolveSyncLimits,
  type SyncLimitOptions,
  type SyncLimits,
} from './limits.ts';
