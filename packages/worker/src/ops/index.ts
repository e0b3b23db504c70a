export { createWorkerMetrics, type WorkerMetrics, type WorkerMetricsOptions } from './metrics.ts';
export { createReadinessProbe, type ReadinessCheck, type ReadinessReport } from './readiness.ts';
export { createTracing, otlpTracesUrl, type TraceParent, type Tracing, type TracingOptions } from './tracing.ts';
