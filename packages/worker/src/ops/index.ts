export { createWorkerMetrics, type WorkerMetrics, type WorkerMetricsOptions } from './metrics.ts';
export {
  createReadinessProbe,
  startOpsServer,
  type OpsServer,
  type OpsServerOptions,
  type ReadinessCheck,
  type ReadinessReport,
} from './server.ts';
