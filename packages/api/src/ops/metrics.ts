import { CronExpressionParser } from 'cron-parser';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { countActionsNeeded, countActiveRuns, readConnectorGauges, readIntegrationGauges, type ConnectorGaugeRow, type Db, type IntegrationGaugeRow } from '@dirsync/db';
import { createQueueClient, type RedisConnection } from '@dirsync/jobs';

/** Options of {@link createServiceMetrics}. */
export interface ServiceMetricsOptions {
  readonly db: Db;
  readonly connection: RedisConnection;
  readonly prefix?: string;
  /** Default: a new registry with the process metrics. */
  readonly registry?: Registry;
  readonly onError?: (error: Error) => void;
  /**
   * Whether to register the installation-wide series (queues, integrations, runs, connectors,
   * actions needed). They are read from PostgreSQL and Redis, so every process would report the
   * same values: one process of the installation exporting them is enough (default true).
   * Without them the registry has the process metrics only.
   */
  readonly installationWide?: boolean;
}

/** Metrics of the scheduler / API process, read from Redis and Postgres at scrape time. */
export interface ServiceMetrics {
  readonly registry: Registry;
  close(): Promise<void>;
}

const queueStates = ['waiting', 'prioritized', 'active', 'delayed', 'failed'] as const;

/**
 * Registers the installation-wide gauges, all computed when Prometheus scrapes (so any number of
 * replicas report the same values and nothing drifts): queue job counts by queue and state; per
 * integration the time of its last successful sync, its status and the age of its stored secret;
 * integrations by kind and status; runs queued and running; per Entra connector the age and
 * remaining validity of its current certificate and the seconds until its next rotation; the
 * actions needed by kind.
 */
export function createServiceMetrics(options: ServiceMetricsOptions): ServiceMetrics {
  const registry = options.registry ?? new Registry();
  if (!options.registry) collectDefaultMetrics({ register: registry });
  const { db } = options;
  if (options.installationWide === false) return { registry, close: async () => {} };
  // Every queue of the installation: each sync shard is a queue label of its own.
  const client = createQueueClient({ connection: options.connection, prefix: options.prefix, onError: options.onError });
  const queues = client.allQueues();

  new Gauge({
    name: 'dirsync_queue_jobs',
    help: 'Jobs in each BullMQ queue by state',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const counts = await Promise.all(queues.map(async (queue) => [queue.name, await queue.getJobCounts(...queueStates)] as const));
      for (const [queue, byState] of counts) for (const state of queueStates) this.set({ queue, state }, byState[state] ?? 0);
    },
  });

  // The same counts of the sync queue by shard number, which stays the same whatever the mode
  // names the queues: what an autoscaler of the workers of some shards selects on.
  const syncQueues = client.syncQueues();
  new Gauge({
    name: 'dirsync_sync_shard_jobs',
    help: 'Sync jobs in each shard of the sync queue by state (waiting syncs are in "waiting" and "prioritized")',
    labelNames: ['shard', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const counts = await Promise.all(syncQueues.map((queue) => queue.getJobCounts(...queueStates)));
      for (const [shard, byState] of counts.entries()) for (const state of queueStates) this.set({ shard: String(shard), state }, byState[state] ?? 0);
    },
  });

  // One query feeds the per-integration gauges; each gauge's collect awaits the same promise.
  let integrations: Promise<IntegrationGaugeRow[]> | undefined;
  const integrationRows = () => {
    integrations ??= readIntegrationGauges(db).finally(() => {
      // Fresh data for the next scrape.
      setImmediate(() => (integrations = undefined));
    });
    return integrations;
  };

  new Gauge({
    name: 'dirsync_integration_last_success_timestamp_seconds',
    help: 'Unix time of the last successful sync of each enabled integration (absent until one succeeds)',
    labelNames: ['integration_id', 'account_id', 'kind'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const row of await integrationRows()) {
        if (row.enabled && row.last_success !== null) this.set({ integration_id: row.id, account_id: row.account_id, kind: row.kind }, row.last_success);
      }
    },
  });

  // A state set: 1 on the integration's current status (that of its last run, `new` before one,
  // `needs_consent`), so an alert selects `status="failed"` per integration.
  new Gauge({
    name: 'dirsync_integration_status',
    help: 'Status of each enabled integration: 1 on its current status (succeeded, failed, blocked, dry_run, new, needs_consent)',
    labelNames: ['integration_id', 'account_id', 'kind', 'status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const row of await integrationRows()) {
        if (row.enabled) this.set({ integration_id: row.id, account_id: row.account_id, kind: row.kind, status: row.status }, 1);
      }
    },
  });

  new Gauge({
    name: 'dirsync_credential_age_seconds',
    help: "Age of each integration's stored secret (service-account password or app secret)",
    labelNames: ['integration_id', 'account_id', 'kind'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const row of await integrationRows()) {
        if (row.secret_age !== null) this.set({ integration_id: row.id, account_id: row.account_id, kind: row.kind }, row.secret_age);
      }
    },
  });

  new Gauge({
    name: 'dirsync_integrations',
    help: 'Integrations by kind, status and whether they are enabled',
    labelNames: ['kind', 'status', 'enabled'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const row of await integrationRows()) this.inc({ kind: row.kind, status: row.status, enabled: String(row.enabled) });
    },
  });

  new Gauge({
    name: 'dirsync_runs',
    help: 'Sync runs waiting or running now, by status',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const rows = await countActiveRuns(db);
      for (const row of rows) this.set({ status: row.status }, row.n);
    },
  });

  const connectorLabels = ['connector'] as const;
  let connectors: Promise<ConnectorGaugeRow[]> | undefined;
  const connectorRows = () => {
    connectors ??= readConnectorGauges(db).finally(() => {
      setImmediate(() => (connectors = undefined));
    });
    return connectors;
  };
  new Gauge({
    name: 'dirsync_connector_credential_age_seconds',
    help: "Age of each connector's current certificate",
    labelNames: connectorLabels,
    registers: [registry],
    async collect() {
      this.reset();
      for (const row of await connectorRows()) if (row.credential_age !== null) this.set({ connector: row.name }, row.credential_age);
    },
  });
  new Gauge({
    name: 'dirsync_connector_credential_expires_in_seconds',
    help: "Seconds until each connector's current certificate expires",
    labelNames: connectorLabels,
    registers: [registry],
    async collect() {
      this.reset();
      for (const row of await connectorRows()) if (row.expires_in !== null) this.set({ connector: row.name }, row.expires_in);
    },
  });
  new Gauge({
    name: 'dirsync_connector_next_rotation_seconds',
    help: "Seconds until each connector's next scheduled certificate rotation",
    labelNames: connectorLabels,
    registers: [registry],
    async collect() {
      this.reset();
      const now = new Date();
      for (const row of await connectorRows()) {
        try {
          const next = CronExpressionParser.parse(row.rotation_cron, { currentDate: now, tz: 'UTC' }).next().toDate();
          this.set({ connector: row.name }, (next.getTime() - now.getTime()) / 1000);
        } catch {
          // An invalid stored cron is the rotation scheduler's to report; no value is better than a wrong one.
        }
      }
    },
  });

  new Gauge({
    name: 'dirsync_actions_needed',
    help: 'What administrators must do, by kind (as `dirsync actions-needed` lists it): grant_consent, rotation_failed, certificate_expiring, …',
    labelNames: ['kind'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const [kind, n] of Object.entries(await countActionsNeeded(db))) this.set({ kind }, n);
    },
  });

  return {
    registry,
    async close() {
      await client.close();
    },
  };
}
