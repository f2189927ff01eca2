import { AsyncLocalStorage } from 'node:async_hooks';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  createNoopMeter,
  defaultTextMapGetter,
  trace,
  type Attributes,
  type Context,
  type Meter,
  type MeterProvider,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import type { Context as KoaContext, Next } from 'koa';
import type { Counter } from 'prom-client';
import type { Tracing, TraceState, TracingDeps } from './tracing.js';
import { UNMATCHED_ROUTE, routeTemplate } from '../middleware/route-template.js';
import type { TracingConfig } from './tracing-config.js';

/** Probes and scrapes every few seconds would bury the requests worth reading. */
const UNTRACED_PATHS = new Set(['/health', '/ready', '/metrics']);

/** Methods the HTTP semantic conventions name; anything else is reported as _OTHER. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

function sampler(config: TracingConfig): Sampler {
  const ratio = new TraceIdRatioBasedSampler(config.ratio);
  switch (config.sampler) {
    case 'always_on': return new AlwaysOnSampler();
    case 'always_off': return new AlwaysOffSampler();
    case 'traceidratio': return ratio;
    case 'parentbased_always_on': return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: ratio });
  }
}

const SPANS_PROCESSED = 'otel.sdk.processor.span.processed';

/**
 * The SDK's batch processor reports its own drops (queue full) and failed exports through an OTel
 * meter; this meter turns exactly that counter into a Prometheus one and ignores the rest.
 */
function droppedSpansMeterProvider(dropped: Counter<'reason'>): MeterProvider {
  const noop = createNoopMeter();
  const processed = {
    add(value: number, attributes?: Attributes) {
      const errorType = attributes?.['error.type'];
      if (errorType !== undefined) dropped.inc({ reason: errorType === 'queue_full' ? 'queue_full' : 'export_failed' }, value);
    },
  };
  const meter = Object.create(noop, {
    createCounter: { value: (name: string, options?: object) => (name === SPANS_PROCESSED ? processed : noop.createCounter(name, options)) },
  }) as Meter;
  return { getMeter: () => meter };
}

function exporter(config: TracingConfig & { endpoint: string }): SpanExporter {
  const options = { url: config.endpoint, timeoutMillis: config.exportRequestTimeoutMs };
  return config.protocol === 'http/json' ? new OtlpJsonExporter(options) : new OtlpProtobufExporter(options);
}

function errorType(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.name : 'Error';
}

/** The OpenTelemetry SDK behind Tracing: see tracing.ts for what each part does and why. */
export function startTracing(config: TracingConfig & { endpoint: string }, deps: TracingDeps): Tracing {
  const provider = new TracerProvider({
    resource: defaultResource().merge(resourceFromAttributes({ ...config.resourceAttributes, 'service.name': config.serviceName })),
    sampler: sampler(config),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: exporter(config),
        maxQueueSize: config.batch.maxQueueSize,
        maxExportBatchSize: config.batch.maxExportBatchSize,
        scheduledDelayMillis: config.batch.scheduledDelayMs,
        exportTimeoutMillis: config.batch.exportTimeoutMs,
        selfObsMeterProvider: droppedSpansMeterProvider(deps.droppedSpans),
      }),
    ],
  });
  const tracer: Tracer = provider.getTracer('users-service');
  // The context of the request being served, only when its trace is recorded: a child span starts
  // only where it finds one. Our own store, not OTel's global context manager: only this module's
  // spans use it, and two apps in one process (the tests) do not share state. On Node.js 24,
  // AsyncLocalStorage rides on V8's continuation data, so a request that never enters it pays
  // nothing for it, and one that does pays one run() per span that has children.
  const active = new AsyncLocalStorage<Context>();
  // W3C trace context only: baggage from outside is not trusted, so no baggage propagator.
  const propagator = new W3CTraceContextPropagator();

  const currentSpan = (): Span | undefined => {
    const context = active.getStore();
    return context && trace.getSpan(context);
  };

  async function finish<T>(span: Span, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      // The error's class or code only: driver messages can quote the values of a query.
      span.setAttribute('error.type', errorType(err));
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      span.end();
    }
  }

  /** The rest of a request whose trace is recorded: its span is the parent of what runs inside. */
  async function recorded(ctx: KoaContext, next: Next, span: Span, method: string, parent: Context): Promise<void> {
    // Set after the sampling decision, so an unsampled request does not build them: the samplers
    // offered (OTEL_TRACES_SAMPLER) decide on the trace id and the parent alone.
    span.setAttributes({
      'http.request.method': method,
      'url.path': ctx.path,
      'url.scheme': ctx.protocol,
      'network.protocol.version': ctx.req.httpVersion,
    });
    try {
      await active.run(trace.setSpan(parent, span), next);
    } catch (err) {
      span.setAttribute('error.type', errorType(err));
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      const route = routeTemplate(ctx);
      // Named by the route template, never the raw path; unmatched requests keep the bare method.
      if (route !== UNMATCHED_ROUTE) {
        span.updateName(`${method} ${route}`);
        span.setAttribute('http.route', route);
      }
      span.setAttribute('http.response.status_code', ctx.status);
      // A 4xx is the client's error, not the server's (HTTP semantic conventions).
      if (ctx.status >= 500) {
        span.setAttribute('error.type', String(ctx.status));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
    }
  }

  return {
    enabled: true,
    serverSpan() {
      return function serverSpanMiddleware(ctx, next) {
        if (UNTRACED_PATHS.has(ctx.path)) return next();
        const parent = propagator.extract(ROOT_CONTEXT, ctx.headers, defaultTextMapGetter);
        const method = KNOWN_METHODS.has(ctx.method) ? ctx.method : '_OTHER';
        const span = tracer.startSpan(method, { kind: SpanKind.SERVER }, parent);
        // request-id, next, binds it into the request's logger (see traceLogFields).
        (ctx.state as TraceState).spanContext = span.spanContext();
        // Unsampled: its ids go to the log lines and nothing else. No child span would be recorded
        // either, so the request runs outside the store, and the children find no parent.
        if (!span.isRecording()) return next();
        return recorded(ctx, next, span, method, parent);
      };
    },
    dbQuery(operation, query) {
      const parent = active.getStore();
      if (parent === undefined) return query();
      const attributes = { 'db.system.name': 'postgresql', 'db.operation.name': operation };
      return finish(tracer.startSpan(operation, { kind: SpanKind.CLIENT, attributes }, parent), query);
    },
    limiterCall(call) {
      const parent = active.getStore();
      if (parent === undefined) return call();
      const span = tracer.startSpan('ratelimit', { kind: SpanKind.INTERNAL }, parent);
      // Entered, so that the limiter's own hooks (annotate) write on this span.
      const context = trace.setSpan(parent, span);
      return finish(span, () => active.run(context, call));
    },
    annotate(attributes, event) {
      const span = currentSpan();
      if (!span?.isRecording()) return;
      span.setAttributes(attributes);
      if (event !== undefined) span.addEvent(event);
    },
    async shutdown() {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => { timer = setTimeout(resolve, deps.flushTimeoutMs); });
      await Promise.race([provider.shutdown().catch(() => undefined), bound]);
      clearTimeout(timer);
      active.disable();
    },
  };
}
