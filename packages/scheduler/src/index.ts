export * from './cron.ts';
export * from './plan.ts';
export * from './scheduler.ts';
export * from './request-sync.ts';
export * from './reconciler.ts';
export * from './rotation.ts';
export * from './api/index.ts';
export * from './ops/index.ts';
