import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from '../config.js';

/**
 * Field names that must never reach a log line, wherever they appear. pino's redaction is
 * path-based, so the common nestings are listed explicitly. (No request or response objects are
 * logged, so no header paths: the access log writes named fields only.)
 */
const REDACT_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'authToken',
  '*.authToken',
  'databaseUrl',
  '*.databaseUrl',
  'redisUrl',
  '*.redisUrl',
];

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'users-service' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    destination,
  );
}

/**
 * Query parameters that carry a credential in connection strings (libpq's password, sslpassword,
 * sslkey, sslcert; tokens and secrets of any other kind). Matched by name, case-insensitively.
 */
const CREDENTIAL_PARAMETER = /pass|secret|token|key|cert|auth|credential|signature/i;

/**
 * A connection string with every credential-bearing part replaced (user-info password, and any
 * credential-like query parameter), for the one log line that names the target.
 */
export function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = 'redacted';
    for (const name of new Set(url.searchParams.keys())) {
      if (CREDENTIAL_PARAMETER.test(name)) url.searchParams.set(name, 'redacted');
    }
    return url.toString();
  } catch {
    return '[unparseable url]';
  }
}
