export * from './plan.ts';
export * from './scheduler.ts';
export * from './request-sync.ts';
export * from './reconciler.ts';
export * from './rotation.ts';
