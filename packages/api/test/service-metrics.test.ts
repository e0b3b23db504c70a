import { Registry } from 'prom-client';
import { close, connect, createAccount, createIntegration, type Db } from '@dirsync/db';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import { createServiceMetrics } from '../src/index.ts';
import { ldapSettings } from './api-harness.ts';

// The installation-wide gauges: times as Unix timestamps read from PostgreSQL, integration
// status as a state set, actions needed by kind; and a process that leaves them to another
// exports only its own process metrics.

let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;

beforeAll(async () => {
  database = await createTestDatabase('service_metrics');
  db = connect(database.url, { max: 2 });
  prefix = createTestQueuePrefix('service-metrics');
});

afterAll(async () => {
  await prefix.cleanup();
  await close(db);
  await database.drop();
});

/** Value of one series in the text exposition, or undefined when absent. */
function valueOf(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.indexOf('}'));
    const pairs = Object.fromEntries([...body.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => pairs[key] === value)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

test('last success is a Unix timestamp gauge; status a state set; actions needed counted by kind', async () => {
  const account = await createAccount(db, { name: 'metrics' });
  const ok = await createIntegration(db, { accountId: account.id, kind: 'ldap', name: 'ok', settings: ldapSettings(), enabled: true });
  const failing = await createIntegration(db, { accountId: account.id, kind: 'ldap', name: 'failing', settings: ldapSettings(), enabled: true });
  const successAt = '2026-03-01T12:34:56.250Z';
  await db.$client`update integrations set status = 'succeeded', last_success_at = ${successAt} where id = ${ok.id}`;
  await db.$client`update integrations set status = 'failed' where id = ${failing.id}`;

  const metrics = createServiceMetrics({ db, connection: { url: testRedisUrl }, prefix: prefix.prefix, registry: new Registry() });
  try {
    const text = await metrics.registry.metrics();
    expect(valueOf(text, 'dirsync_integration_last_success_timestamp_seconds', { integration_id: ok.id, account_id: account.id, kind: 'ldap' })).toBe(Date.parse(successAt) / 1000);
    // Absent until a first success, never a made-up time.
    expect(valueOf(text, 'dirsync_integration_last_success_timestamp_seconds', { integration_id: failing.id })).toBeUndefined();
    expect(text).not.toContain('seconds_since_last_success');
    expect(valueOf(text, 'dirsync_integration_status', { integration_id: failing.id, status: 'failed' })).toBe(1);
    expect(valueOf(text, 'dirsync_integration_status', { integration_id: ok.id, status: 'succeeded' })).toBe(1);
    expect(valueOf(text, 'dirsync_integration_status', { integration_id: ok.id, status: 'failed' })).toBeUndefined();
    for (const kind of ['grant_consent', 'rotation_failed', 'certificate_expiring']) expect(valueOf(text, 'dirsync_actions_needed', { kind })).toBe(0);

    // The same instant on the next scrape: a timestamp does not age, so replicas and scrapes agree.
    expect(valueOf(await metrics.registry.metrics(), 'dirsync_integration_last_success_timestamp_seconds', { integration_id: ok.id })).toBe(Date.parse(successAt) / 1000);
  } finally {
    await metrics.close();
  }
});

test('a process that leaves the installation-wide series to another exports its process metrics only', async () => {
  const registry = new Registry();
  const metrics = createServiceMetrics({ db, connection: { url: testRedisUrl }, prefix: prefix.prefix, registry, installationWide: false });
  try {
    const text = await metrics.registry.metrics();
    expect(text).not.toMatch(/^dirsync_/m);
  } finally {
    await metrics.close();
  }
  const own = createServiceMetrics({ db, connection: { url: testRedisUrl }, prefix: prefix.prefix, installationWide: false });
  try {
    const text = await own.registry.metrics();
    expect(text).toMatch(/^process_cpu_seconds_total /m);
    expect(text).not.toMatch(/^dirsync_/m);
  } finally {
    await own.close();
  }
});
