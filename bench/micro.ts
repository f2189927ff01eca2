/**
 * `npx tsx bench/micro.ts`: the per-request costs of issue 16's request-path changes, measured in
 * isolation (CPU µs per operation, median of interleaved rounds). End to end, `npm run bench`
 * moves by more than these few microseconds on a shared 2-core machine; here each is measured
 * where nothing else disturbs it.
 *   access line   pino with the logger's path redaction and a child logger per request, against
 *                 the line built from named fields (no redaction) on one logger
 *   headers       helmet's 11 security headers against the 5 the API sends, set on a response
 *   timestamps    a user row's two timestamptz columns parsed into Dates and formatted back
 *                 (twice per user, 42 times per list page), against text from PostgreSQL
 *   token key     the verified-token cache key (SHA-256 of the bearer token) by createHash, against
 *                 the one-shot crypto.hash
 */
import { createHash, hash, randomBytes } from 'node:crypto';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import pgTypes from 'pg-types';
import { SECURITY_HEADERS } from '../service/middleware/security.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, n: { type: 'string', default: '50000' } } });
const n = Number(args.n);

/** The redaction paths of service/observability/logger.ts. */
const REDACT = ['password', '*.password', 'token', '*.token', 'authToken', '*.authToken', 'databaseUrl', '*.databaseUrl', 'redisUrl', '*.redisUrl'];
const options = { level: 'info', base: { service: 'users-service' }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label: string) => ({ level: label }) } };
const devNull = pino.destination({ dest: '/dev/null', sync: true });
const redacting = pino({ ...options, redact: { paths: REDACT, censor: '[redacted]' } }, devNull);
const lines = redacting.child({}, { redact: [] });
const fields = (i: number) => ({ method: 'GET', route: '/api/users/{id}', path: `/api/users/${String(i)}`, clientId: 'bench', status: 200, durationMs: 1.23 });

/** The headers koa-helmet 9 set under the service's former options (recorded from it). */
const HELMET_HEADERS: [string, string][] = [
  ['Content-Security-Policy', "default-src 'none';frame-ancestors 'none'"],
  ['Cross-Origin-Opener-Policy', 'same-origin'],
  ['Cross-Origin-Resource-Policy', 'same-origin'],
  ['Origin-Agent-Cluster', '?1'],
  ['Referrer-Policy', 'no-referrer'],
  ['X-Content-Type-Options', 'nosniff'],
  ['X-DNS-Prefetch-Control', 'off'],
  ['X-Download-Options', 'noopen'],
  ['X-Frame-Options', 'SAMEORIGIN'],
  ['X-Permitted-Cross-Domain-Policies', 'none'],
  ['X-XSS-Protection', '0'],
];
const response = () => new ServerResponse(new IncomingMessage(new Socket()));
const headerBytes = (headers: readonly (readonly [string, string])[]) => headers.reduce((sum, [k, v]) => sum + k.length + v.length + 4, 0);

const parseTimestamptz = pgTypes.getTypeParser(pgTypes.builtins.TIMESTAMPTZ, 'text') as (text: string) => Date;
const pgText = '2026-11-29 01:02:03.291417+00';

/** A bearer token's length: an ES256 access token with a few claims. */
const token = randomBytes(450).toString('base64url');

const cases: Record<string, Record<'before' | 'after', (i: number) => unknown>> = {
  'access line': {
    before: (i) => { redacting.child({ requestId: `req-${String(i)}` }).info(fields(i), 'request'); },
    after: (i) => { lines.info({ requestId: `req-${String(i)}`, ...fields(i) }, 'request'); },
  },
  'security headers': {
    before: () => { const res = response(); for (const [k, v] of HELMET_HEADERS) res.setHeader(k, v); return res.getHeaderNames().length; },
    after: () => { const res = response(); for (const [k, v] of SECURITY_HEADERS) res.setHeader(k, v); return res.getHeaderNames().length; },
  },
  'timestamps (one user)': {
    before: () => [parseTimestamptz(pgText).toISOString(), parseTimestamptz(pgText).toISOString()],
    after: () => [pgText, pgText],
  },
  'token cache key': {
    before: () => createHash('sha256').update(token).digest('base64url'),
    after: () => hash('sha256', token, 'base64url'),
  },
};

function cpuUs(fn: (i: number) => unknown): number {
  for (let i = 0; i < 2000; i++) fn(i);
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) fn(i);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const rows = ['| per request | before µs | after µs | saved µs |', '|---|---|---|---|'];
for (const [name, { before, after }] of Object.entries(cases)) {
  const b: number[] = [];
  const a: number[] = [];
  for (let r = 0; r < Number(args.rounds); r++) { b.push(cpuUs(before)); a.push(cpuUs(after)); }
  rows.push(`| ${name} | ${median(b).toFixed(2)} | ${median(a).toFixed(2)} | ${(median(b) - median(a)).toFixed(2)} |`);
}
rows.push(`Security header bytes per response: ${String(headerBytes(HELMET_HEADERS))} before, ${String(headerBytes(SECURITY_HEADERS))} after.`);
process.stdout.write(`${rows.join('\n')}\n`);
