/**
 * The process's whole configuration, read from the environment once at start (12-factor).
 * Every variable is documented in the README's configuration table; keep the two in step.
 */

import { loadTracingConfig, type TracingConfig } from './observability/tracing-config.js';

export type RateLimitScope = 'client' | 'global';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface AuthConfig {
  /** The token issuer (`iss`); its JWKS is found through OpenID discovery unless jwksUrl is set. */
  issuer: string;
  audience: string;
  jwksUrl: string | undefined;
  /** Longest wait for the identity provider's discovery document or JWKS. */
  jwksTimeoutMs: number;
  /** At most one JWKS fetch per cooldown, however many unknown `kid`s arrive. */
  jwksCooldownMs: number;
}

export interface Config {
  port: number;
  /** Serves GET /metrics only; never the application port, so the ingress cannot expose it. */
  metricsPort: number;
  /** Undefined means "authentication off", a developer convenience that logs a warning. */
  auth: AuthConfig | undefined;
  /** Undefined means "embedded PGlite", a developer convenience that logs a warning. */
  databaseUrl: string | undefined;
  db: {
    poolMax: number;
    poolMin: number;
    connMaxLifetimeMs: number;
    acquireTimeoutMs: number;
    statementTimeoutMs: number;
  };
  /** Undefined means "in-process limiter only". */
  redisUrl: string | undefined;
  rateLimit: {
    rps: number;
    burst: number;
    scope: RateLimitScope;
    redisTimeoutMs: number;
  };
  trustProxyHops: number;
  http: { keepAliveTimeoutMs: number; headersTimeoutMs: number; requestTimeoutMs: number };
  logLevel: LogLevel;
  shutdown: { drainDelayMs: number; timeoutMs: number };
  corsOrigins: string[];
  idempotency: { keyTtlMs: number; purgeIntervalMs: number };
  /** OpenTelemetry's own OTEL_* variables; no endpoint means tracing off. */
  tracing: TracingConfig;
}

/** Thrown for a bad environment; main.ts prints its message as one line and exits 1. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Readonly<Record<string, string | undefined>>;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

function fail(name: string, value: string, expected: string): never {
  throw new ConfigError(`${name}=${JSON.stringify(value)} is invalid: expected ${expected}`);
}

function raw(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === '' ? undefined : value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    fail(name, value, `an integer from ${min} to ${max}`);
  }
  return Number(value);
}

/** A day: no timeout or delay of this service is meaningful beyond it, and it keeps timers in range. */
const MAX_DURATION_MS = 86_400_000;

/**
 * Durations always carry a unit (300ms, 5s, 5m) so nobody has to guess what "30" means. Most
 * durations are guards (timeouts), where 0 means "no guard" to the library below: those take
 * `min: 1` so a zero is refused rather than silently disabling the guard.
 */
function duration(env: Env, name: string, fallback: string, min = 1): number {
  const value = raw(env, name) ?? fallback;
  const match = DURATION.exec(value);
  if (!match) fail(name, value, 'a duration with a unit, like 300ms, 5s or 5m');
  const [, amount, unit] = match as unknown as [string, string, keyof typeof UNIT_MS];
  const ms = Math.round(Number(amount) * UNIT_MS[unit]);
  if (ms < min || ms > MAX_DURATION_MS) fail(name, value, `a duration from ${min}ms to 24h`);
  return ms;
}

/** A guard that only makes sense inside a longer one (e.g. the Redis timeout inside the request timeout). */
function within(name: string, ms: number, parent: string, parentMs: number): void {
  if (ms >= parentMs) throw new ConfigError(`${name} is invalid: must be shorter than ${parent} (${ms}ms >= ${parentMs}ms)`);
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const value = raw(env, name) ?? fallback;
  if (!(allowed as readonly string[]).includes(value)) fail(name, value, `one of ${allowed.join(', ')}`);
  return value as T;
}

