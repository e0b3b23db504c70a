export * from './cron.ts';
export * from './plan.ts';
export * from './slots.ts';
export * from './scheduler.ts';
export * from './reconciler.ts';
export * from './rotation.ts';
export * from './api/index.ts';
export * from './ops/index.ts';
