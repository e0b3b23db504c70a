import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { parse, parseAllDocuments } from 'yaml';
import { createKeyRing } from '@dirsync/db';
import { createTestDatabase, createTestQueuePrefix, testRedisUrl, waitFor } from '@dirsync/testkit';

// Docker cannot run here: these tests check what the docker/ files promise with the same
// programs outside a container (the image's entrypoint command, the demo directory's slapd).

const root = fileURLToPath(new URL('../../../', import.meta.url));
const dockerDir = join(root, 'docker');
const execFileAsync = promisify(execFile);

interface ComposeService {
  image?: string;
  build?: string | { context: string; dockerfile: string };
  command?: string[] | string;
  entrypoint?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  deploy?: { replicas?: number };
  depends_on?: Record<string, { condition: string }>;
}

async function compose(): Promise<{ services: Record<string, ComposeService> }> {
  return parse(await readFile(join(dockerDir, 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, ComposeService> };
}

/** `${NAME:-default}` as compose would read it with NAME unset. */
function interpolate(value: string): string {
  return value.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
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

/** ENTRYPOINT of the Dockerfile's last stage, as an argv. */
async function entrypoint(): Promise<string[]> {
  const dockerfile = await readFile(join(dockerDir, 'Dockerfile'), 'utf8');
  const lines = dockerfile.split('\n').filter((line) => line.startsWith('ENTRYPOINT '));
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!.slice('ENTRYPOINT '.length)) as string[];
}

test('the compose file runs Postgres behind PgBouncer, Redis, the demo directory, one scheduler with the API and two workers', async () => {
  const { services } = await compose();
  expect(Object.keys(services).sort()).toEqual(['demo-setup', 'ldap', 'migrate', 'pgbouncer', 'postgres', 'redis', 'scheduler', 'worker']);
  const dirsync = ['migrate', 'demo-setup', 'scheduler', 'worker'].map((name) => services[name]!);
  for (const service of dirsync) {
    expect(service.build).toEqual({ context: '..', dockerfile: 'docker/Dockerfile' });
    // Migrations take a session-level view of the database: they go to PostgreSQL itself; every
    // other process goes through PgBouncer in transaction mode, without prepared statements.
    const database = new URL(interpolate(service.environment!['DATABASE_URL']!));
    if (service === services['migrate']) {
      expect(database.hostname).toBe('postgres');
    } else {
      expect(database.hostname).toBe('pgbouncer');
      expect(database.searchParams.get('prepare')).toBe('false');
      expect(service.environment!['DIRSYNC_DB_PGBOUNCER']).toBe('true');
    }
    expect(new URL(service.environment!['REDIS_URL']!).hostname).toBe('redis');
    // The demo key is a usable key (32 bytes of base64).
    expect(() => createKeyRing({ current: interpolate(service.environment!['DIRSYNC_SECRET_KEY']!) })).not.toThrow();
  }
  expect(services['migrate']?.command).toEqual(['db', 'migrate']);
  expect(services['scheduler']).toMatchObject({ command: ['scheduler'], ports: ['8080:8080'], environment: expect.objectContaining({ PORT: '8080' }) });
  expect(services['worker']).toMatchObject({ command: ['worker'], deploy: { replicas: 2 } });
  expect(services['scheduler']?.depends_on).toEqual({ migrate: { condition: 'service_completed_successfully' } });
  const setup = String(services['demo-setup']?.command);
  expect(setup).toMatch(/integrations add --account demo --kind ldap/);
  expect(setup).toMatch(/api-keys create --account demo/);
  expect(services['ldap']?.build).toBe('./openldap');
});

test('the Dockerfile is multi-stage on node:24-slim, installs production dependencies only and runs as a non-root user', async () => {
  const dockerfile = await readFile(join(dockerDir, 'Dockerfile'), 'utf8');
  const stages = dockerfile.split('\n').filter((line) => line.startsWith('FROM '));
  expect(stages).toEqual(['FROM node:24-slim AS deps', 'FROM node:24-slim AS console', 'FROM node:24-slim AS runtime']);
  expect(dockerfile).toMatch(/pnpm install --frozen-lockfile --prod/);
  // The console's pages are built in their own stage; only the built files reach the image.
  expect(dockerfile).toMatch(/pnpm --filter @dirsync\/console build/);
  expect(dockerfile).toContain('COPY --from=console --chown=root:root /app/packages/console/dist ./packages/console/dist');
  const runtime = dockerfile.slice(dockerfile.indexOf('AS runtime'));
  // Its processes run as `node`: root only builds (the compile cache's ownership).
  expect(runtime.match(/^USER \S+$/gm)?.at(-1)).toBe('USER node');
  // Which packages' manifests and sources the stages copy (the command line's production
  // closure, no development package) is checked by packages/devtools/test/image-contents.test.ts.
  expect(await readFile(join(dockerDir, 'Dockerfile.dockerignore'), 'utf8')).toMatch(/^\*\*\/node_modules$/m);
});

test("the image's entrypoint runs the compose commands with the compose environment", async () => {
  const { services } = await compose();
  const argv = await entrypoint();
  expect(argv.slice(0, 1)).toEqual(['node']);
  const database = await createTestDatabase('deployment');
  const prefix = createTestQueuePrefix('deployment');
  const port = await freePort();
  const metricsPort = await freePort();
  const environment = (service: ComposeService): Record<string, string> => {
    const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/tmp' };
    for (const [name, value] of Object.entries(service.environment ?? {})) env[name] = interpolate(String(value));
    // The compose network's hosts are this machine's servers here.
    return { ...env, DATABASE_URL: database.url, REDIS_URL: testRedisUrl, DIRSYNC_QUEUE_PREFIX: prefix.prefix, PORT: String(port), DIRSYNC_METRICS_PORT: String(metricsPort), DIRSYNC_API_HOST: '127.0.0.1' };
  };
  try {
    const migrate = await execFileAsync(argv[0]!, [...argv.slice(1), ...(services['migrate']!.command as string[])], { cwd: root, env: environment(services['migrate']!) });
    expect(migrate.stdout).toMatch(/database is up to date/);

    const scheduler = spawn(argv[0]!, [...argv.slice(1), ...(services['scheduler']!.command as string[])], { cwd: root, env: environment(services['scheduler']!), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    scheduler.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
    scheduler.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
    const closed = once(scheduler, 'close');
    try {
      const ready = await waitFor(
        async () => {
          if (scheduler.exitCode !== null) throw new Error(`the scheduler exited: ${output}`);
          const response = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
          return response?.status === 200 ? response : undefined;
        },
        { timeoutMs: 30_000, what: 'the scheduler to be ready' },
      );
      expect(await ready.json()).toMatchObject({ ready: true });
      expect((await fetch(`http://127.0.0.1:${port}/v1/openapi.json`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
      expect(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()).toMatch(/dirsync_queue_jobs/);
      expect(output).toMatch(/"scheduler started"/);
    } finally {
      scheduler.kill('SIGTERM');
      await closed;
    }
    expect(scheduler.exitCode).toBe(0);
    expect(output).toMatch(/"scheduler stopped"/);
  } finally {
    await prefix.cleanup();
    await database.drop();
  }
});

test('the Kubernetes example scales the worker deployment with KEDA on the sync queue', async () => {
  const documents = parseAllDocuments(await readFile(join(dockerDir, 'k8s', 'worker.yaml'), 'utf8')).map((doc) => doc.toJSON() as Record<string, any>);
  const deployment = documents.find((doc) => doc['kind'] === 'Deployment')!;
  const scaledObject = documents.find((doc) => doc['kind'] === 'ScaledObject')!;
  expect(scaledObject['spec'].scaleTargetRef.name).toBe(deployment['metadata'].name);
  const container = deployment['spec'].template.spec.containers[0];
  expect(container.args).toEqual(['worker']);
  const env = Object.fromEntries((container.env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value]));
  const trigger = scaledObject['spec'].triggers[0];
  // Waiting syncs carry a priority (a sorted set, not a list): counted by the scheduler's gauge.
  expect(trigger.type).toBe('prometheus');
  // This installation's series only: another one on the same Prometheus is in another namespace.
  expect(trigger.metadata.query).toBe('sum(max by (shard, state) (dirsync_sync_shard_jobs{namespace="dirsync",state=~"waiting|prioritized"}))');
  expect(container.ports[0].containerPort).toBe(Number(env['DIRSYNC_METRICS_PORT']));
  expect(container.readinessProbe.httpGet.path).toBe('/readyz');
  expect(container.livenessProbe.httpGet.path).toBe('/healthz');
  expect(deployment['spec'].template.spec.securityContext.runAsNonRoot).toBe(true);
});

test('metrics are never published on the public API port: compose keeps them in its network, the Kubernetes Service exposes only http', async () => {
  const { services } = await compose();
  const scheduler = services['scheduler']!;
  const metricsPort = scheduler.environment!['DIRSYNC_METRICS_PORT']!;
  expect(Number(metricsPort)).toBeGreaterThan(0);
  expect(metricsPort).not.toBe(scheduler.environment!['PORT']);
  for (const service of Object.values(services)) for (const published of service.ports ?? []) expect(published).not.toContain(metricsPort);

  const documents = parseAllDocuments(await readFile(join(dockerDir, 'k8s', 'scheduler.yaml'), 'utf8')).map((doc) => doc.toJSON() as Record<string, any>);
  const deployment = documents.find((doc) => doc['kind'] === 'Deployment')!;
  const service = documents.find((doc) => doc['kind'] === 'Service')!;
  const container = deployment['spec'].template.spec.containers[0];
  expect(container.args).toEqual(['scheduler']);
  const env = Object.fromEntries((container.env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value]));
  const ports = Object.fromEntries((container.ports as Array<{ name: string; containerPort: number }>).map((p) => [p.name, p.containerPort]));
  expect(ports).toEqual({ http: Number(env['PORT']), metrics: Number(env['DIRSYNC_METRICS_PORT']) });
  expect(deployment['spec'].template.metadata.annotations['prometheus.io/port']).toBe(env['DIRSYNC_METRICS_PORT']);
  expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
  expect(service['spec'].selector).toEqual(deployment['spec'].selector.matchLabels);
  expect((service['spec'].ports as Array<{ targetPort: string }>).map((p) => p.targetPort)).toEqual(['http']);
  expect(deployment['spec'].template.spec.securityContext.runAsNonRoot).toBe(true);
});

test('the demo directory loads into slapd and its reader account reads people and groups, not passwords', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dirsync-demo-ldap-'));
  const port = await freePort();
  const conf = (await readFile(join(dockerDir, 'openldap', 'slapd.conf'), 'utf8'))
    .replace('directory /var/lib/ldap', `directory ${dir}`)
    .replace('pidfile /run/slapd/slapd.pid', `pidfile ${dir}/slapd.pid`);
  await writeFile(join(dir, 'slapd.conf'), conf);
  await execFileAsync('slapadd', ['-f', join(dir, 'slapd.conf'), '-l', join(dockerDir, 'openldap', 'seed.ldif')]);
  const slapd = spawn('slapd', ['-d', '0', '-h', `ldap://127.0.0.1:${port}/`, '-f', join(dir, 'slapd.conf')], { stdio: 'ignore' });
  const closed = once(slapd, 'close');
  try {
    const search = async (base: string, filter: string, attributes: string[]) =>
      (await execFileAsync('ldapsearch', ['-x', '-LLL', '-H', `ldap://127.0.0.1:${port}`, '-D', 'cn=reader,dc=example,dc=org', '-w', 'reader-demo-password', '-b', base, filter, ...attributes])).stdout;
    const people = await waitFor(() => search('ou=people,dc=example,dc=org', '(objectClass=inetOrgPerson)', ['uid', 'userPassword']).catch(() => undefined), { what: 'the demo slapd' });
    expect(people.match(/^dn: /gm)).toHaveLength(12);
    const groups = await search('ou=groups,dc=example,dc=org', '(objectClass=groupOfNames)', ['member']);
    expect(groups.match(/^dn: /gm)).toHaveLength(3);
    expect(await search('dc=example,dc=org', '(userPassword=*)', ['userPassword'])).not.toMatch(/userPassword:/);
  } finally {
    slapd.kill('SIGTERM');
    await closed;
    await rm(dir, { recursive: true, force: true });
  }
});
