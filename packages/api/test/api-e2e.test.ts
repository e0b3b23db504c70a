import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { close, connect, createAccount, createApiKey, generateSecretKey, type Db } from '@dirsync/db';
import { createDirsyncClient, DirsyncApiError, type DirsyncClient } from '@dirsync/client';
import {
  createTestDatabase,
  createTestQueuePrefix,
  startSlapd,
  testAllowedNetworksSetting,
  testRedisUrl,
  waitFor,
  type SlapdServer,
  type TestDatabase,
  type TestQueuePrefix,
} from '@dirsync/testkit';

// The whole path as deployed: `dirsync api` and `dirsync worker` as separate processes meeting in
// Redis and Postgres, a real slapd, and a browser on the queue dashboard.

const dirsyncBin = fileURLToPath(new URL('../../../bin/dirsync', import.meta.url));
const wrongPassword = 'first-try-password-8d1e';

interface Service {
  readonly child: ChildProcess;
  output(): string;
  /** SIGTERM and wait: the exit code. */
  stop(): Promise<number | null>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function start(args: string[], env: Record<string, string>, ready: string): Promise<Service> {
  const child = spawn(dirsyncBin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (output += text));
  const closed = once(child, 'close');
  const service: Service = {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await closed;
      return child.exitCode;
    },
  };
  return waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`dirsync ${args.join(' ')} exited (${child.exitCode}): ${output}`);
      return output.includes(ready) ? service : undefined;
    },
    { timeoutMs: 30_000, what: `dirsync ${args.join(' ')} to start` },
  );
}

let slapd: SlapdServer;
let database: TestDatabase;
let prefix: TestQueuePrefix;
let db: Db;
let env: Record<string, string>;
let api: Service;
let worker: Service;
let baseUrl: string;
let workerOps: string;
let apiMetrics: string;
let client: DirsyncClient;
let platformToken: string;
let adminToken: string;
const services: Service[] = [];

beforeAll(async () => {
  slapd = await startSlapd({ data: { users: 30, groups: 3, membersPerGroup: 5 } });
  database = await createTestDatabase('api_e2e');
  prefix = createTestQueuePrefix('api-e2e');
  db = connect(database.url, { max: 2 });
  const apiPort = await freePort();
  const opsPort = await freePort();
  const apiMetricsPort = await freePort();
  env = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? '/tmp',
    DATABASE_URL: database.url,
    REDIS_URL: testRedisUrl,
    DIRSYNC_QUEUE_PREFIX: prefix.prefix,
    DIRSYNC_SECRET_KEY: generateSecretKey(),
    DIRSYNC_CONTROL_TIMEOUT_SECONDS: '5',
    DIRSYNC_METRICS_PORT: String(opsPort),
    // The test directory is a loopback slapd: allowed explicitly, as the platform would allow a VPN range.
    DIRSYNC_ALLOWED_NETWORKS: testAllowedNetworksSetting,
    PORT: String(apiPort),
    DIRSYNC_API_HOST: '127.0.0.1',
    // Everything there is to log, so the secret check below reads the most.
    LOG_LEVEL: 'trace',
  };
  baseUrl = `http://127.0.0.1:${apiPort}`;
  workerOps = `http://127.0.0.1:${opsPort}`;
  apiMetrics = `http://127.0.0.1:${apiMetricsPort}`;
  const account = await createAccount(db, { name: 'acme' });
  adminToken = (await createApiKey(db, { accountId: account.id, name: 'backoffice', scopes: ['admin'] })).token;
  platformToken = (await createApiKey(db, { accountId: null, name: 'ops', scopes: ['admin'] })).token;
  client = createDirsyncClient({ baseUrl, apiKey: adminToken, timeoutMs: 30_000 });
  // Installation-wide series are the scheduler's by default; this installation has no scheduler.
  api = await start(['api'], { ...env, DIRSYNC_METRICS_PORT: String(apiMetricsPort), DIRSYNC_INSTALLATION_METRICS: 'true' }, '"api started"');
  worker = await start(['worker'], { ...env, DIRSYNC_WORKER_ID: 'e2e-worker' }, '"worker started"');
  services.push(api, worker);
});

afterAll(async () => {
  for (const service of services) if (service.child.exitCode === null && service.child.signalCode === null) service.child.kill('SIGKILL');
  await close(db);
  await prefix.cleanup();
  await database.drop();
  await slapd.stop();
});

