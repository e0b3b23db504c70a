export type * from './types.ts';
export * from './client.ts';
export * from './feed.ts';
export * from './webhooks.ts';
