export * from './vocabulary.ts';
export * from './webhooks.ts';
export * from './mapping.ts';
