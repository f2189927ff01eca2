/**
 * The tracing part of `npm run bench`: the built service again, with OpenTelemetry exporting every
 * trace (traced100) or one in ten (traced10) to a local OTLP/HTTP sink, measured on GET by id
 * against the same service with tracing off. The sink answers 200 and discards: what is measured
 * is the service's own cost (spans, context, serialisation, the HTTP export), not a collector's.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export const TRACED_SERVERS = { traced10: 0.1, traced100: 1 } as const;
export type TracedServer = keyof typeof TRACED_SERVERS;

export function isTraced(name: string): name is TracedServer {
  return name in TRACED_SERVERS;
}

/** The variables the chart sets when tracing is on, with the sampling ratio of this server. */
export function tracingEnv(name: TracedServer, sinkUrl: string): Record<string, string> {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl,
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: String(TRACED_SERVERS[name]),
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=bench',
  };
}

export interface Sink {
  url: string;
  /** Export requests received and their bytes (protobuf), for the report. */
  received: { requests: number; bytes: number };
  close(): Promise<void>;
}

export async function startSink(): Promise<Sink> {
  const received = { requests: 0, bytes: 0 };
  const server: Server = createServer((req, res) => {
    req.on('data', (chunk: Buffer) => { received.bytes += chunk.length; });
    req.on('end', () => {
      received.requests += 1;
      res.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`,
    received,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => { resolve(); }); }),
  };
}

/** tracing_spans_dropped_total of a running service, all reasons. */
export async function droppedSpans(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${String(port)}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith('tracing_spans_dropped_total{')).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}
