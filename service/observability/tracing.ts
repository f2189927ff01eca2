import { TraceFlags, type Attributes, type SpanContext } from '@opentelemetry/api';
import type { Middleware } from 'koa';
import type { Counter } from 'prom-client';
import type { TracingConfig } from './tracing-config.js';

/** What a traced request keeps on ctx.state for the middleware after it (metrics exemplars). */
export interface TraceState {
  spanContext?: SpanContext;
}

/**
 * The service's tracing: explicit spans made by the app's own middleware, repository and limiter
 * (no monkey-patching auto-instrumentation), so each span is one that an operator needs and the
 * request path pays for nothing else. When tracing is off every method is a pass-through and no
 * context manager exists.
 */
export interface Tracing {
  readonly enabled: boolean;
  /** The server span per request (outermost): W3C trace context in, named by the route template. */
  serverSpan(): Middleware | undefined;
  /** A CLIENT span for one database query of the current request (none outside a request). */
  dbQuery<T>(operation: string, query: () => Promise<T>): Promise<T>;
  /** An INTERNAL span around one rate-limiter decision; the limiter annotates it through `annotate`. */
  limiterCall<T>(call: () => Promise<T>): Promise<T>;
  /** Attributes or an event on the innermost span of the current request (no-op outside one). */
  annotate(attributes: Attributes, event?: string): void;
  /** Flushes what is queued, then stops exporting; bounded by TracingDeps.flushTimeoutMs. */
  shutdown(): Promise<void>;
}

const NONE: Readonly<Record<string, string>> = Object.freeze({});

/**
 * The fields that tie a log line to its trace: trace_id, span_id (the server span) and trace_flags
 * (01: sampled, exported; 00: not). Written on the access line, and bound with the request id into
 * the child logger requestLog makes for any other line of the request.
 */
export function traceLogFields(state: TraceState): Readonly<Record<string, string>> {
  const sc = state.spanContext;
  if (!sc) return NONE;
  return { trace_id: sc.traceId, span_id: sc.spanId, trace_flags: (sc.traceFlags & TraceFlags.SAMPLED) !== 0 ? '01' : '00' };
}

/** The exemplar for a latency observation: the trace id, when that trace is being exported. */
export function traceExemplar(state: TraceState): Record<string, string> {
  const sc = state.spanContext;
  return sc && (sc.traceFlags & TraceFlags.SAMPLED) !== 0 ? { trace_id: sc.traceId } : NONE;
}

export const TRACING_OFF: Tracing = {
  enabled: false,
  serverSpan: () => undefined,
  dbQuery: (_operation, query) => query(),
  limiterCall: (call) => call(),
  annotate: () => undefined,
  shutdown: () => Promise.resolve(),
};

export interface TracingDeps {
  /** Spans lost before reaching the collector, by reason (queue_full, export_failed). */
  droppedSpans: Counter<'reason'>;
  /** The longest a flush at shutdown may take; a collector that does not answer must not hold the exit. */
  flushTimeoutMs: number;
}

/**
 * Tracing as configured: off (TRACING_OFF) without an endpoint; otherwise the OpenTelemetry SDK,
 * loaded only then, so a service without tracing never loads it.
 */
export async function createTracing(config: TracingConfig, deps: TracingDeps): Promise<Tracing> {
  const { endpoint } = config;
  if (endpoint === undefined) return TRACING_OFF;
  const { startTracing } = await import('./tracing-sdk.js');
  return startTracing({ ...config, endpoint }, deps);
}
