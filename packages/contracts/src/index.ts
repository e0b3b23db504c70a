export * from './vocabulary.ts';
export * from './webhooks.ts';
export * from './mapping.ts';
export * from './jobs.ts';
export * from './changes.ts';
export * from './api.ts';
export * from './audit.ts';
