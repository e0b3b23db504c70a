import { CronExpressionParser } from 'cron-parser';
import { collectDefaultMetrics, Gauge, Registry, type GaugeConfiguration } from 'prom-client';
import { countActionsNeeded, countActiveRuns, readConnectorGauges, readIntegrationGauges, type ConnectorGaugeRow, type Db, type IntegrationGaugeRow } from '@dirsync/db';
import {
  createQueueClient,
  DEFAULT_QUEUE_PREFIX,
  installationMetricsLeaseKey,
  startLeaderElection,
  type LeaderElection,
  type LeaderLeaseTiming,
  type LeaderState,
  type RedisConnection,
} from '@dirsync/jobs';

/** Options of {@link createServiceMetrics}. */
export interface ServiceMetricsOptions {
  readonly db: Db;
  readonly connection: RedisConnection;
  readonly prefix?: string;
  /** Default: a new registry with the process metrics. */
  readonly registry?: Registry;
  readonly onError?: (error: Error) => void;
  /**
   * Whether to export the installation-wide series (queues, integrations, runs, connectors,
   * actions needed). They are read from PostgreSQL and Redis, so every process would report the
   * same values: one process of the installation exporting them is enough.
   * - `'leader'`: this process competes for the installation's metrics lease (in Redis, per
   *   queue prefix) and exports them while it holds it: of all the processes doing so, exactly
   *   one live process exports them at a time;
   * - `true` (default): exported by this process regardless of the others;
   * - `false`: not exported here; the registry has the process metrics only.
   */
  readonly installationWide?: boolean | 'leader';
  /** Timing of the lease in `'leader'` mode (default: 30 s TTL, renewed every 10 s). */
  readonly leaderLease?: Partial<LeaderLeaseTiming> | undefined;
  /** Called when this process starts or stops exporting the series in `'leader'` mode. */
  readonly onLeaderChange?: ((leader: boolean, state: LeaderState) => void) | undefined;
}

/** Metrics of the scheduler / API process, read from Redis and Postgres at scrape time. */
export interface ServiceMetrics {
  readonly registry: Registry;
  /**
   * Settles once this process knows whether it exports the installation-wide series (its first
   * attempt at the lease in `'leader'` mode; at once otherwise), so a first scrape is not
   * missing them only because the answer was on its way. Never rejects.
   */
  readonly ready: Promise<void>;
  /** In `'leader'` mode, where the election stands (for readiness); undefined otherwise. */
  leaderState(): LeaderState | undefined;
  close(): Promise<void>;
}

const queueStates = ['waiting', 'prioritized', 'active', 'delayed', 'failed'] as const;

/**
 * Registers the installation-wide gauges, all computed when Prometheus scrapes (so any number of
 * replicas report the same values and nothing drifts): queue job counts by queue and state; per
 * integration the time of its last successful sync, its status and the age of its stored secret;
 * integrations by kind and status; runs queued and running; per Entra connector the age and
 * remaining validity of its current certificate and the seconds until its next rotation; the
 * actions needed by kind. With `installationWide: 'leader'` they are in the registry only while
 * this process holds the installation's metrics lease, and `dirsync_installation_metrics_leader`
 * says whether it does.
 */
