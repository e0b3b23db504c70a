import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Attribute, Change, type Client } from 'ldapts';
import { pino } from 'pino';
import {
  close,
  connect,
  createAccount,
  createIntegration,
  createKeyRing,
  type Db,
  generateSecretKey,
  getRun,
  type Run,
} from '@dirsync/db';
import { SYNC_QUEUE } from '@dirsync/jobs';
import { createProvider } from '@dirsync/providers';
import {
  createTestDatabase,
  createTestQueuePrefix,
  type DirectorySpec,
  startSlapd,
  testRedisUrl,
  waitFor,
  type SlapdServer,
  type TestDatabase,
  type TestQueuePrefix,
  testDestinations,
} from '@dirsync/testkit';
import type { ProviderFactory } from '../../src/processor.ts';
import { createWorker, type DirsyncWorker } from '../../src/worker.ts';

/** One stored directory object, as the assertions of the LDAP tests read it. */
export interface StoredObject {
  /** bigint, as postgres.js returns it (text). */
  readonly id: string;
  readonly external_id: string;
  readonly type: string;
  readonly dn: string | null;
  readonly attributes: Record<string, unknown>;
  readonly deleted: boolean;
  /** Text form, microseconds included. */
  readonly updated_at: string;
}

/**
 * A throwaway slapd, a fresh database, a queue prefix and a BullMQ worker running the real
 * processor with the generic LDAP provider built from the stored settings and the decrypted
 * password: the whole sync path, with nothing replaced.
 */
export interface LdapSyncFixture {
  readonly server: SlapdServer;
  readonly db: Db;
  readonly integrationId: string;
  /** Runs `change` on a client bound as the server's administrator, unbinding it afterwards. */
  admin<T>(change: (client: Client) => Promise<T>): Promise<T>;
  /** Settings pointing at the server; `usersOu`/`groupsOu` choose other bases (a wrong base DN). */
  settings(usersOu?: string, groupsOu?: string): Record<string, unknown>;
  /** Enqueues a sync job and waits for its run to end. */
  sync(mode: 'full' | 'delta', options?: { dryRun?: boolean; attempts?: number }): Promise<Run>;
  /** Live objects of a type. */
  liveCount(type: 'user' | 'group'): Promise<number>;
  /** The stored object whose current DN is `dn`. */
  objectByDn(dn: string): Promise<StoredObject | undefined>;
  /** The stored object with this external id. */
  object(externalId: string): Promise<StoredObject | undefined>;
  /** Live edges as `group>member` external ids, sorted. */
  liveEdges(): Promise<string[]>;
  /** Every row of the integration's objects and edges, timestamps included. */
  snapshot(): Promise<string>;
  close(): Promise<void>;
}

/** A modification replacing every value of `type`. */
export const replace = (type: string, values: string[]) => new Change({ operation: 'replace', modification: new Attribute({ type, values }) });
/** A modification adding one value to `type`. */
export const addValue = (type: string, value: string) => new Change({ operation: 'add', modification: new Attribute({ type, values: [value] }) });
/** A modification removing one value of `type`. */
export const deleteValue = (type: string, value: string) => new Change({ operation: 'delete', modification: new Attribute({ type, values: [value] }) });

/** Options of {@link startLdapSyncFixture}. */
export interface LdapSyncFixtureOptions {
  readonly label: string;
  readonly data: DirectorySpec;
  readonly pageSize?: number;
  /** Wraps the real provider factory (to act on the server at a precise point of a fetch). */
  readonly wrapProvider?: (real: ProviderFactory) => ProviderFactory;
}

