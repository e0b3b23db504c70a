import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { createServiceMetrics } from '@dirsync/api';
import { close, connect, type Db } from '@dirsync/db';
import { createTestDatabase, createTestQueuePrefix, startSlapd, testRedisUrl, type TestDatabase, type TestQueuePrefix } from '@dirsync/testkit';
import { createWorkerMetrics } from '@dirsync/worker';
import { createCliEnvironment, ldapIntegrationArgs, runCli, startCliWorker } from './support/run-cli.ts';

// The alerting rules and the dashboard under docker/: the rules pass their promtool unit tests
// and every expression of both names only metrics the processes export. promtool comes with
// Debian's prometheus package, which scripts/bootstrap.sh installs: without it this test fails.
// And traces: a `dirsync worker` sends a run's spans to a local OTLP/HTTP receiver with the
// headers of DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS_FILE, which no output shows.

const execFileAsync = promisify(execFile);
const dockerDir = fileURLToPath(new URL('../../../docker/', import.meta.url));
const rulesDir = join(dockerDir, 'prometheus');

let database: TestDatabase;
let db: Db;
let prefix: TestQueuePrefix;
let exported: Set<string>;

beforeAll(async () => {
  database = await createTestDatabase('observability');
  db = connect(database.url, { max: 2 });
  prefix = createTestQueuePrefix('observability');
  const service = createServiceMetrics({ db, connection: { url: testRedisUrl }, prefix: prefix.prefix });
  const worker = createWorkerMetrics({ db });
  try {
    exported = new Set<string>();
    for (const metric of [...service.registry.getMetricsAsArray(), ...worker.registry.getMetricsAsArray()]) {
      const { name, type } = metric as unknown as { name: string; type: string };
      exported.add(name);
      // A histogram is exposed as its buckets, sum and count.
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(`${name}${suffix}`);
    }
  } finally {
    await service.close();
  }
});

afterAll(async () => {
  await prefix.cleanup();
  await close(db);
  await database.drop();
});

const promqlWords = new Set([
  // aggregations and their modifiers
  'sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group',
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset',
  // functions used here or likely to be
  'rate', 'irate', 'increase', 'delta', 'deriv', 'time', 'absent', 'absent_over_time', 'histogram_quantile', 'sort', 'sort_desc',
  'max_over_time', 'min_over_time', 'avg_over_time', 'changes', 'resets', 'clamp_min', 'clamp_max', 'vector', 'scalar', 'label_replace', 'timestamp', 'abs', 'round',
]);

/**
 * Metric names an expression selects: what is left once strings, label matchers, range and
 * grouping lists, numbers and PromQL's own words are taken out.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const words = stripped.match(/[A-Za-z_:][A-Za-z0-9_:]*/g) ?? [];
  return words.filter((word) => !promqlWords.has(word) && !/^(e|inf|nan)$/i.test(word));
}

test('the name extractor finds metrics and only metrics', () => {
  expect(metricNames('sum by (status) (rate(dirsync_sync_runs_total{status=~"failed|x"}[$__rate_interval]))')).toEqual(['dirsync_sync_runs_total']);
  expect(metricNames('time() - max by (integration_id) (dirsync_integration_last_success_timestamp_seconds) > 6 * 3600')).toEqual(['dirsync_integration_last_success_timestamp_seconds']);
  expect(metricNames('absent(nope_metric) or vector(0)')).toEqual(['nope_metric']);
});

test('promtool accepts the rules and their unit tests pass', async () => {
  const check = await execFileAsync('promtool', ['check', 'rules', 'dirsync-rules.yaml'], { cwd: rulesDir });
  expect(check.stdout).toMatch(/SUCCESS: \d+ rules found/);
  const tests = await execFileAsync('promtool', ['test', 'rules', 'dirsync-rules.test.yaml'], { cwd: rulesDir });
  expect(`${tests.stdout}${tests.stderr}`).toMatch(/SUCCESS/);
}, 60_000);

