import type { Logger } from 'pino';
import type { Counter } from 'prom-client';

/** Small batches: each is a short transaction, so the purge never holds many rows at once. */
const BATCH = 500;

export interface PurgeOptions {
  purgeExpiredKeys: (batch: number) => Promise<number>;
  intervalMs: number;
  log: Logger;
  purged: Counter;
}

/**
 * Deletes expired idempotency keys in the background, off the request path: requests already
 * ignore an expired key, so the purge only reclaims space and can run late or fail harmlessly.
 * Returns a stop function that waits for a run in progress.
 */
export function startIdempotencyPurge({ purgeExpiredKeys, intervalMs, log, purged }: PurgeOptions): () => Promise<void> {
  let running: Promise<void> | undefined;
  const purgeAll = async () => {
    try {
      let deleted: number;
      do {
        deleted = await purgeExpiredKeys(BATCH);
        purged.inc(deleted);
      } while (deleted === BATCH);
    } catch (err) {
      log.warn({ err: { message: (err as Error).message } }, 'idempotency key purge failed; retrying at the next interval');
    }
  };
  const timer = setInterval(() => {
    running ??= purgeAll().finally(() => { running = undefined; });
  }, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
