export * from './vocabulary.ts';
export * from './webhooks.ts';
