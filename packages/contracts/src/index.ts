export * from './vocabulary.ts';
export * from './webhooks.ts';
export * from './mapping.ts';
export * from './changes.ts';
