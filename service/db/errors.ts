/**
 * Which driver errors mean "the database cannot answer now" (a 503 the client may retry) rather
 * than "this request is wrong" or "this code is wrong".
 */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EPIPE', 'EAI_AGAIN']);
const SQLSTATE_UNAVAILABLE = new Set([
  '53300', // too_many_connections
  '57014', // query_canceled: statement_timeout fired
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up)
]);

export const UNIQUE_VIOLATION = '23505';

export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'KnexTimeoutError') return true; // pool acquire timed out
  const code = sqlState(err);
  if (code !== undefined && (NETWORK_CODES.has(code) || SQLSTATE_UNAVAILABLE.has(code) || code.startsWith('08'))) return true;
  // node-postgres reports a dropped socket or a client-side query_timeout only in the message.
  return /Connection terminated|Query read timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    err.message,
  );
}
