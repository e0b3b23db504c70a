import { type Attributes, context, type Span, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import type { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';

/**
 * Sync runs as OpenTelemetry traces: a root span per run attempt (`dirsync.run`) with a child per
 * phase of the pipeline (`dirsync.fetch`, each `dirsync.write` batch under it, `dirsync.members`,
 * `dirsync.sweep`). Off unless an OTLP endpoint is configured: then no tracer exists and the
 * pipeline calls its phases directly, so a disabled installation pays nothing.
 */

/** Options of {@link createTracing}. */
export interface TracingOptions {
  /**
   * OTLP/HTTP base endpoint (`http://collector:4318`); traces go to `<endpoint>/v1/traces`.
   * Undefined: tracing is off.
   */
  readonly endpoint?: string | undefined;
  /** Headers of every export (a collector's token); a secret: never logged. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly serviceName?: string | undefined;
  readonly serviceVersion?: string | undefined;
  /** Exports to this exporter instead of OTLP (tests: the SDK's in-memory exporter). */
  readonly exporter?: SpanExporter | undefined;
  /** Default: a batch processor over the exporter. */
  readonly processor?: SpanProcessor | undefined;
  /**
   * Told when exports fail (a collector refusing the token, unreachable, answering 5xx): the
   * first failure at once, then at most once a minute with the count since. Without it a wrong
   * token loses every trace without a word. The reason is the exporter's status and first line
   * only — never the headers.
   */
  readonly onExportFailure?: ((failure: { readonly reason: string; readonly failedExports: number }) => void) | undefined;
}

/** A process's tracing: the tracer to hand to the worker (undefined when off), and its shutdown. */
export interface Tracing {
  readonly tracer: Tracer | undefined;
  /** Sends what is buffered and stops; a no-op when off. */
  shutdown(): Promise<void>;
}

/** The OTLP/HTTP traces URL of a base endpoint (as `OTEL_EXPORTER_OTLP_ENDPOINT` is meant). */
export function otlpTracesUrl(endpoint: string): string {
  return `${endpoint.replace(/\/+$/, '')}/v1/traces`;
}

type OtlpExporterConfig = NonNullable<ConstructorParameters<typeof OTLPTraceExporter>[0]>;

/**
 * The OTLP/HTTP exporter of `endpoint`, every option given: the exporter falls back to OTEL_*
 * variables for each option it is not given (the traces endpoint, timeout, compression, TLS
 * files), and those are read nowhere but the configuration. The headers it would add from
 * OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_TRACES_HEADERS cannot be turned off here:
 * the configuration refuses both variables.
 */
function otlpExporter(sdk: TracingSdk, endpoint: string, headers: Readonly<Record<string, string>>): SpanExporter {
  return new sdk.OTLPTraceExporter({
    url: otlpTracesUrl(endpoint),
    headers: { ...headers },
    timeoutMillis: 10_000,
    // The enum of otlp-exporter-base, which is not a dependency of its own here.
    compression: 'none' as NonNullable<OtlpExporterConfig['compression']>,
    httpAgentOptions: { keepAlive: true },
  });
}

const failureReportEveryMs = 60_000;

/**
 * `exporter`, reporting failed exports to `report` (the first at once, then once a minute; what
 * is left unreported when it shuts down is reported then).
 */
function reportingFailures(sdk: TracingSdk, exporter: SpanExporter, report: NonNullable<TracingOptions['onExportFailure']>): SpanExporter {
  let failedSinceReport = 0;
  let lastReason = '';
  let lastReportAt = -Infinity;
  return {
    export(spans, resultCallback) {
      exporter.export(spans, (result) => {
        if (result.code !== sdk.ExportResultCode.SUCCESS) {
          failedSinceReport += 1;
          const now = Date.now();
          if (now - lastReportAt >= failureReportEveryMs) {
            const error = result.error;
            const status = error !== undefined && 'code' in error && typeof error.code === 'number' ? `HTTP ${error.code}: ` : '';
            lastReason = `${status}${(error?.message ?? 'export failed').split('\n')[0]?.slice(0, 200) ?? ''}`;
            report({ reason: lastReason, failedExports: failedSinceReport });
            failedSinceReport = 0;
            lastReportAt = now;
          }
        }
        resultCallback(result);
      });
    },
    async shutdown() {
      if (failedSinceReport > 0) report({ reason: lastReason, failedExports: failedSinceReport });
      failedSinceReport = 0;
      await exporter.shutdown();
    },
    ...(exporter.forceFlush === undefined ? {} : { forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve() }),
  };
}

/**
 * The OpenTelemetry SDK, imported only when tracing is on: the exporter, the SDK and what they
 * load took 3.5 MB of every worker's heap (a twentieth of it at rest), traces or not.
 */
async function tracingSdk() {
  const [core, exporter, resources, sdkTrace, conventions] = await Promise.all([
    import('@opentelemetry/core'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  return {
    ExportResultCode: core.ExportResultCode,
    OTLPTraceExporter: exporter.OTLPTraceExporter,
    resourceFromAttributes: resources.resourceFromAttributes,
    BatchSpanProcessor: sdkTrace.BatchSpanProcessor,
    TracerProvider: sdkTrace.TracerProvider,
    ATTR_SERVICE_NAME: conventions.ATTR_SERVICE_NAME,
    ATTR_SERVICE_VERSION: conventions.ATTR_SERVICE_VERSION,
  };
}

type TracingSdk = Awaited<ReturnType<typeof tracingSdk>>;

/** Creates the tracer of a worker process, or none when no endpoint (nor exporter nor processor) is given. */
export async function createTracing(options: TracingOptions): Promise<Tracing> {
  if (options.exporter === undefined && options.endpoint === undefined && options.processor === undefined) {
    return { tracer: undefined, shutdown: async () => undefined };
  }
  const sdk = await tracingSdk();
  const base = options.exporter ?? (options.endpoint === undefined ? undefined : otlpExporter(sdk, options.endpoint, options.headers ?? {}));
  const exporter = base === undefined || options.onExportFailure === undefined ? base : reportingFailures(sdk, base, options.onExportFailure);
  const processor = options.processor ?? new sdk.BatchSpanProcessor({ exporter: exporter as SpanExporter });
  const provider = new sdk.TracerProvider({
    // Built from what dirsync knows, not from OTEL_* variables: the configuration is read in one place.
    resource: sdk.resourceFromAttributes({
      [sdk.ATTR_SERVICE_NAME]: options.serviceName ?? 'dirsync-worker',
      ...(options.serviceVersion === undefined ? {} : { [sdk.ATTR_SERVICE_VERSION]: options.serviceVersion }),
    }),
    spanProcessors: [processor],
  });
  return {
    tracer: provider.getTracer('dirsync'),
    async shutdown() {
      // The last batch's export fails the flush when the collector refuses it; a stopping worker
      // must still stop (the failure is reported through onExportFailure where one is given).
      await provider.shutdown().catch(() => undefined);
    },
  };
}

/** Where a phase span goes: the tracer and the span it is a child of. */
export interface TraceParent {
  readonly tracer: Tracer;
  readonly span: Span;
}

/** Starts a child span of `parent` (a root span when `parent` is a tracer alone). */
export function startSpan(tracer: Tracer, name: string, attributes: Attributes, parent?: Span): Span {
  const ctx = parent === undefined ? context.active() : trace.setSpan(context.active(), parent);
  return tracer.startSpan(name, { attributes }, ctx);
}

/** Marks a span failed with a message (never the error's details: they may name a secret's owner's data). */
export function failSpan(span: Span, message: string, errorType: string): void {
  span.setAttribute('error.type', errorType);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

/**
 * Runs `fn` in a child span of `parent` named `name`, or runs it alone when tracing is off. The
 * span ends when `fn` settles; a throw marks it failed with the error's class.
 */
export async function phase<T>(parent: TraceParent | undefined, name: string, attributes: Attributes, fn: (traced: TraceParent | undefined) => Promise<T>): Promise<T> {
  if (parent === undefined) return fn(undefined);
  const span = startSpan(parent.tracer, name, attributes, parent.span);
  try {
    const result = await fn({ tracer: parent.tracer, span });
    span.setStatus({ code: SpanStatusCode.OK });
    return result;
  } catch (error) {
    const type = error instanceof Error ? error.name : 'Error';
    failSpan(span, type, type);
    throw error;
  } finally {
    span.end();
  }
}