/** Starts everything {@link LdapSyncFixture} describes; `close()` stops it all. */
export async function startLdapSyncFixture(options: LdapSyncFixtureOptions): Promise<LdapSyncFixture> {
  let server: SlapdServer | undefined;
  let database: TestDatabase | undefined;
  let db: Db | undefined;
  let prefix: TestQueuePrefix | undefined;
  let queue: Queue | undefined;
  let worker: DirsyncWorker | undefined;
  const shutdown = async () => {
    await worker?.close();
    await queue?.close();
    await prefix?.cleanup();
    if (db) await close(db);
    await database?.drop();
    await server?.stop();
  };
  try {
    server = await startSlapd({ data: options.data });
    database = await createTestDatabase(options.label);
    db = connect(database.url, { max: 6 });
    prefix = createTestQueuePrefix(options.label);
    queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix: prefix.prefix });
    const ring = createKeyRing({ current: generateSecretKey() });
    const live = server;
    const settings = (usersOu = 'ou=people', groupsOu = 'ou=groups'): Record<string, unknown> => ({
      url: live.url,
      bindDn: live.readerDn,
      tls: { mode: 'none', allowInsecure: true },
      users: { baseDns: [`${usersOu},${live.suffix}`] },
      groups: { baseDns: [`${groupsOu},${live.suffix}`] },
      pageSize: options.pageSize ?? 25,
      // Live changes land within seconds of each other: a short overlap re-reads only those.
      deltaOverlapSeconds: 5,
    });
    const account = await createAccount(db, { name: `ldap-${options.label}` });
    const integrationId = (
      await createIntegration(
        db,
        { accountId: account.id, kind: 'ldap', name: 'openldap', settings: settings() },
        { ring, plaintext: server.readerPassword },
      )
    ).id;
    const real: ProviderFactory = (kind, stored, secret) => createProvider(kind, stored, secret, { destinations: testDestinations });
    worker = createWorker({
      db,
      redisUrl: testRedisUrl,
      prefix: prefix.prefix,
      concurrency: 1,
      keyRing: ring,
      logger: pino({ level: 'silent' }),
      workerId: `e2e-${options.label}`,
      destinations: testDestinations,
      createProvider: options.wrapProvider ? options.wrapProvider(real) : real,
    });

    const handle = db;
    const jobs = queue;
    return {
      server,
      db,
      integrationId,
      async admin(change) {
        const client = await live.client();
        try {
          return await change(client);
        } finally {
          await client.unbind();
        }
      },
      settings,
      async sync(mode, syncOptions = {}) {
        const runId = randomUUID();
        const attempts = syncOptions.attempts ?? 1;
        await jobs.add(
          'sync',
          { integrationId, runId, mode, trigger: 'manual', dryRun: syncOptions.dryRun ?? false },
          { jobId: `run.${runId}`, attempts, backoff: { type: 'fixed', delay: 10 } },
        );
        return waitFor(
          async () => {
            const run = await getRun(handle, runId);
            return run && !['queued', 'running'].includes(run.status) ? run : undefined;
          },
          { timeoutMs: 60_000, what: `the ${mode} run to end` },
        );
      },
      async liveCount(type) {
        const [row] = await handle.$client<{ n: number }[]>`
          select count(*)::int as n from directory_objects
          where integration_id = ${integrationId} and type = ${type} and deleted_at is null`;
        return row?.n ?? 0;
      },
      async objectByDn(dn) {
        const [row] = await handle.$client<StoredObject[]>`
          select id, external_id, type, dn, attributes, deleted_at is not null as deleted, updated_at::text as updated_at from directory_objects
          where integration_id = ${integrationId} and dn = ${dn.toLowerCase()}`;
        return row;
      },
      async object(externalId) {
        const [row] = await handle.$client<StoredObject[]>`
          select id, external_id, type, dn, attributes, deleted_at is not null as deleted, updated_at::text as updated_at from directory_objects
          where integration_id = ${integrationId} and external_id = ${externalId}`;
        return row;
      },
      async liveEdges() {
        const rows = await handle.$client<{ edge: string }[]>`
          select group_external_id || '>' || member_external_id as edge from memberships
          where integration_id = ${integrationId} and deleted_at is null order by 1`;
        return rows.map((row) => row.edge);
      },
      async snapshot() {
        const objects = await handle.$client`
          select * from directory_objects where integration_id = ${integrationId} order by external_id`;
        const edges = await handle.$client`
          select * from memberships where integration_id = ${integrationId} order by group_external_id, member_external_id`;
        return JSON.stringify({ objects, edges });
      },
      close: shutdown,
    };
  } catch (error) {
    await shutdown();
    throw error;
  }
}
