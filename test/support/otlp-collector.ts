import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One exported span, decoded the same way from OTLP/JSON and OTLP/protobuf. */
export interface ExportedSpan {
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Record<string, unknown>;
  events: string[];
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  resource: Record<string, unknown>;
}

export interface Collector {
  /** The base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it. */
  url: string;
  spans: ExportedSpan[];
  /** Content-Type of every export request received. */
  contentTypes: string[];
  /** Resolves with the predicate's first truthy answer over the spans received so far (polls; the test's timeout bounds it). */
  waitFor<T>(predicate: (spans: ExportedSpan[]) => T | undefined | false): Promise<T>;
  close(): Promise<void>;
}

// ------------------------------------------------------------------ protobuf (just what OTLP traces use)

type Field = { wire: 0; value: bigint } | { wire: 1 | 5; value: Buffer } | { wire: 2; value: Buffer };

function varint(buf: Buffer, at: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const byte = buf[at++] as number;
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [result, at];
    shift += 7n;
  }
}

/** Field number → values, in order. */
function fields(buf: Buffer): Map<number, Field[]> {
  const out = new Map<number, Field[]>();
  let at = 0;
  while (at < buf.length) {
    const [key, next] = varint(buf, at);
    at = next;
    const number = Number(key >> 3n);
    const wire = Number(key & 7n);
    let field: Field;
    if (wire === 0) {
      const [value, after] = varint(buf, at);
      at = after;
      field = { wire: 0, value };
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4;
      field = { wire, value: buf.subarray(at, at + size) };
      at += size;
    } else if (wire === 2) {
      const [length, after] = varint(buf, at);
      field = { wire: 2, value: buf.subarray(after, after + Number(length)) };
      at = after + Number(length);
    } else {
      throw new Error(`unsupported protobuf wire type ${String(wire)}`);
    }
    out.set(number, [...(out.get(number) ?? []), field]);
  }
  return out;
}

const bytesOf = (f: Map<number, Field[]>, n: number): Buffer[] => (f.get(n) ?? []).map((x) => x.value as Buffer);
const firstBytes = (f: Map<number, Field[]>, n: number): Buffer => bytesOf(f, n)[0] ?? Buffer.alloc(0);
const firstVarint = (f: Map<number, Field[]>, n: number): number => Number((f.get(n)?.[0]?.value as bigint | undefined) ?? 0n);

function protoAnyValue(buf: Buffer): unknown {
  const f = fields(buf);
  if (f.has(1)) return firstBytes(f, 1).toString('utf8');
  if (f.has(2)) return firstVarint(f, 2) === 1;
  if (f.has(3)) return firstVarint(f, 3);
  if (f.has(4)) return firstBytes(f, 4).readDoubleLE(0);
  return undefined;
}

function protoAttributes(list: Buffer[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list) {
    const f = fields(kv);
    out[firstBytes(f, 1).toString('utf8')] = protoAnyValue(firstBytes(f, 2));
  }
  return out;
}

function decodeProtobuf(body: Buffer): ExportedSpan[] {
  const spans: ExportedSpan[] = [];
  for (const resourceSpans of bytesOf(fields(body), 1)) {
    const rs = fields(resourceSpans);
    const resource = protoAttributes(bytesOf(fields(firstBytes(rs, 1)), 1));
    for (const scopeSpans of bytesOf(rs, 2)) {
      for (const spanBytes of bytesOf(fields(scopeSpans), 2)) {
        const s = fields(spanBytes);
        spans.push({
          traceId: firstBytes(s, 1).toString('hex'),
          spanId: firstBytes(s, 2).toString('hex'),
          parentSpanId: firstBytes(s, 4).toString('hex'),
          name: firstBytes(s, 5).toString('utf8'),
          kind: firstVarint(s, 6),
          attributes: protoAttributes(bytesOf(s, 9)),
          events: bytesOf(s, 11).map((e) => firstBytes(fields(e), 2).toString('utf8')),
          statusCode: firstVarint(fields(firstBytes(s, 15)), 3),
          resource,
        });
      }
    }
  }
  return spans;
}

// ------------------------------------------------------------------ JSON

interface JsonKeyValue { key: string; value: Record<string, unknown> }
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: JsonKeyValue[];
  events?: { name: string }[];
  status?: { code?: number };
}
interface JsonRequest {
  resourceSpans?: { resource?: { attributes?: JsonKeyValue[] }; scopeSpans?: { spans?: JsonSpan[] }[] }[];
}

function jsonAttributes(list: JsonKeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list ?? []) {
    const v = value.stringValue ?? value.boolValue ?? value.doubleValue ?? value.intValue;
    out[key] = value.intValue !== undefined ? Number(v) : v;
  }
  return out;
}

function decodeJson(body: Buffer): ExportedSpan[] {
  const request = JSON.parse(body.toString('utf8')) as JsonRequest;
  return (request.resourceSpans ?? []).flatMap((rs) => {
    const resource = jsonAttributes(rs.resource?.attributes);
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId ?? '',
        name: s.name,
        kind: s.kind,
        attributes: jsonAttributes(s.attributes),
        events: (s.events ?? []).map((e) => e.name),
        statusCode: s.status?.code ?? 0,
        resource,
      })),
    );
  });
}

// ------------------------------------------------------------------ the receiver

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * An OTLP/HTTP traces receiver on 127.0.0.1: decodes what the service exports. `answer: false`
 * makes it a collector that accepts connections and never answers (a hung collector).
 */
export async function startCollector(options: { answer?: boolean } = {}): Promise<Collector> {
  const spans: ExportedSpan[] = [];
  const contentTypes: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (options.answer === false) return;
    void readBody(req).then((body) => {
      const type = req.headers['content-type'] ?? '';
      contentTypes.push(type);
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      spans.push(...(type.startsWith('application/json') ? decodeJson(body) : decodeProtobuf(body)));
      // An empty ExportTraceServiceResponse is an empty body in both encodings.
      res.writeHead(200, { 'Content-Type': type.startsWith('application/json') ? 'application/json' : 'application/x-protobuf' });
      res.end(type.startsWith('application/json') ? '{}' : '');
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${String(port)}`,
    spans,
    contentTypes,
    async waitFor(predicate) {
      for (;;) {
        const found = predicate(spans);
        if (found) return found;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A port on 127.0.0.1 where nothing listens (a collector that is down). */
export async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${String(port)}`;
}