function url(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const value = raw(env, name);
  if (value === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    // Never echo the value: a URL can carry a password.
    throw new ConfigError(`${name} is invalid: not a URL`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} is invalid: expected a ${protocols.join(' or ')} URL, got ${parsed.protocol}`);
  }
  return value;
}

function auth(env: Env): AuthConfig | undefined {
  const issuer = url(env, 'AUTH_ISSUER', ['https:', 'http:']);
  const audience = raw(env, 'AUTH_AUDIENCE');
  const jwksUrl = url(env, 'AUTH_JWKS_URL', ['https:', 'http:']);
  if (issuer === undefined) {
    if (audience !== undefined || jwksUrl !== undefined) {
      throw new ConfigError('AUTH_ISSUER is invalid: it must be set when AUTH_AUDIENCE or AUTH_JWKS_URL is');
    }
    return undefined;
  }
  if (audience === undefined) throw new ConfigError('AUTH_AUDIENCE is invalid: it must be set when AUTH_ISSUER is');
  return {
    issuer,
    audience,
    jwksUrl,
    jwksTimeoutMs: duration(env, 'AUTH_JWKS_TIMEOUT', '2s'),
    jwksCooldownMs: duration(env, 'AUTH_JWKS_COOLDOWN', '5s'),
  };
}

export function loadConfig(env: Env = process.env): Config {
  const poolMax = integer(env, 'DB_POOL_MAX', 25, 1, 1000);
  const poolMin = integer(env, 'DB_POOL_MIN', 5, 0, 1000);
  if (poolMin > poolMax) {
    throw new ConfigError(`DB_POOL_MIN=${poolMin} is invalid: must not exceed DB_POOL_MAX=${poolMax}`);
  }
  const port = integer(env, 'PORT', 8080, 0, 65535);
  const metricsPort = integer(env, 'METRICS_PORT', 9464, 0, 65535);
  if (metricsPort !== 0 && metricsPort === port) {
    throw new ConfigError(`METRICS_PORT=${metricsPort} is invalid: must differ from PORT, so the application port never serves metrics`);
  }
  const http = {
    // Above the 60 s idle timeout of AWS load balancers and ingress-nginx, so the proxy closes first.
    keepAliveTimeoutMs: duration(env, 'HTTP_KEEPALIVE_TIMEOUT', '65s'),
    // Short: a client that trickles its headers (slowloris) is cut off.
    headersTimeoutMs: duration(env, 'HTTP_HEADERS_TIMEOUT', '10s'),
    requestTimeoutMs: duration(env, 'HTTP_REQUEST_TIMEOUT', '30s'),
  };
  // Node requires headersTimeout <= requestTimeout.
  if (http.headersTimeoutMs > http.requestTimeoutMs) {
    throw new ConfigError(`HTTP_HEADERS_TIMEOUT is invalid: must not exceed HTTP_REQUEST_TIMEOUT (${http.headersTimeoutMs}ms > ${http.requestTimeoutMs}ms)`);
  }
  const redisTimeoutMs = duration(env, 'RATE_LIMIT_REDIS_TIMEOUT', '50ms');
  // The limiter decides on the request path: waiting for Redis longer than a whole request may take is no guard.
  within('RATE_LIMIT_REDIS_TIMEOUT', redisTimeoutMs, 'HTTP_REQUEST_TIMEOUT', http.requestTimeoutMs);
  const statementTimeoutMs = duration(env, 'DB_STATEMENT_TIMEOUT', '5s');
  const acquireTimeoutMs = duration(env, 'DB_ACQUIRE_TIMEOUT', '5s');
  const shutdown = {
    drainDelayMs: duration(env, 'SHUTDOWN_DRAIN_DELAY', '5s', 0),
    timeoutMs: duration(env, 'SHUTDOWN_TIMEOUT', '30s'),
  };
  // The shutdown deadline starts with the drain: a drain as long as the deadline always ends in exit 1.
  within('SHUTDOWN_DRAIN_DELAY', shutdown.drainDelayMs, 'SHUTDOWN_TIMEOUT', shutdown.timeoutMs);
  return {
    port,
    metricsPort,
    auth: auth(env),
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    db: {
      poolMax,
      poolMin,
      connMaxLifetimeMs: duration(env, 'DB_CONN_MAX_LIFETIME', '5m'),
      acquireTimeoutMs,
      statementTimeoutMs,
    },
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:']),
    rateLimit: {
      rps: integer(env, 'RATE_LIMIT_RPS', 100, 1, 1_000_000),
      burst: integer(env, 'RATE_LIMIT_BURST', 10, 1, 1_000_000),
      scope: oneOf(env, 'RATE_LIMIT_SCOPE', 'client', ['client', 'global'] as const),
      redisTimeoutMs,
    },
    trustProxyHops: integer(env, 'TRUST_PROXY_HOPS', 0, 0, 10),
    http,
    logLevel: oneOf(env, 'LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
    shutdown,
    corsOrigins: (raw(env, 'CORS_ORIGINS') ?? '').split(',').map((o) => o.trim()).filter(Boolean),
    idempotency: {
      // The draft's suggestion: long enough for any client's retries, short enough to stay small.
      keyTtlMs: duration(env, 'IDEMPOTENCY_KEY_TTL', '24h'),
      purgeIntervalMs: duration(env, 'IDEMPOTENCY_PURGE_INTERVAL', '5m'),
    },
    tracing: loadTracingConfig(env, (message) => { throw new ConfigError(message); }),
  };
}
