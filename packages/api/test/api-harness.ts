import { Writable } from 'node:stream';
import pino from 'pino';
import {
  close,
  connect,
  createAccount,
  createApiKey,
  createKeyRing,
  generateSecretKey,
  type ApiScope,
  type Db,
  type KeyRing,
} from '@dirsync/db';
import { createDirsyncClient, type DirsyncClient } from '@dirsync/client';
import { entraCloud, generateCertificate, validateSettings } from '@dirsync/providers';
import { requestSync } from '@dirsync/scheduler';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import { createApiServer, type ApiServer, type ApiServerOptions } from '../src/index.ts';

/** A running API server on its own database and queue prefix, with accounts and keys to call it with. */
export interface ApiHarness {
  readonly db: Db;
  readonly ring: KeyRing;
  readonly prefix: TestQueuePrefix;
  readonly database: TestDatabase;
  readonly server: ApiServer;
  readonly baseUrl: string;
  /** Every line the server logged. */
  readonly logs: string[];
  /** Creates an account (unique name from `label`). */
  account(label: string): Promise<string>;
  /** Creates a key; `accountId: null` makes a platform key. */
  key(accountId: string | null, scopes: ApiScope[], name?: string): Promise<string>;
  client(token: string): DirsyncClient;
  /** Raw request with an optional key. */
  request(method: string, path: string, options?: { token?: string; body?: unknown; headers?: Record<string, string> }): Promise<Response>;
  close(): Promise<void>;
}

/** Settings of a generic LDAP integration that validate (the server need not exist). */
export function ldapSettings(host = 'ldap.example.com'): Record<string, unknown> {
  return {
    url: `ldaps://${host}`,
    bindDn: 'cn=reader,dc=example,dc=org',
    users: { baseDns: ['ou=people,dc=example,dc=org'] },
    groups: { baseDns: ['ou=groups,dc=example,dc=org'] },
  };
}

/** Starts an API server for one test file. */
export async function startApiHarness(label: string, overrides: Partial<ApiServerOptions> = {}): Promise<ApiHarness> {
  const database = await createTestDatabase(label);
  const db = connect(database.url, { max: 8 });
  const prefix = createTestQueuePrefix(label);
  const ring = createKeyRing({ current: generateSecretKey() });
  const logs: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(...chunk.toString().split('\n').filter((line) => line.trim() !== ''));
      done();
    },
  });
  const server = await createApiServer({
    db,
    connection: testRedisUrl,
    prefix: prefix.prefix,
    logger: pino({ level: 'debug' }, stream),
    keyRing: ring,
    validateSettings,
    requestSync,
    connectorTooling: { generateCertificate, cloudHosts: entraCloud },
    controlTimeoutMs: 1_000,
    ...overrides,
  });
  const port = await server.listen(0, '127.0.0.1');
  const baseUrl = `http://127.0.0.1:${port}`;
  let accounts = 0;
  return {
    db,
    ring,
    prefix,
    database,
    server,
    baseUrl,
    logs,
    async account(name) {
      accounts += 1;
      return (await createAccount(db, { name: `${name}-${accounts}` })).id;
    },
    async key(accountId, scopes, name = scopes.join('+')) {
      return (await createApiKey(db, { accountId, name, scopes, createdBy: 'test' })).token;
    },
    client(token) {
      return createDirsyncClient({ baseUrl, apiKey: token, timeoutMs: 20_000 });
    },
    async request(method, path, options = {}) {
      const headers: Record<string, string> = { ...options.headers };
      if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
      if (options.body !== undefined) headers['content-type'] ??= 'application/json';
      return fetch(`${baseUrl}${path}`, {
        method,
        headers,
        ...(options.body === undefined ? {} : { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) }),
      });
    },
    async close() {
      await server.close();
      await prefix.cleanup();
      await close(db);
      await database.drop();
    },
  };
}
