export * from './pg.ts';
export * from './redis.ts';
export * from './wait.ts';
export * from './ldif.ts';
export * from './generate.ts';
export * from './slapd.ts';
export * from './samba.ts';
export * from './entra/index.ts';
