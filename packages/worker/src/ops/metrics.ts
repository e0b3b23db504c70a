import type { Job, Worker } from 'bullmq';
import { UnrecoverableError } from 'bullmq';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import { type Db, getIntegration } from '@dirsync/db';
import type { SyncJobResult } from '../processor.ts';

/** Prometheus metrics of a worker process. */
export interface WorkerMetrics {
  readonly registry: Registry;
  /** Records the outcome of every sync job `worker` finishes. */
  attach(worker: Worker<unknown, SyncJobResult>): void;
}

/** Options of {@link createWorkerMetrics}. */
export interface WorkerMetricsOptions {
  /** Used to label runs with their integration's kind. */
  readonly db: Db;
  /** Default: a new registry with the process metrics (CPU, memory, event loop). */
  readonly registry?: Registry;
}

const objectOutcomes = ['created', 'updated', 'unchanged', 'deleted', 'restored', 'failed'] as const;

// Run durations span seconds (a small delta) to hours (a first full sync of a large directory).
const durationBuckets = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400];

// Kinds rarely change and there are few integrations per worker at a time; the bound only keeps
// a long-lived worker of a large installation from growing without limit.
const maxCachedKinds = 10_000;

/**
 * Creates the worker's metrics: `dirsync_sync_run_duration_seconds` (by kind, mode, status),
 * `dirsync_sync_runs_total` (by kind, mode, status; failed attempts that will be retried count
 * as `retrying`) and `dirsync_sync_objects_total` (by kind and outcome, real runs only).
 */
export function createWorkerMetrics(options: WorkerMetricsOptions): WorkerMetrics {
  const registry = options.registry ?? new Registry();
  if (!options.registry) collectDefaultMetrics({ register: registry });
  const duration = new Histogram({
    name: 'dirsync_sync_run_duration_seconds',
    help: 'Duration of sync runs, from the worker taking the job to the stored report',
    labelNames: ['kind', 'mode', 'status'] as const,
    buckets: durationBuckets,
    registers: [registry],
  });
  const runs = new Counter({
    name: 'dirsync_sync_runs_total',
    help: 'Sync job attempts ended by this worker, by outcome',
    labelNames: ['kind', 'mode', 'status'] as const,
    registers: [registry],
  });
  const objects = new Counter({
    name: 'dirsync_sync_objects_total',
    help: 'Directory objects handled by real (not dry) sync runs, by outcome',
    labelNames: ['kind', 'outcome'] as const,
    registers: [registry],
  });
  const kinds = new Map<string, string>();

  async function kindOf(integrationId: string | undefined): Promise<string> {
    if (integrationId === undefined) return 'unknown';
    const cached = kinds.get(integrationId);
    if (cached !== undefined) return cached;
    const integration = await getIntegration(options.db, integrationId).catch(() => undefined);
    if (!integration) return 'unknown';
    if (kinds.size >= maxCachedKinds) kinds.clear();
    kinds.set(integrationId, integration.kind);
    return integration.kind;
  }

  function seconds(job: Job): number | undefined {
    if (job.processedOn === undefined) return undefined;
    return Math.max(0, ((job.finishedOn ?? Date.now()) - job.processedOn) / 1000);
  }

  function dataOf(job: Job): { integrationId?: string; mode?: string; dryRun?: boolean } {
    return typeof job.data === 'object' && job.data !== null ? (job.data as { integrationId?: string; mode?: string; dryRun?: boolean }) : {};
  }

  async function completed(job: Job, result: SyncJobResult): Promise<void> {
    const kind = await kindOf(result.integrationId);
    const labels = { kind, mode: result.mode, status: result.status };
    runs.inc(labels);
    const took = seconds(job);
    if (took !== undefined) duration.observe(labels, took);
    if (dataOf(job).dryRun === true) return;
    for (const outcome of objectOutcomes) if (result[outcome] > 0) objects.inc({ kind, outcome }, result[outcome]);
  }

  async function failed(job: Job, error: Error): Promise<void> {
    const data = dataOf(job);
    const kind = await kindOf(data.integrationId);
    const final = error instanceof UnrecoverableError || error.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
    const labels = { kind, mode: data.mode ?? 'unknown', status: final ? 'failed' : 'retrying' };
    runs.inc(labels);
    const took = seconds(job);
    if (took !== undefined && final) duration.observe(labels, took);
  }

  return {
    registry,
    attach(worker) {
      worker.on('completed', (job, result) => void completed(job, result));
      worker.on('failed', (job, error) => {
        if (job) void failed(job, error);
      });
    },
  };
}
