import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { configSchema, loadConfig, secretSettings } from '../src/config.ts';

// Helm cannot be installed here. These tests check the chart with what can run: its values schema
// with ajv, its templates rendered by Go's text/template (the engine Helm uses) through
// test/support/helm-render, which implements only the functions the chart calls, and the rendered
// manifests against the Kubernetes API's models of Debian's python3-kubernetes
// (test/support/k8s-check.py: field names, types, required fields; custom resources skipped).

const execFileAsync = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const chartDir = join(root, 'docker/helm/dirsync');
const rendererSource = fileURLToPath(new URL('./support/helm-render/main.go', import.meta.url));
const kubernetesChecker = fileURLToPath(new URL('./support/k8s-check.py', import.meta.url));

type Values = Record<string, any>;
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  [key: string]: unknown;
}

let work: string;
let renderer: string;
let defaults: Values;
let chart: { name: string; version: string; appVersion: string; [field: string]: unknown };
let validate: ValidateFunction;
let schema: any;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'dirsync-helm-'));
  renderer = join(work, 'helm-render');
  // Go comes from the bootstrap's apt list (golang-go); a machine without it fails here, loudly.
  await execFileAsync('go', ['build', '-o', renderer, rendererSource], { env: { ...process.env, GOFLAGS: '', GOCACHE: process.env['GOCACHE'] ?? join(tmpdir(), 'dirsync-go-cache') } });
  defaults = parse(await readFile(join(chartDir, 'values.yaml'), 'utf8'));
  chart = parse(await readFile(join(chartDir, 'Chart.yaml'), 'utf8'));
  schema = JSON.parse(await readFile(join(chartDir, 'values.schema.json'), 'utf8'));
  validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(schema);
}, 120_000);

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A deep copy of the default values with `change` applied (Helm merges -f files the same way for these keys). */
function variant(change: (values: Values) => void): Values {
  const values = structuredClone(defaults);
  change(values);
  return values;
}

