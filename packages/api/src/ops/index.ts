export { createServiceMetrics, type ServiceMetrics, type ServiceMetricsOptions } from './metrics.ts';
export { createReadinessProbe, type ReadinessCheck, type ReadinessProbe, type ReadinessReport } from './readiness.ts';
