import { expect } from 'chai';
import { ConfigError, loadConfig } from '../service/config.js';

describe('configuration', () => {
  it('has the documented defaults when the environment is empty', () => {
    const config = loadConfig({});
    expect(config.port).to.equal(8080);
    expect(config.databaseUrl).to.equal(undefined);
    expect(config.db).to.deep.equal({ poolMax: 25, poolMin: 5, connMaxLifetimeMs: 300_000, acquireTimeoutMs: 5_000, statementTimeoutMs: 5_000 });
    expect(config.rateLimit).to.deep.equal({ rps: 100, burst: 10, scope: 'client', redisTimeoutMs: 50 });
    expect(config.shutdown).to.deep.equal({ drainDelayMs: 5_000, timeoutMs: 30_000 });
    expect(config.trustProxyHops).to.equal(0);
    expect(config.corsOrigins).to.deep.equal([]);
    expect(config.idempotency).to.deep.equal({ keyTtlMs: 86_400_000, purgeIntervalMs: 300_000 });
  });

  it('reads durations with their unit', () => {
    const config = loadConfig({ SHUTDOWN_TIMEOUT: '1.5m', SHUTDOWN_DRAIN_DELAY: '300ms', DB_CONN_MAX_LIFETIME: '1h' });
    expect(config.shutdown).to.deep.equal({ drainDelayMs: 300, timeoutMs: 90_000 });
    expect(config.db.connMaxLifetimeMs).to.equal(3_600_000);
  });

  for (const [name, value, message] of [
    ['PORT', 'eighty', /PORT="eighty" is invalid: expected an integer from 0 to 65535/],
    ['PORT', '70000', /PORT="70000" is invalid/],
    ['SHUTDOWN_TIMEOUT', '30', /SHUTDOWN_TIMEOUT="30" is invalid: expected a duration with a unit/],
    ['RATE_LIMIT_SCOPE', 'user', /RATE_LIMIT_SCOPE="user" is invalid: expected one of client, global/],
    ['DATABASE_URL', 'mysql://x@y/z', /DATABASE_URL is invalid: expected a postgres: or postgresql: URL/],
    ['REDIS_URL', 'not a url', /REDIS_URL is invalid: not a URL/],
    ['LOG_LEVEL', 'verbose', /LOG_LEVEL="verbose" is invalid/],
    ['IDEMPOTENCY_KEY_TTL', '24', /IDEMPOTENCY_KEY_TTL="24" is invalid: expected a duration with a unit/],
    ['IDEMPOTENCY_KEY_TTL', '0s', /IDEMPOTENCY_KEY_TTL="0s" is invalid: expected a duration from 1ms to 24h/],
    ['IDEMPOTENCY_PURGE_INTERVAL', '0ms', /IDEMPOTENCY_PURGE_INTERVAL="0ms" is invalid/],
  ] as const) {
    it(`names ${name} and what is wrong when it is ${JSON.stringify(value)}`, () => {
      expect(() => loadConfig({ [name]: value })).to.throw(ConfigError, message);
    });
  }

  it('refuses a pool whose minimum exceeds its maximum', () => {
    expect(() => loadConfig({ DB_POOL_MIN: '30' })).to.throw(ConfigError, /DB_POOL_MIN=30 is invalid: must not exceed DB_POOL_MAX=25/);
  });

  it('never echoes a database URL, which may carry a password', () => {
    expect(() => loadConfig({ DATABASE_URL: 'http://user:s3cret@db/x' })).to.throw(ConfigError).with.property('message').that.does.not.include('s3cret');
  });

  it('splits CORS origins on commas', () => {
    expect(loadConfig({ CORS_ORIGINS: 'https://a.example, https://b.example' }).corsOrigins).to.deep.equal(['https://a.example', 'https://b.example']);
  });

  for (const [name, value] of [
    ['RATE_LIMIT_REDIS_TIMEOUT', '0ms'],
    ['RATE_LIMIT_REDIS_TIMEOUT', '0.1ms'],
    ['DB_STATEMENT_TIMEOUT', '0s'],
    ['DB_ACQUIRE_TIMEOUT', '0ms'],
    ['HTTP_HEADERS_TIMEOUT', '0s'],
    ['HTTP_REQUEST_TIMEOUT', '0s'],
    ['SHUTDOWN_TIMEOUT', '0s'],
    ['AUTH_JWKS_TIMEOUT', '0ms'],
    ['DB_CONN_MAX_LIFETIME', '9999h'],
  ] as const) {
    it(`refuses ${name}=${value}, which would switch its guard off or overflow it`, () => {
      const env = { [name]: value, ...(name.startsWith('AUTH_') ? { AUTH_ISSUER: 'https://id.example.test', AUTH_AUDIENCE: 'users' } : {}) };
      expect(() => loadConfig(env)).to.throw(ConfigError, new RegExp(`^${name}=.* is invalid: expected a duration from 1ms to 24h$`));
    });
  }

  it('allows a zero drain delay, which disables no guard', () => {
    expect(loadConfig({ SHUTDOWN_DRAIN_DELAY: '0s' }).shutdown.drainDelayMs).to.equal(0);
  });

  for (const [env, message] of [
    [{ RATE_LIMIT_REDIS_TIMEOUT: '30s' }, /^RATE_LIMIT_REDIS_TIMEOUT is invalid: must be shorter than HTTP_REQUEST_TIMEOUT/],
    [{ HTTP_HEADERS_TIMEOUT: '40s' }, /^HTTP_HEADERS_TIMEOUT is invalid: must not exceed HTTP_REQUEST_TIMEOUT/],
    [{ SHUTDOWN_DRAIN_DELAY: '30s' }, /^SHUTDOWN_DRAIN_DELAY is invalid: must be shorter than SHUTDOWN_TIMEOUT/],
    [{ METRICS_PORT: '8080' }, /^METRICS_PORT=8080 is invalid: must differ from PORT/],
    [{ AUTH_ISSUER: 'https://id.example.test' }, /^AUTH_AUDIENCE is invalid: it must be set when AUTH_ISSUER is/],
    [{ AUTH_AUDIENCE: 'users' }, /^AUTH_ISSUER is invalid: it must be set when AUTH_AUDIENCE or AUTH_JWKS_URL is/],
    [{ AUTH_ISSUER: 'ftp://id.example.test', AUTH_AUDIENCE: 'users' }, /^AUTH_ISSUER is invalid: expected a https: or http: URL/],
  ] as const) {
    it(`refuses ${JSON.stringify(env)} with one line naming the variable`, () => {
      expect(() => loadConfig(env)).to.throw(ConfigError, message);
    });
  }

  it('reads authentication settings, off by default', () => {
    expect(loadConfig({}).auth).to.equal(undefined);
    expect(loadConfig({ AUTH_ISSUER: 'https://id.example.test/', AUTH_AUDIENCE: 'users' }).auth).to.deep.equal({
      issuer: 'https://id.example.test/',
      audience: 'users',
      jwksUrl: undefined,
      jwksTimeoutMs: 2000,
      jwksCooldownMs: 5000,
    });
    expect(loadConfig({}).metricsPort).to.equal(9464);
  });
});