function schemaErrors(values: Values): string[] {
  return validate(values) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

async function renderFiles(values: Values, dir = chartDir, release = 'prod', namespace = 'dirsync'): Promise<Record<string, string>> {
  const input = join(work, `input-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(input, JSON.stringify({ Values: values, Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion }, Release: { Name: release, Namespace: namespace } }));
  const { stdout } = await execFileAsync(renderer, [dir, input], { maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(stdout);
}

/** Every rendered manifest, each YAML document parsed strictly (an error in any fails the test). */
async function render(values: Values, release = 'prod', namespace = 'dirsync'): Promise<Manifest[]> {
  const files = await renderFiles(values, chartDir, release, namespace);
  const manifests: Manifest[] = [];
  for (const [path, text] of Object.entries(files)) {
    if (!path.endsWith('.yaml')) continue;
    for (const document of parseAllDocuments(text)) {
      expect({ path, errors: document.errors.map(String) }).toEqual({ path, errors: [] });
      const value = document.toJS();
      if (value !== null) manifests.push(value);
    }
  }
  return manifests;
}

/**
 * The manifests checked against the Kubernetes API's models. Debian's own python3, where the
 * bootstrap's python3-kubernetes is installed (another python3 may come first on PATH).
 */
async function kubernetesCheck(manifests: Manifest[]): Promise<{ checked: string[]; skipped: string[]; problems: string[] }> {
  const input = join(work, `manifests-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(input, JSON.stringify(manifests));
  const { stdout } = await execFileAsync('/usr/bin/python3', [kubernetesChecker, input], { maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(stdout);
}

function one(manifests: Manifest[], kind: string, name: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind && m.metadata.name === name);
  expect(found.map((m) => `${m.kind}/${m.metadata.name}`)).toEqual([`${kind}/${name}`]);
  return found[0]!;
}

function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}

const podTemplates = (manifests: Manifest[]) =>
  manifests.filter((m) => m.kind === 'Deployment' || m.kind === 'Job').map((m) => ({ owner: `${m.kind}/${m.metadata.name}`, template: m.spec.template }));

describe('the chart', () => {
  test("its appVersion is the root package's version", async () => {
    const rootPackage = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
    expect(chart.appVersion).toBe(rootPackage.version);
    expect(chart.name).toBe('dirsync');
    // Helm's Chart.yaml (apiVersion v2) fields; anything else is silently ignored by Helm.
    const fields = ['apiVersion', 'name', 'version', 'kubeVersion', 'description', 'type', 'keywords', 'home', 'sources', 'dependencies', 'maintainers', 'icon', 'appVersion', 'deprecated', 'annotations'];
    expect(Object.keys(chart).filter((key) => !fields.includes(key))).toEqual([]);
    expect(chart).toMatchObject({ apiVersion: 'v2', type: 'application' });
  });

  test('object names follow the release name, without repeating the chart name, or fullnameOverride', async () => {
    const names = (manifests: Manifest[]) => manifests.filter((m) => m.kind === 'Deployment').map((m) => m.metadata.name).sort();
    expect(names(await render(defaults, 'dirsync'))).toEqual(['dirsync-scheduler', 'dirsync-worker']);
    expect(names(await render(variant((v) => (v.fullnameOverride = 'directory-sync')), 'prod'))).toEqual(['directory-sync-scheduler', 'directory-sync-worker']);
  });
});

describe('values.schema.json', () => {
  test('accepts the default values and the documented variants', () => {
    expect(schemaErrors(defaults)).toEqual([]);
    const variants = [
      variant((v) => {
        v.worker.keda.enabled = true;
        v.serviceMonitor.enabled = true;
        v.serviceMonitor.labels = { release: 'kube-prometheus-stack' };
      }),
      variant((v) => {
        v.networkPolicy.enabled = false;
        v.secrets.keys.DIRSYNC_OIDC_CLIENT_SECRET = 'oidc-client-secret';
        v.config.DIRSYNC_OIDC_ISSUER = 'https://login.example.com';
      }),
      variant((v) => {
        v.networkPolicy.apiFrom = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } }];
        v.networkPolicy.workerEgress = [{ to: [{ ipBlock: { cidr: '10.20.0.0/16' } }], ports: [{ port: 636 }] }];
        v.image.tag = '0.1.0';
        v.worker.extraEnv = { DIRSYNC_WORKER_SHARDS: '0-3' };
      }),
    ];
    for (const values of variants) expect(schemaErrors(values)).toEqual([]);
  });

  test.each([
    ['a secret among the plain settings', (v: Values) => (v.config.DATABASE_URL = 'postgres://dirsync:pw@db/dirsync'), '/config'],
    ['a _FILE among the plain settings', (v: Values) => (v.config.REDIS_URL_FILE = '/tmp/redis'), '/config'],
    ['a secret in extraEnv', (v: Values) => (v.worker.extraEnv = { DIRSYNC_SECRET_KEY: 'abc' }), '/worker/extraEnv'],
    ['a setting the chart sets itself', (v: Values) => (v.scheduler.extraEnv = { PORT: '9000' }), '/scheduler/extraEnv'],
    ['the API turned off (the Service and the probes use its port)', (v: Values) => (v.config.DIRSYNC_SCHEDULER_API = 'false'), '/config'],
    ['a setting that is not a string', (v: Values) => (v.config.DIRSYNC_SYNC_SHARDS = 8), '/config/DIRSYNC_SYNC_SHARDS'],
    ['no existing Secret', (v: Values) => (v.secrets.existingSecret = ''), '/secrets/existingSecret'],
    ['no key for DATABASE_URL', (v: Values) => (v.secrets.keys.DATABASE_URL = ''), '/secrets/keys'],
    ['an unknown secret setting', (v: Values) => (v.secrets.keys.DIRSYNC_API_TOKEN = 'token'), '/secrets/keys'],
    ['the trace headers among the plain settings', (v: Values) => (v.config.DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS = 'authorization=Bearer%20t'), '/config'],
    ["the exporter's own header variable in extraEnv", (v: Values) => (v.worker.extraEnv = { OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20t' }), '/worker/extraEnv'],
    ['a port as a string', (v: Values) => (v.scheduler.port = '8080'), '/scheduler/port'],
    ['metrics turned off (the probes and Prometheus need the port)', (v: Values) => (v.metricsPort = 0), '/metricsPort'],
    ['a worker concurrency of 0', (v: Values) => (v.worker.concurrency = 0), '/worker/concurrency'],
    ['a misspelt key', (v: Values) => (v.worker.keda.enable = true), '/worker/keda'],
    ['an unknown top-level key', (v: Values) => (v.replicas = 3), ''],
  ])('refuses %s', (_what, change, path) => {
    const errors = schemaErrors(variant(change));
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.some((e) => e.startsWith(`${path} `))).toBe(true);
  });
});

describe('the templates rendered with the default values', () => {
  let manifests: Manifest[];
  beforeAll(async () => {
    manifests = await render(defaults);
  });

  test('make the expected objects, and only them', () => {
    expect(manifests.map((m) => `${m.apiVersion} ${m.kind}/${m.metadata.name}`).sort()).toEqual(
      [
        'apps/v1 Deployment/prod-dirsync-scheduler',
        'apps/v1 Deployment/prod-dirsync-worker',
        'batch/v1 Job/prod-dirsync-migrate',
        'networking.k8s.io/v1 NetworkPolicy/prod-dirsync-scheduler',
        'networking.k8s.io/v1 NetworkPolicy/prod-dirsync-worker',
        'policy/v1 PodDisruptionBudget/prod-dirsync-scheduler',
        'policy/v1 PodDisruptionBudget/prod-dirsync-worker',
        'v1 Service/prod-dirsync-api',
        'v1 ServiceAccount/prod-dirsync',
      ].sort(),
    );
    for (const m of manifests) {
      expect(m.metadata.labels).toMatchObject({ 'app.kubernetes.io/name': 'dirsync', 'app.kubernetes.io/instance': 'prod', 'app.kubernetes.io/version': chart.appVersion });
    }
  });

  test("selectors match their own component's pods and no other", () => {
    const scheduler = one(manifests, 'Deployment', 'prod-dirsync-scheduler');
    const worker = one(manifests, 'Deployment', 'prod-dirsync-worker');
    const pods = { scheduler: scheduler.spec.template.metadata.labels, worker: worker.spec.template.metadata.labels };
    expect(matches(scheduler.spec.selector.matchLabels, pods.scheduler)).toBe(true);
    expect(matches(worker.spec.selector.matchLabels, pods.worker)).toBe(true);
    const selectors: [string, Record<string, string>, 'scheduler' | 'worker'][] = [
      ['Service/prod-dirsync-api', one(manifests, 'Service', 'prod-dirsync-api').spec.selector, 'scheduler'],
      ['PodDisruptionBudget/scheduler', one(manifests, 'PodDisruptionBudget', 'prod-dirsync-scheduler').spec.selector.matchLabels, 'scheduler'],
      ['PodDisruptionBudget/worker', one(manifests, 'PodDisruptionBudget', 'prod-dirsync-worker').spec.selector.matchLabels, 'worker'],
      ['NetworkPolicy/scheduler', one(manifests, 'NetworkPolicy', 'prod-dirsync-scheduler').spec.podSelector.matchLabels, 'scheduler'],
      ['NetworkPolicy/worker', one(manifests, 'NetworkPolicy', 'prod-dirsync-worker').spec.podSelector.matchLabels, 'worker'],
    ];
    for (const [name, selector, component] of selectors) {
      const other = component === 'scheduler' ? 'worker' : 'scheduler';
      expect({ name, own: matches(selector, pods[component]), other: matches(selector, pods[other]) }).toEqual({ name, own: true, other: false });
    }
    // The API Service exposes the API port only, never /metrics.
    expect(one(manifests, 'Service', 'prod-dirsync-api').spec.ports).toEqual([{ name: 'http', port: 80, targetPort: 'http' }]);
  });

  test('the migration is a pre-install/pre-upgrade hook running `db migrate`', () => {
    const job = one(manifests, 'Job', 'prod-dirsync-migrate');
    expect(job.metadata.annotations).toMatchObject({ 'helm.sh/hook': 'pre-install,pre-upgrade', 'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded' });
    const container = job.spec.template.spec.containers[0];
    expect(container.args).toEqual(['db', 'migrate']);
    expect(job.spec.template.spec.restartPolicy).toBe('Never');
    // Nothing else is a hook: the rest of the release waits for the migration.
    expect(manifests.filter((m) => m.metadata.annotations?.['helm.sh/hook'] !== undefined).map((m) => m.kind)).toEqual(['Job']);
  });

  test('no secret value is inline: secret settings come as <NAME>_FILE from the mounted existing Secret', () => {
    expect(manifests.some((m) => m.kind === 'Secret')).toBe(false);
    for (const { owner, template } of podTemplates(manifests)) {
      const volume = template.spec.volumes.find((v: any) => v.name === 'secrets');
      expect({ owner, secretName: volume.secret.secretName }).toEqual({ owner, secretName: 'dirsync' });
      const mounted = new Map<string, string>(volume.secret.items.map((item: any) => [item.path, item.key]));
      expect(Object.fromEntries(mounted)).toEqual({ DATABASE_URL: 'database-url', REDIS_URL: 'redis-url', DIRSYNC_SECRET_KEY: 'secret-key' });
      for (const container of template.spec.containers) {
        const mount = container.volumeMounts.find((m: any) => m.name === 'secrets');
        expect(mount).toMatchObject({ mountPath: '/var/run/secrets/dirsync', readOnly: true });
        const env: { name: string; value?: string; valueFrom?: any }[] = container.env;
        // Neither a value nor a secretKeyRef: the values never enter the environment.
        expect(env.filter((e) => (secretSettings as readonly string[]).includes(e.name)).map((e) => e.name)).toEqual([]);
        expect(env.filter((e) => e.valueFrom?.secretKeyRef !== undefined)).toEqual([]);
        const files = env.filter((e) => e.name.endsWith('_FILE'));
        expect(files.map((e) => e.name).sort()).toEqual(['DATABASE_URL_FILE', 'DIRSYNC_SECRET_KEY_FILE', 'REDIS_URL_FILE']);
        for (const file of files) expect(file.value).toBe(`/var/run/secrets/dirsync/${file.name.replace(/_FILE$/, '')}`);
      }
    }
    const text = JSON.stringify(manifests);
    expect(text).not.toMatch(/postgres(ql)?:\/\/|rediss?:\/\//);
  });

  test('every environment variable is a dirsync setting, and a pod environment with the files mounted loads', async () => {
    const settings = new Set(Object.keys(configSchema.shape));
    const worker = one(manifests, 'Deployment', 'prod-dirsync-worker').spec.template.spec.containers[0];
    for (const { owner, template } of podTemplates(manifests)) {
      for (const container of template.spec.containers) {
        const unknown = container.env.map((e: { name: string }) => e.name.replace(/_FILE$/, '')).filter((name: string) => !settings.has(name));
        expect({ owner, unknown }).toEqual({ owner, unknown: [] });
      }
    }
    // The Secret's keys as the kubelet would mount them, under a directory of our own.
    const mountDir = join(work, 'secrets');
    await mkdir(mountDir, { recursive: true });
    await writeFile(join(mountDir, 'DATABASE_URL'), 'postgres://dirsync:pw@db.internal:5432/dirsync\n');
    await writeFile(join(mountDir, 'REDIS_URL'), 'rediss://default:pw@redis.internal:6380\n');
    await writeFile(join(mountDir, 'DIRSYNC_SECRET_KEY'), `${Buffer.alloc(32, 1).toString('base64')}\n`);
    const env = Object.fromEntries(
      worker.env.filter((e: any) => e.value !== undefined).map((e: any) => [e.name, e.value.replace('/var/run/secrets/dirsync', mountDir)]),
    );
    const config = loadConfig({ ...env, DIRSYNC_WORKER_ID: 'prod-dirsync-worker-abc' });
    expect(config).toMatchObject({
      DATABASE_URL: 'postgres://dirsync:pw@db.internal:5432/dirsync',
      REDIS_URL: 'rediss://default:pw@redis.internal:6380',
      DIRSYNC_METRICS_PORT: 9464,
      DIRSYNC_WORKER_CONCURRENCY: 2,
      DIRSYNC_QUEUE_PREFIX: 'dirsync',
    });
  });

  test('pods run as non-root with a read-only root file system, no token, and probes on the real health endpoints', async () => {
    // The paths the operations server (and the API) answer.
    const opsServer = await readFile(join(root, 'packages/cli/src/ops-server.ts'), 'utf8');
    expect(opsServer).toContain("path === '/healthz'");
    expect(opsServer).toContain("path === '/readyz'");
    for (const { owner, template } of podTemplates(manifests)) {
      expect({ owner, pod: template.spec.securityContext }).toMatchObject({ owner, pod: { runAsNonRoot: true, runAsUser: 1000 } });
      expect(template.spec.automountServiceAccountToken).toBe(false);
      for (const container of template.spec.containers) {
        expect({ owner, container: container.securityContext }).toEqual({
          owner,
          container: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
        });
        expect(container.resources.requests).toBeDefined();
        expect(container.resources.limits.memory).toBeDefined();
      }
    }
    const probes = (name: string) => {
      const container = one(manifests, 'Deployment', name).spec.template.spec.containers[0];
      const ports = new Map<string, number>(container.ports.map((p: any) => [p.name, p.containerPort]));
      return {
        ports: Object.fromEntries(ports),
        readiness: [container.readinessProbe.httpGet.path, ports.get(container.readinessProbe.httpGet.port)],
        liveness: [container.livenessProbe.httpGet.path, ports.get(container.livenessProbe.httpGet.port)],
        env: Object.fromEntries(container.env.filter((e: any) => e.value !== undefined).map((e: any) => [e.name, e.value])),
      };
    };
    const scheduler = probes('prod-dirsync-scheduler');
    expect(scheduler).toMatchObject({ ports: { http: 8080, metrics: 9464 }, readiness: ['/readyz', 8080], liveness: ['/healthz', 8080] });
    expect(scheduler.env).toMatchObject({ PORT: '8080', DIRSYNC_METRICS_PORT: '9464' });
    const worker = probes('prod-dirsync-worker');
    expect(worker).toMatchObject({ ports: { metrics: 9464 }, readiness: ['/readyz', 9464], liveness: ['/healthz', 9464] });
    expect(Object.keys(worker.ports)).toEqual(['metrics']);
  });

  test('NetworkPolicy: only Prometheus reaches workers, on the metrics port; workers may connect out; the API port is open', () => {
    const prometheus = { namespaceSelector: defaults.networkPolicy.prometheus.namespaceSelector, podSelector: defaults.networkPolicy.prometheus.podSelector };
    const worker = one(manifests, 'NetworkPolicy', 'prod-dirsync-worker').spec;
    expect(worker.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(worker.ingress).toEqual([{ from: [prometheus], ports: [{ port: 'metrics', protocol: 'TCP' }] }]);
    expect(worker.egress).toEqual([{}]);
    const scheduler = one(manifests, 'NetworkPolicy', 'prod-dirsync-scheduler').spec;
    expect(scheduler.policyTypes).toEqual(['Ingress']);
    expect(scheduler.ingress).toEqual([
      { ports: [{ port: 'http', protocol: 'TCP' }] },
      { from: [prometheus], ports: [{ port: 'metrics', protocol: 'TCP' }] },
    ]);
  });
});

describe("the rendered manifests against the Kubernetes API's models", () => {
  test('every object of the default values and of the variants has only known fields, of the right types, with the required ones', async () => {
    const variants = [
      defaults,
      variant((v) => {
        v.worker.keda.enabled = true;
        v.serviceMonitor.enabled = true;
        v.imagePullSecrets = [{ name: 'registry' }];
        v.scheduler.tolerations = [{ key: 'dedicated', operator: 'Equal', value: 'dirsync', effect: 'NoSchedule' }];
        v.scheduler.nodeSelector = { 'kubernetes.io/os': 'linux' };
      }),
      variant((v) => {
        v.networkPolicy.apiFrom = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } }];
        v.networkPolicy.workerEgress = [{ to: [{ ipBlock: { cidr: '10.20.0.0/16' } }], ports: [{ port: 636, protocol: 'TCP' }] }];
        v.secrets.keys.DIRSYNC_OIDC_CLIENT_SECRET = 'oidc-client-secret';
        v.scheduler.service.type = 'LoadBalancer';
        v.scheduler.service.annotations = { 'service.beta.kubernetes.io/aws-load-balancer-internal': 'true' };
      }),
    ];
    for (const values of variants) {
      const result = await kubernetesCheck(await render(values));
      expect(result.problems).toEqual([]);
      expect(result.checked.length).toBeGreaterThanOrEqual(9);
      // Custom resources have no model here: KEDA's and the Prometheus Operator's CRDs are not checked.
      expect(result.skipped.every((kind) => ['keda.sh/v1alpha1 ScaledObject', 'monitoring.coreos.com/v1 ServiceMonitor'].includes(kind))).toBe(true);
    }
  });

  test('the check finds a misspelt field, a wrong type and a missing required field', async () => {
    const manifests = await render(defaults);
    const broken = structuredClone(one(manifests, 'Deployment', 'prod-dirsync-worker'));
    broken.spec.template.spec.containers[0].imagePullPolice = 'Always';
    broken.spec.template.spec.containers[0].ports[0].containerPort = '9464';
    delete broken.spec.selector;
    const result = await kubernetesCheck([broken]);
    expect(result.problems.sort()).toEqual(
      [
        'Deployment/prod-dirsync-worker.spec.template.spec.containers[0].imagePullPolice: not a field of V1Container',
        "Deployment/prod-dirsync-worker.spec.template.spec.containers[0].ports[0].containerPort: expected int, got str '9464'",
        'Deployment/prod-dirsync-worker.spec: Invalid value for `selector`, must not be `None`',
      ].sort(),
    );
  });
});

