export * from './pg.ts';
export * from './redis.ts';
export * from './wait.ts';
