export * from './queues.ts';
export * from './payloads.ts';
export * from './backoff.ts';
export * from './job-options.ts';
export * from './enqueue.ts';
export * from './control.ts';
export * from './rotation.ts';
export * from './unavailable.ts';