describe('the templates rendered with variants', () => {
  test('KEDA: a ScaledObject drives the worker Deployment, which then sets no replica count', async () => {
    const manifests = await render(variant((v) => (v.worker.keda.enabled = true)));
    const scaled = one(manifests, 'ScaledObject', 'prod-dirsync-worker');
    expect(scaled.apiVersion).toBe('keda.sh/v1alpha1');
    expect(scaled.spec.scaleTargetRef).toEqual({ name: 'prod-dirsync-worker' });
    expect(scaled.spec).toMatchObject({ minReplicaCount: 1, maxReplicaCount: 20 });
    // Scoped to the release's namespace (no ServiceMonitor: the scrape configuration is the cluster's).
    expect(scaled.spec.triggers[0].metadata.query).toBe('sum(max by (shard, state) (dirsync_sync_shard_jobs{namespace="dirsync",state=~"waiting|prioritized"}))');
    expect(one(manifests, 'Deployment', 'prod-dirsync-worker').spec.replicas).toBeUndefined();
    expect(one(manifests, 'Deployment', 'prod-dirsync-scheduler').spec.replicas).toBe(2);
  });

  test("KEDA: the query names the release's namespace, its metrics Service with the ServiceMonitor, and the extra matchers", async () => {
    const query = async (change: (values: Values) => void, release: string, namespace: string) =>
      one(await render(variant((v) => ((v.worker.keda.enabled = true), change(v))), release, namespace), 'ScaledObject', `${release}-dirsync-worker`).spec.triggers[0].metadata.query as string;
    const monitored = await render(variant((v) => ((v.worker.keda.enabled = true), (v.serviceMonitor.enabled = true))), 'staging', 'sync-staging');
    const service = one(monitored, 'Service', 'staging-dirsync-metrics');
    expect(one(monitored, 'ScaledObject', 'staging-dirsync-worker').spec.triggers[0].metadata.query).toBe(
      `sum(max by (shard, state) (dirsync_sync_shard_jobs{namespace="sync-staging",service="${service.metadata.name}",state=~"waiting|prioritized"}))`,
    );
    expect(await query((v) => (v.worker.keda.extraMatchers = { job: 'dirsync-prod', cluster: 'eu-1' }), 'prod', 'dirsync')).toBe(
      'sum(max by (shard, state) (dirsync_sync_shard_jobs{namespace="dirsync",cluster="eu-1",job="dirsync-prod",state=~"waiting|prioritized"}))',
    );
    for (const [what, matchers] of [['a quote in a value', { job: 'a"b' }], ['a backslash', { job: 'a\\b' }], ['the namespace overridden', { namespace: 'other' }], ['an invalid label', { 'app.kubernetes.io/name': 'dirsync' }]] as const) {
      expect({ what, refused: schemaErrors(variant((v) => (v.worker.keda.extraMatchers = matchers))).length > 0 }).toEqual({ what, refused: true });
    }
  });

  test("KEDA: Prometheus evaluates the release's query to its own waiting syncs, never another release's on the same server", async () => {
    const queryOf = async (release: string, namespace: string, serviceMonitor: boolean) =>
      one(await render(variant((v) => ((v.worker.keda.enabled = true), (v.serviceMonitor.enabled = serviceMonitor))), release, namespace), 'ScaledObject', `${release}-dirsync-worker`).spec.triggers[0]
        .metadata.query as string;
    // Two scheduler replicas per release report the same counts; a second release shares the
    // namespace, a third has the same release name in another namespace.
    const series: [Record<string, string>, number][] = [];
    const add = (namespace: string, service: string, counts: Record<string, number>) => {
      for (const pod of ['a', 'b']) {
        for (const [key, value] of Object.entries(counts)) {
          const [shard, state] = key.split('/') as [string, string];
          series.push([{ namespace, service, pod: `${service}-${pod}`, shard, state }, value]);
        }
      }
    };
    add('dirsync', 'prod-dirsync-metrics', { '0/waiting': 3, '0/prioritized': 2, '1/prioritized': 1, '1/active': 7 });
    add('dirsync', 'staging-dirsync-metrics', { '0/waiting': 100, '1/prioritized': 200 });
    add('elsewhere', 'prod-dirsync-metrics', { '0/prioritized': 1000 });
    const tests = {
      rule_files: [],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: series.map(([labels, value]) => ({
            series: `dirsync_sync_shard_jobs{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')}}`,
            values: `${value}x5`,
          })),
          promql_expr_test: [
            { expr: await queryOf('prod', 'dirsync', true), eval_time: '2m', exp_samples: [{ labels: '{}', value: 6 }] },
            { expr: await queryOf('staging', 'dirsync', true), eval_time: '2m', exp_samples: [{ labels: '{}', value: 300 }] },
            { expr: await queryOf('prod', 'elsewhere', false), eval_time: '2m', exp_samples: [{ labels: '{}', value: 1000 }] },
          ],
        },
      ],
    };
    const file = join(work, 'keda-query.test.yaml');
    await writeFile(file, JSON.stringify(tests));
    // promtool comes with Debian's prometheus package (scripts/bootstrap.sh), as for the alerting rules.
    const { stdout } = await execFileAsync('promtool', ['test', 'rules', file]);
    expect(stdout).toMatch(/SUCCESS/);
  });

  test('ServiceMonitor: scrapes the metrics port of both components through a headless Service', async () => {
    const manifests = await render(variant((v) => {
      v.serviceMonitor.enabled = true;
      v.serviceMonitor.labels = { release: 'kube-prometheus-stack' };
    }));
    const service = one(manifests, 'Service', 'prod-dirsync-metrics');
    const monitor = one(manifests, 'ServiceMonitor', 'prod-dirsync');
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(monitor.metadata.labels).toMatchObject({ release: 'kube-prometheus-stack' });
    expect(matches(monitor.spec.selector.matchLabels, service.metadata.labels)).toBe(true);
    expect(matches(monitor.spec.selector.matchLabels, one(manifests, 'Service', 'prod-dirsync-api').metadata.labels)).toBe(false);
    expect(service.spec.clusterIP).toBe('None');
    expect(service.spec.ports).toEqual([{ name: 'metrics', port: 9464, targetPort: 'metrics' }]);
    expect(monitor.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '30s', scrapeTimeout: '10s' }]);
    for (const name of ['prod-dirsync-scheduler', 'prod-dirsync-worker']) {
      expect(matches(service.spec.selector, one(manifests, 'Deployment', name).spec.template.metadata.labels)).toBe(true);
    }
  });

  test('every secret setting has a key in secrets.keys and is refused under config and extraEnv', () => {
    expect(Object.keys(schema.properties.secrets.properties.keys.properties).sort()).toEqual([...secretSettings].sort());
    for (const name of secretSettings) {
      for (const place of ['config', 'scheduler', 'worker'] as const) {
        const errors = schemaErrors(variant((v) => (place === 'config' ? (v.config[name] = 'x') : (v[place].extraEnv = { [name]: 'x' }))));
        expect({ name, place, refused: errors.length > 0 }).toEqual({ name, place, refused: true });
      }
    }
  });

  test('the trace headers come from the Secret as DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS_FILE, and a worker loads them', async () => {
    const manifests = await render(variant((v) => {
      v.secrets.keys.DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS = 'otlp-headers';
      v.config.DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT = 'https://otel-collector.monitoring:4318';
    }));
    const worker = one(manifests, 'Deployment', 'prod-dirsync-worker').spec.template.spec;
    expect(worker.volumes[0].secret.items).toContainEqual({ key: 'otlp-headers', path: 'DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS' });
    const env = worker.containers[0].env as { name: string; value?: string }[];
    expect(env).toContainEqual({ name: 'DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS_FILE', value: '/var/run/secrets/dirsync/DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS' });
    expect(env.map((e) => e.name)).not.toContain('DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS');

    const mountDir = join(work, 'otlp-secrets');
    await mkdir(mountDir, { recursive: true });
    for (const [file, content] of [['DATABASE_URL', 'postgres://dirsync:pw@db.internal:5432/dirsync'], ['REDIS_URL', 'redis://redis.internal:6379'], ['DIRSYNC_SECRET_KEY', Buffer.alloc(32, 1).toString('base64')], ['DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS', 'authorization=Bearer%20collector-token']]) {
      await writeFile(join(mountDir, file!), `${content!}\n`);
    }
    const config = loadConfig({ ...Object.fromEntries(env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!.replace('/var/run/secrets/dirsync', mountDir)])), DIRSYNC_WORKER_ID: 'w' });
    expect(config).toMatchObject({ DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel-collector.monitoring:4318', DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS: { authorization: 'Bearer collector-token' } });
  });

  test('network policies off, API peers listed, optional secret keys and per-component settings', async () => {
    const manifests = await render(variant((v) => {
      v.networkPolicy.enabled = false;
      v.secrets.keys.DIRSYNC_OIDC_CLIENT_SECRET = 'oidc-client-secret';
      v.worker.extraEnv = { DIRSYNC_WORKER_SHARDS: '0-3' };
      v.migrations.enabled = false;
    }));
    expect(manifests.filter((m) => m.kind === 'NetworkPolicy' || m.kind === 'Job')).toEqual([]);
    const worker = one(manifests, 'Deployment', 'prod-dirsync-worker').spec.template.spec;
    expect(worker.volumes[0].secret.items).toContainEqual({ key: 'oidc-client-secret', path: 'DIRSYNC_OIDC_CLIENT_SECRET' });
    expect(worker.containers[0].env).toContainEqual({ name: 'DIRSYNC_WORKER_SHARDS', value: '0-3' });
    const scheduler = one(manifests, 'Deployment', 'prod-dirsync-scheduler').spec.template.spec.containers[0];
    expect(scheduler.env.map((e: { name: string }) => e.name)).not.toContain('DIRSYNC_WORKER_SHARDS');

    const peers = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } }];
    const limited = await render(variant((v) => (v.networkPolicy.apiFrom = peers)));
    expect(one(limited, 'NetworkPolicy', 'prod-dirsync-scheduler').spec.ingress[0]).toEqual({ ports: [{ port: 'http', protocol: 'TCP' }], from: peers });
  });

  test('the renderer stops on a missing required value and on a function it does not implement', async () => {
    await expect(renderFiles(variant((v) => (v.secrets.existingSecret = '')))).rejects.toThrow(/secrets.existingSecret must name an existing Secret/);
    const other = join(work, 'other-chart');
    await mkdir(join(other, 'templates'), { recursive: true });
    await writeFile(join(other, 'templates', 'secret.yaml'), 'data: {{ "x" | b64enc }}\n');
    await expect(renderFiles(defaults, other)).rejects.toThrow(/function "b64enc" not defined/);
  });
});
