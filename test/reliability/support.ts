import { readFileSync } from 'node:fs';
import { request, type Agent, type IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import { parse } from 'yaml';
import { parseMetrics, sumOf } from '../support/prometheus.js';
import { REPO_ROOT } from '../support/service-process.js';

export { sleep, waitFor, freePort } from '../ratelimit/support.js';

/**
 * Seconds between the kubelet's readiness probes as the chart sets them: the time scale on which readiness must
 * change, so the outage suites bound readiness by it rather than by how fast this machine happens to be.
 */
export const READINESS_PERIOD_MS =
  (parse(readFileSync(path.join(REPO_ROOT, 'chart/users-service/values.yaml'), 'utf8')) as { probes: { readiness: { periodSeconds: number } } })
    .probes.readiness.periodSeconds * 1000;

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** Milliseconds from sending to the end of the body. */
  ms: number;
}

export interface SendOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string | number>;
  body?: string | Buffer;
  /** A node:http Agent the caller controls; `false` is a fresh connection that closes after the response. */
  agent?: Agent | false;
  timeoutMs?: number;
}

/** One HTTP/1.1 request over loopback. Rejects with the socket error (its `code`: ECONNREFUSED, ECONNRESET...). */
export function send(port: number, options: SendOptions = {}): Promise<Reply> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        // Node's client sends a GET body unframed (no Content-Length, no chunking): frame it, always.
        headers: options.body === undefined ? options.headers : { 'content-length': Buffer.byteLength(options.body), ...options.headers },
        agent: options.agent ?? false,
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - start });
        });
      },
    );
    req.on('timeout', () => { req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })); });
    req.on('error', reject);
    req.end(options.body);
  });
}

export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : String(err);
}

export function json(reply: Reply): Record<string, unknown> {
  return JSON.parse(reply.text) as Record<string, unknown>;
}

export function postUser(port: number, user: { name: string; email: string }, agent?: Agent | false): Promise<Reply> {
  return send(port, { method: 'POST', path: '/api/users', headers: { 'content-type': 'application/json' }, body: JSON.stringify(user), agent });
}

/** One scrape of GET /metrics; returns a reader for sums of samples. */
export async function scrape(port: number): Promise<(name: string, labels?: Record<string, string>) => number> {
  const reply = await send(port, { path: '/metrics' });
  const samples = parseMetrics(reply.text);
  return (name, labels = {}) => sumOf(samples, name, labels);
}

/** The fields RFC 9457 and the API contract require of every error body. */
export function problemErrors(reply: Reply): string[] {
  const found: string[] = [];
  if (!/^application\/problem\+json(;|$)/.test(reply.headers['content-type'] ?? '')) {
    found.push(`content-type ${String(reply.headers['content-type'])}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(reply.text);
  } catch {
    return [...found, `body is not JSON: ${reply.text.slice(0, 80)}`];
  }
  if (body === null || typeof body !== 'object') return [...found, 'body is not an object'];
  const problem = body as Record<string, unknown>;
  for (const field of ['type', 'title', 'detail', 'instance']) if (typeof problem[field] !== 'string') found.push(`${field} missing`);
  if (problem.status !== reply.status) found.push(`status ${String(problem.status)} != ${reply.status}`);
  if (reply.status === 400 && !Array.isArray(problem.errors)) found.push('400 without errors[]');
  return found;
}

/** Response headers a JSON API must carry (see service/middleware/security.ts). */
export function securityHeaderErrors(headers: IncomingHttpHeaders): string[] {
  const found: string[] = [];
  const expectHeader = (name: string, test: RegExp) => {
    const value = headers[name];
    if (typeof value !== 'string' || !test.test(value)) found.push(`${name}: ${String(value)}`);
  };
  expectHeader('x-content-type-options', /^nosniff$/);
  expectHeader('content-security-policy', /^default-src 'none'; frame-ancestors 'none'$/);
  expectHeader('strict-transport-security', /^max-age=\d+$/);
  expectHeader('referrer-policy', /^no-referrer$/);
  expectHeader('cross-origin-resource-policy', /^same-origin$/);
  if ('x-powered-by' in headers) found.push(`x-powered-by: ${String(headers['x-powered-by'])}`);
  if ('server' in headers) found.push(`server: ${String(headers.server)}`);
  return found;
}

/** Values a stack trace or an internal error leaks; none may appear in a response body. */
export const LEAK_PATTERNS = [/\n\s+at /, /node:internal/, /\/work\/|\/app\/dist|node_modules/, /\b(?:TypeError|ReferenceError|SyntaxError):/, /duplicate key value|violates|relation "|syntax error at/];