test('create, test, set the password (Sync All), read the users; the dashboard shows the completed job; no log holds a secret', async () => {
  const integration = await client.createIntegration({
    kind: 'ldap',
    name: 'openldap',
    settings: {
      url: slapd.url,
      bindDn: slapd.readerDn,
      tls: { mode: 'none', allowInsecure: true },
      users: { baseDns: [`ou=people,${slapd.suffix}`] },
      groups: { baseDns: [`ou=groups,${slapd.suffix}`] },
    },
    secret: wrongPassword,
    enabled: false,
  });

  const refused = await client.testConnection(integration.id);
  expect(refused.ok).toBe(false);
  expect(refused.checks.find((c) => !c.ok)?.name).toBe('bind');

  // A wrong new password is refused and nothing changes.
  const badChange = await client.setSecret(integration.id, 'still-wrong-password-2').catch((e: unknown) => e);
  expect(badChange).toBeInstanceOf(DirsyncApiError);
  expect((badChange as DirsyncApiError).problem).toMatchObject({ status: 422, type: '/v1/problems/connection-failed', checks: expect.any(Array) });

  await client.enableIntegration(integration.id);
  const changed = await client.setSecret(integration.id, slapd.readerPassword);
  expect(changed.connection.ok).toBe(true);
  expect(changed.sync).toMatchObject({ mode: 'full', deduplicated: false });
  const runId = changed.sync?.runId ?? '';
  const run = await waitFor(
    async () => {
      const current = await client.getRun(runId);
      return ['queued', 'running'].includes(current.status) ? undefined : current;
    },
    { timeoutMs: 60_000, what: 'the Sync All run to end' },
  );
  expect(run).toMatchObject({ status: 'succeeded', trigger: 'password_update', mode: 'full', workerId: 'e2e-worker', counts: expect.objectContaining({ created: 33 }) });
  expect((await client.testConnection(integration.id)).ok).toBe(true);
  const users = await client.listUsers(integration.id, { limit: 1000 });
  expect(users.items).toHaveLength(30);
  expect((await client.listMemberships(integration.id, { limit: 1000 })).items).toHaveLength(15);

  // Worker and API operations endpoints.
  expect((await fetch(`${workerOps}/readyz`)).status).toBe(200);
  expect(await (await fetch(`${workerOps}/metrics`)).text()).toMatch(/dirsync_sync_runs_total\{kind="ldap",mode="full",status="succeeded"\} 1/);
  // Per-integration series only on the internal metrics port, never on the public API port.
  expect(await (await fetch(`${apiMetrics}/metrics`)).text()).toMatch(new RegExp(`dirsync_integration_last_success_timestamp_seconds\\{integration_id="${integration.id}"`));
  expect((await fetch(`${baseUrl}/metrics`)).status).toBe(404);

  // The queue dashboard in a real browser: the key is asked for with a Basic challenge.
  const userDataDir = await mkdtemp(join(tmpdir(), 'dirsync-chromium-'));
  const browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    httpCredentials: { username: 'ops', password: platformToken },
  });
  try {
    const page = await browser.newPage();
    const overview = await page.goto(`${baseUrl}/admin/queues`);
    expect(overview?.status()).toBe(200);
    await page.getByText('dirsync-sync').first().waitFor({ timeout: 30_000 });
    await page.goto(`${baseUrl}/admin/queues/queue/dirsync-sync?status=completed`);
    await page.getByText(`run.${runId}`).first().waitFor({ timeout: 30_000 });
    expect(await page.content()).toContain(`run.${runId}`);
  } finally {
    await browser.close();
    await rm(userDataDir, { recursive: true, force: true });
  }
  // An account key, even an admin one, does not open the dashboard.
  const accountKeyAttempt = await fetch(`${baseUrl}/admin/queues`, { headers: { authorization: `Bearer ${adminToken}` } });
  expect(accountKeyAttempt.status).toBe(403);

  // Integration and run ids are in the logs of the run; no secret is anywhere in any log.
  const workerLines = worker.output().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>);
  expect(workerLines.find((line) => line['msg'] === 'sync finished')).toMatchObject({ integrationId: integration.id, runId });
  const logs = api.output() + worker.output();
  expect(logs.length).toBeGreaterThan(1000);
  for (const secret of [slapd.readerPassword, wrongPassword, 'still-wrong-password-2', adminToken, platformToken]) {
    expect(logs.includes(secret)).toBe(false);
  }
});

test('SIGTERM: the API finishes a request in flight before it exits; the worker exits cleanly', async () => {
  const [integration] = await client.listIntegrations();
  expect(integration).toBeDefined();
  // Without a worker the Test Connection request waits for its deadline: SIGTERM arrives meanwhile.
  expect(await worker.stop()).toBe(0);
  const before = api.output().length;
  const pending = client.testConnection(integration?.id ?? '').catch((e: unknown) => e);
  await waitFor(() => api.output().slice(before).includes('/test-connection"'), { what: 'the request to reach the API' });
  const exited = api.stop();
  const answer = await pending;
  expect(answer).toBeInstanceOf(DirsyncApiError);
  expect((answer as DirsyncApiError).problem).toMatchObject({ status: 504, type: '/v1/problems/worker-timeout' });
  expect(await exited).toBe(0);
  expect(api.output()).toMatch(/"api stopped"/);
  expect(worker.output()).toMatch(/"worker stopped"/);
});
