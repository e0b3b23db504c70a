export * from './cron.ts';
export * from './plan.ts';
export * from './slots.ts';
export * from './scheduler.ts';