async function ruleExpressions(): Promise<Array<{ alert: string; expr: string }>> {
  const { parse } = await import('yaml');
  const file = parse(await readFile(join(rulesDir, 'dirsync-rules.yaml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  return file.groups.flatMap((group) => group.rules);
}

test('every rule names only exported metrics, and the issue’s alerts are all there', async () => {
  const rules = await ruleExpressions();
  expect(rules.map((rule) => rule.alert)).toEqual(
    expect.arrayContaining(['DirsyncSyncFailing', 'DirsyncNoRecentSuccess', 'DirsyncQueueBacklog', 'DirsyncCertificateRotationFailed', 'DirsyncConsentRevoked', 'DirsyncCertificateExpiringSoon']),
  );
  for (const rule of rules) {
    const names = metricNames(rule.expr);
    expect([rule.alert, names.length > 0]).toEqual([rule.alert, true]);
    expect([rule.alert, names.filter((name) => !exported.has(name))]).toEqual([rule.alert, []]);
  }
});

interface Panel {
  title: string;
  type: string;
  targets?: Array<{ expr: string }>;
  panels?: Panel[];
}

test('the dashboard parses, every query is valid PromQL and names only exported metrics', async () => {
  const dashboard = JSON.parse(await readFile(join(dockerDir, 'grafana', 'dirsync.json'), 'utf8')) as { uid: string; panels: Panel[] };
  expect(dashboard.uid).toBe('dirsync');
  const panels = dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
  const queries = panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr })));
  expect(queries.length).toBeGreaterThan(10);
  const used = new Set<string>();
  for (const query of queries) {
    const names = metricNames(query.expr);
    expect([query.panel, names.length > 0]).toEqual([query.panel, true]);
    expect([query.panel, names.filter((name) => !exported.has(name))]).toEqual([query.panel, []]);
    for (const name of names) used.add(name);
  }
  // The series alerts are about are on the dashboard too.
  for (const name of ['dirsync_integration_last_success_timestamp_seconds', 'dirsync_integration_status', 'dirsync_queue_jobs', 'dirsync_actions_needed', 'dirsync_connector_credential_expires_in_seconds']) {
    expect(used.has(name)).toBe(true);
  }

  // promtool parses each query as a recording rule (Grafana's interval variables as a fixed range).
  const dir = await mkdtemp(join(tmpdir(), 'dirsync-dashboard-'));
  try {
    const rules = queries.map((query, i) => ({ record: `dashboard:query_${i}`, expr: query.expr.replaceAll('$__rate_interval', '5m').replaceAll('$__interval', '1m') }));
    await writeFile(join(dir, 'dashboard.yaml'), stringify({ groups: [{ name: 'dashboard', rules }] }));
    const check = await execFileAsync('promtool', ['check', 'rules', 'dashboard.yaml'], { cwd: dir });
    expect(check.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 60_000);

test('dirsync worker posts a sync run\'s trace with the headers of DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS_FILE; a malformed one stops it, unshown', async () => {
  const received: Array<{ url: string | undefined; authorization: string | undefined; body: string }> = [];
  const collector = createServer((request: IncomingMessage, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      received.push({ url: request.url, authorization: request.headers.authorization, body });
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  collector.listen(0, '127.0.0.1');
  await once(collector, 'listening');
  const address = collector.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  const server = await startSlapd({ tls: true, data: { users: 6, groups: 1, membersPerGroup: 3, seed: 2 } });
  const cli = await createCliEnvironment('otlpheaders');
  const dir = await mkdtemp(join(tmpdir(), 'dirsync-otlp-'));
  const token = `collector-${randomUUID()}`;
  try {
    const headersFile = join(dir, 'otlp-headers');
    await writeFile(headersFile, `authorization=Bearer%20${token}\n`);
    const env = { ...cli.env, DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${address.port}`, DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS_FILE: headersFile };

    const refused = await runCli({ ...env, DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS_FILE: '', DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS: `authorization=${token}%zz` }, ['worker']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS: pair 1 (authorization): the value is not valid percent-encoding');
    expect(refused.stdout + refused.stderr).not.toContain(token);

    await cli.ok(['accounts', 'add', 'acme']);
    const id = (await cli.ok(ldapIntegrationArgs(server, 'Traced'), { input: server.readerPassword })).trim();
    const worker = await startCliWorker(env, 'otlp-worker');
    const sync = await cli.ok(['sync', id, '--full', '--wait', '--json']);
    const runId = (JSON.parse(sync) as { runId: string; run: { status: string } }).runId;
    expect(JSON.parse(sync)).toMatchObject({ run: { status: 'succeeded' } });
    // SIGTERM: the worker flushes its last traces before it exits.
    expect(await worker.stop()).toBe(0);
    expect(received.length).toBeGreaterThan(0);
    for (const request of received) expect(request).toMatchObject({ url: '/v1/traces', authorization: `Bearer ${token}` });
    expect(received.map((request) => request.body).join('\n')).toContain(runId);
    expect(worker.output()).not.toContain(token);
    expect(cli.transcript()).not.toContain(token);
  } finally {
    await cli.cleanup();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
    collector.close();
  }
}, 120_000);