export function createServiceMetrics(options: ServiceMetricsOptions): ServiceMetrics {
  const registry = options.registry ?? new Registry();
  if (!options.registry) collectDefaultMetrics({ register: registry });
  const { db } = options;
  const mode = options.installationWide ?? true;
  if (mode === false) return { registry, ready: Promise.resolve(), leaderState: () => undefined, close: async () => {} };
  // Every queue of the installation: each sync shard is a queue label of its own.
  const client = createQueueClient({ connection: options.connection, prefix: options.prefix, onError: options.onError });
  const queues = client.allQueues();

  // The installation-wide gauges join the registry while this process exports them and leave it
  // when it stops, so a process that does not export them serves none of their names. Each one
  // also checks at collect time: a lease may run out between the change and the scrape.
  const installationGauges: Gauge[] = [];
  let election: LeaderElection | undefined;
  const exporting = () => election === undefined || election.isLeader();
  const syncRegistration = () => {
    const wanted = exporting();
    for (const gauge of installationGauges) {
      const { name } = gauge as unknown as { name: string };
      const registered = registry.getSingleMetric(name) === gauge;
      if (wanted && !registered) registry.registerMetric(gauge);
      else if (!wanted && registered) registry.removeSingleMetric(name);
    }
  };
  function installationGauge<T extends string>(configuration: GaugeConfiguration<T>): void {
    const collect = configuration.collect;
    installationGauges.push(
      new Gauge<T>({
        ...configuration,
        registers: [],
        async collect() {
          if (!exporting()) {
            this.reset();
            return;
          }
          await collect?.call(this);
        },
      }) as unknown as Gauge,
    );
  }

  installationGauge({
    name: 'dirsync_queue_jobs',
    help: 'Jobs in each BullMQ queue by state',
    labelNames: ['queue', 'state'] as const,
    async collect() {
      this.reset();
      const counts = await Promise.all(queues.map(async (queue) => [queue.name, await queue.getJobCounts(...queueStates)] as const));
      for (const [queue, byState] of counts) for (const state of queueStates) this.set({ queue, state }, byState[state] ?? 0);
    },
  });

  // The same counts of the sync queue by shard number, which stays the same whatever the mode
  // names the queues: what an autoscaler of the workers of some shards selects on.
  const syncQueues = client.syncQueues();
  installationGauge({
    name: 'dirsync_sync_shard_jobs',
    help: 'Sync jobs in each shard of the sync queue by state (waiting syncs are in "waiting" and "prioritized")',
    labelNames: ['shard', 'state'] as const,
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

  installationGauge({
    name: 'dirsync_integration_last_success_timestamp_seconds',
    help: 'Unix time of the last successful sync of each enabled integration (absent until one succeeds)',
    labelNames: ['integration_id', 'account_id', 'kind'] as const,
    async collect() {
      this.reset();
      for (const row of await integrationRows()) {
        if (row.enabled && row.last_success !== null) this.set({ integration_id: row.id, account_id: row.account_id, kind: row.kind }, row.last_success);
      }
    },
  });

  // A state set: 1 on the integration's current status (that of its last run, `new` before one,
  // `needs_consent`), so an alert selects `status="failed"` per integration.
  installationGauge({
    name: 'dirsync_integration_status',
    help: 'Status of each enabled integration: 1 on its current status (succeeded, failed, blocked, dry_run, new, needs_consent)',
    labelNames: ['integration_id', 'account_id', 'kind', 'status'] as const,
    async collect() {
      this.reset();
      for (const row of await integrationRows()) {
        if (row.enabled) this.set({ integration_id: row.id, account_id: row.account_id, kind: row.kind, status: row.status }, 1);
      }
    },
  });

  installationGauge({
    name: 'dirsync_credential_age_seconds',
    help: "Age of each integration's stored secret (service-account password or app secret)",
    labelNames: ['integration_id', 'account_id', 'kind'] as const,
    async collect() {
      this.reset();
      for (const row of await integrationRows()) {
        if (row.secret_age !== null) this.set({ integration_id: row.id, account_id: row.account_id, kind: row.kind }, row.secret_age);
      }
    },
  });

  installationGauge({
    name: 'dirsync_integrations',
    help: 'Integrations by kind, status and whether they are enabled',
    labelNames: ['kind', 'status', 'enabled'] as const,
    async collect() {
      this.reset();
      for (const row of await integrationRows()) this.inc({ kind: row.kind, status: row.status, enabled: String(row.enabled) });
    },
  });

  installationGauge({
    name: 'dirsync_runs',
    help: 'Sync runs waiting or running now, by status',
    labelNames: ['status'] as const,
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
  installationGauge({
    name: 'dirsync_connector_credential_age_seconds',
    help: "Age of each connector's current certificate",
    labelNames: connectorLabels,
    async collect() {
      this.reset();
      for (const row of await connectorRows()) if (row.credential_age !== null) this.set({ connector: row.name }, row.credential_age);
    },
  });
  installationGauge({
    name: 'dirsync_connector_credential_expires_in_seconds',
    help: "Seconds until each connector's current certificate expires",
    labelNames: connectorLabels,
    async collect() {
      this.reset();
      for (const row of await connectorRows()) if (row.expires_in !== null) this.set({ connector: row.name }, row.expires_in);
    },
  });
  installationGauge({
    name: 'dirsync_connector_next_rotation_seconds',
    help: "Seconds until each connector's next scheduled certificate rotation",
    labelNames: connectorLabels,
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

  installationGauge({
    name: 'dirsync_actions_needed',
    help: 'What administrators must do, by kind (as `dirsync actions-needed` lists it): grant_consent, rotation_failed, certificate_expiring, …',
    labelNames: ['kind'] as const,
    async collect() {
      this.reset();
      for (const [kind, n] of Object.entries(await countActionsNeeded(db))) this.set({ kind }, n);
    },
  });

  let ready: Promise<void> = Promise.resolve();
  if (mode === 'leader') {
    election = startLeaderElection({
      connection: options.connection,
      key: installationMetricsLeaseKey(options.prefix ?? DEFAULT_QUEUE_PREFIX),
      timing: options.leaderLease,
      onError: options.onError,
      onChange(leader, state) {
        syncRegistration();
        options.onLeaderChange?.(leader, state);
      },
    });
    ready = election.settled;
  }
  syncRegistration();
  const leading = election;
  new Gauge({
    name: 'dirsync_installation_metrics_leader',
    help: "Whether this process exports the installation-wide series now: 1 while it holds the installation's metrics lease (or exports them unconditionally), 0 while another process holds it or Redis cannot be reached",
    registers: [registry],
    collect() {
      this.set(exporting() ? 1 : 0);
    },
  });

  return {
    registry,
    ready,
    leaderState: () => leading?.state(),
    async close() {
      await leading?.close();
      await client.close();
    },
  };
}
